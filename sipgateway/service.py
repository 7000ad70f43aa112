"""Config → one MultiService: every listener, one shared ACS."""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.logger import Logger

from sipgateway.acs.sqlite import ACSUnavailable, open_sqlite_acs
from sipgateway.config import Config, ConfigError
from sipgateway.gateway import Gateway
from sipgateway.lockout import Lockout
from sipgateway.pinguard import PinGuard, PinGuardedACS
from sipgateway.transports.limits import ConnectionCounter, LimitedFactory
from sipgateway.transports.raw import SIPFactory
from sipgateway.transports.tls import server_from_string

log = Logger()

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


class DemoWarning(Service):
    def __init__(self, config: Config) -> None:
        self.config = config

    def startService(self) -> None:
        super().startService()
        log.warn("No --config and no --listen: serving the DEMO database {db} on {listeners}. "
                 "Demo credentials (sc1/pass1, ...) are active; do not expose these ports.",
                 db=self.config.database, listeners=", ".join(f"{li.kind}:{li.endpoint}"
                                                              for li in self.config.listeners))


def make_service(config: Config, reactor=None) -> MultiService:
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    acs = open_sqlite_acs(config.database, reactor, demo=config.demo, currency=config.currency)
    for account in config.accounts:
        if not account.password:
            continue  # only settings for an account kept in the database
        try:
            acs.ensure_account(account.name, account.password, account.institution, encoding=account.encoding,
                               error_detection=account.error_detection.value, library_name=account.library_name,
                               terminal_location=account.terminal_location)
        except ValueError as e:
            raise ConfigError(f"[account:{account.name}]: {e}") from None
    attempts = acs.attempt_store()  # failed logins and wrong PINs live in the database
    lockout = Lockout(reactor, attempts, max_failures=config.max_login_failures,
                      max_per_address=config.max_login_failures_per_address,
                      max_per_account=config.max_login_failures_per_account, lock_seconds=config.lockout_seconds)
    pins = PinGuard(reactor, attempts, max_failures=config.max_pin_failures,
                    max_per_terminal=config.max_pin_failures_per_terminal, lock_seconds=config.pin_lockout_seconds,
                    hold_limit=config.acs_timeout)
    gateway = Gateway(acs=PinGuardedACS(acs, pins), reactor=reactor, lockout=lockout, acs_timeout=config.acs_timeout,
                      trace=config.trace,
                      idle_timeouts={a.name: a.idle_timeout for a in config.accounts if a.idle_timeout is not None})
    counter = ConnectionCounter(config.max_connections, config.max_connections_per_address)

    top = MultiService()
    ACSService(acs).setServiceParent(top)
    if config.demo_defaults:
        DemoWarning(config).setServiceParent(top)
    for listener in config.listeners:
        if listener.kind == "telnet":
            from sipgateway.transports.telnet import TelnetSIPFactory

            factory = TelnetSIPFactory(gateway, listener.settings)
        else:
            factory = SIPFactory(gateway, listener.settings)
        try:
            endpoint = server_from_string(reactor, listener.endpoint)
        except (ValueError, TypeError, KeyError, OSError) as e:
            raise ConfigError(f"listener {listener.settings.name}: bad endpoint {listener.endpoint!r}: {e}") from None
        service = StreamServerEndpointService(endpoint, LimitedFactory(factory, counter, listener.settings.name))
        service._raiseSynchronously = True  # a port in use stops start-up with a clear error
        service.setServiceParent(top)
    return top
