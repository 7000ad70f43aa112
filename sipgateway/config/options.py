"""twistd's options for ``twistd sipgateway``: the command line, read into a ``Config``."""

from __future__ import annotations

from twisted.python import usage

from sipgateway.config.load import DEFAULT_DATABASE, Config, load
from sipgateway.config.values import ConfigError


class Options(usage.Options):
    synopsis = "[--config FILE] [--listen KIND:ENDPOINT ...] [--database sqlite:PATH] [--acs URL ...] [--init] [--demo]"
    longdesc = ("Run the sipgateway SIP2 gateway. With no --config and no --listen it serves the demo "
                "database on 127.0.0.1 ports 6001 (raw SIP2) and 6002 (telnet).")
    optParameters = [
        ["config", "c", None, "ini configuration file (see etc/sipgateway.ini)"],
        ["database", "d", None, f"database URL (default {DEFAULT_DATABASE})"],
    ]
    optFlags = [["demo", None, "seed the demo fixtures into an empty database (created if missing)"],
                ["init", None, "create the database if the file is missing (an empty library); without "
                               "--init or --demo a missing database file stops start-up"]]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["acs"] = []
        self.config: Config | None = None

    def opt_listen(self, value: str) -> None:
        """KIND:ENDPOINT to listen on (repeatable), e.g. sip:tcp:6001:interface=127.0.0.1"""
        self["listen"].append(value)

    def opt_acs(self, value: str) -> None:
        """where circulation goes (repeatable, in failover order): embedded (default: the library
        system in --database) or a library system's SIP2 server, sip2://HOST:PORT[?KEY=VALUE&...]
        or sip2s://HOST:PORT[?...] (see README.rst)"""
        self["acs"].append(value)

    def postOptions(self) -> None:
        try:
            self.config = load(self["config"], listen=self["listen"], database=self["database"],
                               demo=self["demo"], init=self["init"], acs=self["acs"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
