"""Config → one MultiService: the ACS backend, every listener, one shared gateway.

Backends come from ``sipgateway.acs.backends.BACKENDS`` (by the scheme of ``--database``)
and doors from ``sipgateway.transports.doors.DOORS`` (by the kind of each listener)."""

from __future__ import annotations

from twisted.application.service import MultiService

from sipgateway.acs.backends import BackendUnavailable, open_backend
from sipgateway.config import Config, ConfigError
from sipgateway.gateway import Gateway
from sipgateway.lockout import Lockout
from sipgateway.pinguard import PinGuard, PinGuardedACS
from sipgateway.privileges import RunAs
from sipgateway.sighup import IgnoreSIGHUP
from sipgateway.transports.backlog import with_backlog
from sipgateway.transports.doors import door_factory
from sipgateway.transports.limits import ConnectionCounter, LimitedFactory
from sipgateway.transports.listening import ListenerService
from sipgateway.transports.tls import server_from_string

#: what stops start-up with a one-line message naming the option, key or file
StartupError = (ConfigError, ValueError, BackendUnavailable)


def make_service(config: Config, reactor=None, run_as: RunAs = (None, None), adoption=None) -> MultiService:
    """``run_as``: the (uid, gid) twistd switches to after this (``--uid``/``--gid``); the
    database is created and opened as that user (see privileges.py).  ``adoption``: in a
    worker process, which inherited sockets its listeners adopt (workers/ports.py)."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    if config.workers > 1 and adoption is None:  # the parent of the worker processes
        from sipgateway.workers.parent import make_parent

        return make_parent(config, reactor, run_as)
    backend = open_backend(config, reactor, run_as)
    attempts = backend.attempts  # failed logins and wrong PINs outlive the process
    lockout = Lockout(reactor, attempts, max_failures=config.max_login_failures,
                      max_per_address=config.max_login_failures_per_address,
                      max_per_account=config.max_login_failures_per_account, lock_seconds=config.lockout_seconds)
    pins = PinGuard(reactor, attempts, max_failures=config.max_pin_failures,
                    max_per_terminal=config.max_pin_failures_per_terminal, lock_seconds=config.pin_lockout_seconds,
                    hold_limit=config.acs_timeout)
    gateway = Gateway(acs=PinGuardedACS(backend.acs, pins), accounts=backend.accounts, reactor=reactor,
                      lockout=lockout, acs_timeout=config.acs_timeout, trace=config.trace,
                      idle_timeouts={a.name: a.idle_timeout for a in config.accounts if a.idle_timeout is not None},
                      account_settings={a.name: a.settings for a in config.accounts},
                      audit_patron=config.audit_patron, audit_key=config.audit_key, licences=config.licences)
    if adoption is not None:
        adoption.serving(gateway)  # its pid, and the other workers to ask
    counter = ConnectionCounter(config.max_connections, config.max_connections_per_address)

    top = MultiService()
    backend.setServiceParent(top)  # started before the listeners listen, stopped with them
    IgnoreSIGHUP(reactor).setServiceParent(top)
    for index, listener in enumerate(config.listeners):
        factory = door_factory(listener.kind, gateway, listener.settings)
        try:
            endpoint = server_from_string(reactor, with_backlog(listener.endpoint, listener.backlog))
        except (ValueError, TypeError, KeyError, OSError) as e:
            raise ConfigError(f"listener {listener.settings.name}: bad endpoint {listener.endpoint!r}: {e}") from None
        if adoption is not None:
            endpoint = adoption.endpoint(index, endpoint)
            if endpoint is None:
                continue  # served by worker 1 alone (a serial line)
        full = f"{listener.kind}:{listener.endpoint}"
        label = listener.settings.name if listener.settings.name == full else f"{listener.settings.name} ({full})"
        service = ListenerService(endpoint, LimitedFactory(factory, counter, listener.settings.name), label,
                                  listener.endpoint)
        service.setServiceParent(top)
    return top
