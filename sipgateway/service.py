"""Config → one MultiService: every listener, one shared ACS."""

from __future__ import annotations

from twisted.application.service import MultiService, Service

from sipgateway.acs.sqlite import ACSUnavailable
from sipgateway.config import Config, ConfigError
from sipgateway.gateway import Gateway
from sipgateway.lockout import Lockout
from sipgateway.pinguard import PinGuard, PinGuardedACS
from sipgateway.privileges import RunAs
from sipgateway.sighup import IgnoreSIGHUP
from sipgateway.startup import StartupReport, open_database
from sipgateway.transports.backlog import with_backlog
from sipgateway.transports.limits import ConnectionCounter, LimitedFactory
from sipgateway.transports.listening import ListenerService
from sipgateway.transports.raw import SIPFactory
from sipgateway.transports.tls import server_from_string

#: what stops start-up with a one-line message naming the option, key or file
StartupError = (ConfigError, ValueError, ACSUnavailable)


class ACSService(Service):
    """Starts the ACS (its database process) with the other services, after twistd has
    daemonized, and closes it when the process stops."""

    def __init__(self, acs) -> None:
        self.acs = acs

    def startService(self) -> None:
        super().startService()
        self.acs.start()

    def stopService(self):
        super().stopService()
        return self.acs.close()


def make_service(config: Config, reactor=None, run_as: RunAs = (None, None)) -> MultiService:
    """``run_as``: the (uid, gid) twistd switches to after this (``--uid``/``--gid``); the
    database is created and opened as that user (see privileges.py)."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    acs, findings = open_database(config, reactor, run_as)
    attempts = acs.attempt_store()  # failed logins and wrong PINs live in the database
    lockout = Lockout(reactor, attempts, max_failures=config.max_login_failures,
                      max_per_address=config.max_login_failures_per_address,
                      max_per_account=config.max_login_failures_per_account, lock_seconds=config.lockout_seconds)
    pins = PinGuard(reactor, attempts, max_failures=config.max_pin_failures,
                    max_per_terminal=config.max_pin_failures_per_terminal, lock_seconds=config.pin_lockout_seconds,
                    hold_limit=config.acs_timeout)
    gateway = Gateway(acs=PinGuardedACS(acs, pins), accounts=acs, reactor=reactor, lockout=lockout,
                      acs_timeout=config.acs_timeout,
                      trace=config.trace,
                      idle_timeouts={a.name: a.idle_timeout for a in config.accounts if a.idle_timeout is not None},
                      account_settings={a.name: a.settings for a in config.accounts},
                      audit_patron=config.audit_patron, audit_key=config.audit_key)
    counter = ConnectionCounter(config.max_connections, config.max_connections_per_address)

    top = MultiService()
    ACSService(acs).setServiceParent(top)
    IgnoreSIGHUP(reactor).setServiceParent(top)
    StartupReport(config, findings).setServiceParent(top)
    for listener in config.listeners:
        if listener.kind == "telnet":
            from sipgateway.transports.telnet import TelnetSIPFactory

            factory = TelnetSIPFactory(gateway, listener.settings)
        else:
            factory = SIPFactory(gateway, listener.settings)
        try:
            endpoint = server_from_string(reactor, with_backlog(listener.endpoint, listener.backlog))
        except (ValueError, TypeError, KeyError, OSError) as e:
            raise ConfigError(f"listener {listener.settings.name}: bad endpoint {listener.endpoint!r}: {e}") from None
        full = f"{listener.kind}:{listener.endpoint}"
        label = listener.settings.name if listener.settings.name == full else f"{listener.settings.name} ({full})"
        service = ListenerService(endpoint, LimitedFactory(factory, counter, listener.settings.name), label,
                                  listener.endpoint)
        service.setServiceParent(top)
    return top
