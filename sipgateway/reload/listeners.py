"""Reloading the listeners: added, removed, moved, their settings, their certificates.

A listener is known by its name (``[listener:NAME]``, or ``KIND:ENDPOINT`` for ``--listen``).
One whose endpoint string is unchanged keeps its port: new connections get its new settings
(its door's factory's ``settings`` is replaced; doors read it for each connection) and, for
TLS, the certificate, key and CA files read again (a renewed certificate is served to new
connections).  One whose endpoint changed is removed and added again.  A removed listener
stops listening; its open connections stay until they close (or time out), with the
settings they had.  An added listener's endpoint and files are checked, and its port tried,
before anything changes, as at start-up.
"""

from __future__ import annotations

from cryptography import x509
from OpenSSL import crypto

from sipgateway.config import Config, ConfigError, ListenerConfig
from sipgateway.reload.machinery import Change, Running, log
from sipgateway.transports.listening import (
    ListenError,
    ListenerService,
    build_listener,
    listener_endpoint,
    tcp_address,
)
from sipgateway.transports.tls import TLSServerEndpoint


def prepare(running: Running, new: Config) -> Change | None:
    live = running.listeners()
    wanted = {listener.settings.name: listener for listener in new.listeners}
    removed = [service for name, service in live.items()
               if name not in wanted or _where(wanted[name]) != _where(service.config)]
    freed = {tcp_address(service.description) for service in removed}  # free once those stop
    kept: list[tuple[ListenerService, ListenerConfig, object]] = []
    added: list[ListenerService] = []
    problems = []
    for name, listener in wanted.items():
        try:
            endpoint = listener_endpoint(running.reactor, listener)
            service = live.get(name)
            if service is not None and service not in removed:
                kept.append((service, listener, endpoint))
                continue
            service = build_listener(running.reactor, listener, running.gateway, running.counter, endpoint)
            address = tcp_address(service.description)
            if address is None or address not in freed:
                service.check()
            added.append(service)
        except ConfigError as e:
            problems.append(str(e))
    if running.workers > 1 and (removed or added):
        problems.append(f"listeners cannot be added, removed or moved while {running.workers} worker processes "
                        f"serve them (the parent holds their sockets): restart the gateway for that")
    if problems:
        raise ConfigError("; ".join(problems))
    summary = _summary(live, wanted, removed, added, kept)

    async def apply() -> None:
        for service, listener, endpoint in kept:
            service.config = listener
            service.factory.wrappedFactory.settings = listener.settings  # read by each new connection
            old, fresh = _tls(service.endpoint), _tls(endpoint)
            if old is not None and fresh is not None:
                old.options = fresh.options
        for service in removed:
            await service.disownServiceParent()  # stops listening; open connections stay
        for service in added:
            try:
                service.listen()  # taken meanwhile by another program: this one line, the rest applies
            except ListenError as e:
                log.error("Reload: {problem}; that listener is not added", problem=str(e))
                continue
            service.setServiceParent(running.top)

    return Change(summary, apply) if summary or kept else None


def _where(listener: ListenerConfig | None) -> tuple:
    """What a listener listens on: the same means the same port, kept open."""
    return (None,) if listener is None else (listener.kind, listener.endpoint, listener.backlog)


def _tls(endpoint: object) -> TLSServerEndpoint | None:
    """The TLS endpoint of ours in ``endpoint`` (also under a PROXY header), if any."""
    while endpoint is not None and not isinstance(endpoint, TLSServerEndpoint):
        endpoint = getattr(endpoint, "inner", None)
    return endpoint


def _leaf(endpoint: TLSServerEndpoint | None) -> x509.Certificate | None:
    cert = getattr(endpoint.options, "certificate", None) if endpoint is not None else None
    return cert.to_cryptography() if isinstance(cert, crypto.X509) else cert


def _summary(live: dict[str, ListenerService], wanted: dict[str, ListenerConfig], removed: list[ListenerService],
             added: list[ListenerService], kept: list[tuple[ListenerService, ListenerConfig, object]]) -> str:
    moved = sorted(s.config.settings.name for s in removed if s.config.settings.name in wanted)
    said = []
    gone = sorted(s.config.settings.name for s in removed if s.config.settings.name not in wanted)
    new = sorted(s.config.settings.name for s in added if s.config.settings.name not in live)
    if new:
        said.append("listeners added: " + ", ".join(new))
    if gone:
        said.append("listeners removed: " + ", ".join(gone) + " (their open connections stay until they close)")
    if moved:
        said.append("listeners with a new endpoint: " + ", ".join(moved))
    settings = sorted(listener.settings.name for service, listener, _ in kept
                      if service.config.settings != listener.settings)
    if settings:
        said.append("listener settings: " + ", ".join(settings))
    renewed = []
    for service, listener, endpoint in kept:
        before, after = _leaf(_tls(service.endpoint)), _leaf(_tls(endpoint))
        if after is not None and before != after:
            renewed.append(f"{listener.settings.name} (valid until {after.not_valid_after_utc:%Y-%m-%d})")
    if renewed:
        said.append("TLS certificates renewed: " + ", ".join(renewed))
    return "; ".join(said)
