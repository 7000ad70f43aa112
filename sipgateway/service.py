"""Config → one MultiService: the ACS backend, every listener, one shared gateway.

Backends come from ``sipgateway.acs.backends.BACKENDS`` (by the scheme of ``--acs``, else of
``--database``) and doors from ``sipgateway.transports.doors.DOORS`` (by the kind of each
listener).  With ``workers`` above 1 this process becomes the parent of the worker processes
(workers/parent.py), each of which builds the same service around the parent's sockets."""

from __future__ import annotations

from twisted.application.service import MultiService

from sipgateway.acs.backends import BackendUnavailable, open_backend
from sipgateway.config import Config, ConfigError
from sipgateway.config.options import ConfigSource
from sipgateway.gateway import Gateway
from sipgateway.lockout import Lockout
from sipgateway.pinguard import PinGuard, PinGuardedACS
from sipgateway.privileges import RunAs
from sipgateway.reload import Reloader, Running
from sipgateway.reload.accounts import account_tables
from sipgateway.sighup import ReloadOnSIGHUP
from sipgateway.transports.limits import ConnectionCounter
from sipgateway.transports.listening import build_listener, listener_endpoint
from sipgateway.usagefigures import usage_figures

#: what stops start-up with a one-line message naming the option, key or file
StartupError = (ConfigError, ValueError, BackendUnavailable)


def make_service(config: Config, reactor=None, run_as: RunAs = (None, None),
                 source: ConfigSource | None = None, adoption=None) -> MultiService:
    """``run_as``: the (uid, gid) twistd switches to after this (``--uid``/``--gid``); the
    database is created and opened as that user (see privileges.py).  ``source``: where
    ``config`` came from, read again on SIGHUP (without it a reload reads nothing new).
    ``adoption``: in a worker process, which inherited sockets its listeners adopt
    (workers/ports.py)."""
    if reactor is None:
        from twisted.internet import reactor as default_reactor

        reactor = default_reactor
    if config.workers > 1 and adoption is None:  # the parent of the worker processes
        from sipgateway.workers.parent import make_parent

        return make_parent(config, reactor, run_as, source)
    backend = open_backend(config, reactor, run_as)
    attempts = backend.attempts  # failed logins and wrong PINs outlive the process
    lockout = Lockout(reactor, attempts, max_failures=config.max_login_failures,
                      max_per_address=config.max_login_failures_per_address,
                      max_per_account=config.max_login_failures_per_account, lock_seconds=config.lockout_seconds)
    pins = PinGuard(reactor, attempts, max_failures=config.max_pin_failures,
                    max_per_terminal=config.max_pin_failures_per_terminal, lock_seconds=config.pin_lockout_seconds,
                    hold_limit=config.acs_timeout)
    idle_timeouts, account_settings = account_tables(config.accounts)
    gateway = Gateway(acs=PinGuardedACS(backend.acs, pins), accounts=backend.accounts, reactor=reactor,
                      lockout=lockout, acs_timeout=config.acs_timeout, trace=config.trace,
                      idle_timeouts=idle_timeouts, account_settings=account_settings,
                      audit_patron=config.audit_patron, audit_key=config.audit_key, licences=config.licences)
    if adoption is not None:
        adoption.serving(gateway)  # its pid, and the other workers to ask
    counter = ConnectionCounter(config.max_connections, config.max_connections_per_address)

    top = MultiService()
    backend.setServiceParent(top)  # started before the listeners listen, stopped with them
    usage = usage_figures(backend, reactor)
    if usage is not None:  # stopped before the backend: its last counts are written
        gateway.observers.append(usage)
        usage.setServiceParent(top)
    running = Running(reactor, gateway, counter, backend, top, config,
                      load=source.load if source is not None else (lambda: config),
                      source=source.describe() if source is not None else "the command line",
                      workers=config.workers if adoption is not None else 1)
    ReloadOnSIGHUP(reactor, Reloader(running).reload, running.source).setServiceParent(top)
    for index, listener in enumerate(config.listeners):
        endpoint = listener_endpoint(reactor, listener)
        if adoption is not None:
            endpoint = adoption.endpoint(index, endpoint)
            if endpoint is None:
                continue  # served by worker 1 alone (a serial line)
        build_listener(reactor, listener, gateway, counter, endpoint).setServiceParent(top)
    if config.admin is not None:
        from sipgateway.admin import admin_service  # twisted.web and prometheus_client only when asked for

        admin = admin_service(config.admin, gateway, backend, top, reactor, adoption)
        if admin is not None:  # None: a worker that answers the others but does not listen itself
            admin.setServiceParent(top)
    return top
