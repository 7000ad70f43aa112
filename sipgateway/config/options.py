"""twistd's options for ``twistd sipgateway``: the command line, read into a ``Config``."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from twisted.python import usage

from sipgateway.config.load import DEFAULT_DATABASE, Config, load
from sipgateway.config.values import ConfigError


@dataclass(frozen=True)
class ConfigSource:
    """Where the configuration comes from: the file and the command line's overrides, so
    that a reload (SIGHUP) reads it again the way start-up did."""

    path: str | None = None
    listen: tuple[str, ...] = ()
    database: str | None = None
    demo: bool = False
    init: bool = False
    admin: str | None = None
    acs: tuple[str, ...] = ()
    workers: str | None = None

    def load(self) -> Config:
        return load(self.path, listen=list(self.listen), database=self.database, demo=self.demo, init=self.init,
                    admin=self.admin, acs=list(self.acs), workers=self.workers)

    def describe(self) -> str:
        return self.path or "the command line (no --config)"


class Options(usage.Options):
    synopsis = ("[--config FILE] [--listen KIND:ENDPOINT ...] [--database sqlite:PATH] [--acs URL ...] [--init] "
                "[--demo] [--admin ENDPOINT]")
    longdesc = ("Run the sipgateway SIP2 gateway. With no --config and no --listen it serves the demo "
                "database on 127.0.0.1 ports 6001 (raw SIP2) and 6002 (telnet).")
    optParameters = [
        ["config", "c", None, "ini configuration file (see etc/sipgateway.ini)"],
        ["database", "d", None, f"database URL (default {DEFAULT_DATABASE})"],
        ["admin", None, None, "endpoint of the admin listener (health, readiness, metrics, sessions over HTTP), "
                              "e.g. tcp:6080:interface=127.0.0.1; replaces [admin] listen; off by default"],
        ["workers", None, None, "worker processes serving every listener: N or auto (one per core); "
                                "default 1, or [gateway] workers"],
    ]
    optFlags = [["demo", None, "seed the demo fixtures into an empty database (created if missing)"],
                ["init", None, "create the database if the file is missing (an empty library); without "
                               "--init or --demo a missing database file stops start-up"]]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["acs"] = []
        self.config: Config | None = None
        self.source = ConfigSource()

    def opt_listen(self, value: str) -> None:
        """KIND:ENDPOINT to listen on (repeatable), e.g. sip:tcp:6001:interface=127.0.0.1"""
        self["listen"].append(value)

    def opt_acs(self, value: str) -> None:
        """where circulation goes (repeatable, in failover order): embedded (default: the library
        system in --database) or a library system's SIP2 server, sip2://HOST:PORT[?KEY=VALUE&...]
        or sip2s://HOST:PORT[?...] (see README.rst)"""
        self["acs"].append(value)

    def postOptions(self) -> None:
        # the file's absolute path: twistd may change directory (--rundir) before a reload reads it again
        path = os.path.abspath(self["config"]) if self["config"] else None
        self.source = ConfigSource(path, tuple(self["listen"]), self["database"], self["demo"], self["init"],
                                   self["admin"], tuple(self["acs"]), self["workers"])
        try:
            self.config = replace(self.source, path=self["config"]).load()  # errors name the path as given
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
