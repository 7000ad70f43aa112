"""Listening on a listener's endpoint, with a failure to listen as one line naming the
listener and the reason (a port in use, a port out of range, an address of another host).

twistd listens in ``privilegedStartService``, after it has daemonized: a failure there is a
traceback in the log, and the daemon's parent shows its first 100 bytes ("... Address a").
So while the plugin builds the service, before twistd forks, ``check_listeners`` binds a
socket to each TCP-based listener's address and closes it at once (no ``listen``: nobody
can connect before the gateway is ready). What would fail there stops twistd with one line,
as a bad option does. Other endpoints (a serial line keeps retrying its device) are not
checked; a failure at the real listen is still a ``ListenError`` with that line.
"""

from __future__ import annotations

import errno
import socket
from typing import TYPE_CHECKING

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IServiceCollection
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.error import CannotListenError

from sipgateway.config import ConfigError, ListenerConfig
from sipgateway.transports.backlog import with_backlog
from sipgateway.transports.doors import door_factory
from sipgateway.transports.endpointstrings import split_description
from sipgateway.transports.limits import ConnectionCounter, LimitedFactory
from sipgateway.transports.proxyheader import unwrapped
from sipgateway.transports.tls import server_from_string

if TYPE_CHECKING:
    from sipgateway.gateway import Gateway

#: endpoint types that listen on a TCP port (Twisted's and our tls)
_TCP_ENDPOINTS = frozenset({"tcp", "tcp6", "ssl", "tls", "siptls"})


class ListenError(ConfigError):
    """A listener cannot listen; the message names the listener and why."""


class ListenerService(StreamServerEndpointService):
    """One listener's endpoint and factory; ``listen`` raises ``ListenError``.  ``config``:
    what it was built from (a reload compares it with the new one)."""

    def __init__(self, endpoint, factory, label: str, description: str,
                 config: ListenerConfig | None = None) -> None:
        super().__init__(endpoint, factory)
        self.label = label
        self.description = description
        self.config = config
        self._raiseSynchronously = True

    def check(self) -> None:
        """Bind a socket to the listener's TCP address and close it: raise ``ListenError``
        for what would make listening fail (nothing to check for other endpoints)."""
        address = tcp_address(self.description)
        if address is None:
            return  # not TCP, or a port the endpoint parser already refused
        family, interface, port = address
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted's ports do
                probe.bind((interface, port))
        except (OSError, OverflowError) as e:
            raise ListenError(f"listener {self.label}: {listen_failure(e, self.description)}") from None

    def listen(self) -> None:
        """Listen now, unless already listening."""
        if self._waitingForPort is not None:
            return
        try:
            super().privilegedStartService()
        except Exception as e:  # whatever the endpoint raised: say it in one line
            self._waitingForPort = None
            raise ListenError(f"listener {self.label}: {listen_failure(e, self.description)}") from None

    def privilegedStartService(self) -> None:
        self.listen()


def tcp_address(description: str) -> tuple[socket.AddressFamily, str, int] | None:
    """(family, interface, port) a TCP-based endpoint string listens on; None for others."""
    args, kwargs = split_description(unwrapped(description))
    kind = args[0].lower() if args else ""
    port = kwargs.get("port") or (args[1] if len(args) > 1 else "")
    if kind not in _TCP_ENDPOINTS or not port.lstrip("-").isdigit():
        return None
    interface = kwargs.get("interface") or ("::" if kind == "tcp6" else "")
    family = socket.AF_INET6 if kind == "tcp6" or isIPv6Address(interface) else socket.AF_INET
    return family, interface, int(port)


def address_problem(description: str) -> str | None:
    """What ``check`` would find without binding anything: a port out of range, an
    interface that is not an IP address (whether it is one of this host's needs a bind)."""
    address = tcp_address(description)
    if address is None:
        return None
    family, interface, port = address
    if not 0 <= port <= 65535:
        return f"port {port} is out of range (0-65535)"
    valid = isIPv6Address if family == socket.AF_INET6 else isIPAddress
    if interface and not valid(interface):
        return f"interface {interface!r} is not an IP{'v6' if family == socket.AF_INET6 else 'v4'} address"
    return None


def listener_endpoint(reactor, listener: ListenerConfig):
    """The server endpoint of ``listener`` (its files read and checked: a TLS listener's
    certificate and key); ``ConfigError`` naming the listener when it cannot be built."""
    try:
        return server_from_string(reactor, with_backlog(listener.endpoint, listener.backlog))
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise ConfigError(f"listener {listener.settings.name}: bad endpoint {listener.endpoint!r}: {e}") from None


def build_listener(reactor, listener: ListenerConfig, gateway: Gateway, counter: ConnectionCounter,
                   endpoint=None) -> ListenerService:
    """The service of one listener: its door's factory behind the shared connection limits.
    ``endpoint``: one already built by ``listener_endpoint``."""
    factory = door_factory(listener.kind, gateway, listener.settings)
    if endpoint is None:
        endpoint = listener_endpoint(reactor, listener)
    full = f"{listener.kind}:{listener.endpoint}"
    label = listener.settings.name if listener.settings.name == full else f"{listener.settings.name} ({full})"
    return ListenerService(endpoint, LimitedFactory(factory, counter, listener.settings.name), label,
                           listener.endpoint, listener)


def check_listeners(top: IServiceCollection) -> None:
    """``check`` every listener of ``top`` (before twistd daemonizes)."""
    for service in top:
        if isinstance(service, ListenerService):
            service.check()


def listen_failure(e: BaseException, description: str) -> str:
    """Why listening on ``description`` (a Twisted endpoint string) failed, in words."""
    args, kwargs = split_description(unwrapped(description))
    port = kwargs.get("port") or (args[1] if len(args) > 1 else "?")
    interface = kwargs.get("interface", "")
    if isinstance(e, OverflowError):  # socket.bind's own check of the port number
        return f"port {port} is out of range (0-65535)"
    cause = e.socketError if isinstance(e, CannotListenError) else e
    if isinstance(cause, socket.gaierror):
        return f"interface {interface!r} is not an IP address of this host ({cause.strerror})"
    code = getattr(cause, "errno", None)
    if code == errno.EADDRINUSE:
        on = f" on {interface}" if interface else ""
        return f"port {port} is already in use{on} (another gateway or program listens there)"
    if code == errno.EADDRNOTAVAIL:
        return f"interface {interface} is not an address of this host"
    if code == errno.EACCES:
        return (f"no permission to listen on port {port} (ports below 1024 need root or CAP_NET_BIND_SERVICE; "
                "with twistd --uid the gateway listens before it drops root)")
    if code == errno.EAFNOSUPPORT:
        return f"interface {interface} is of an address family this host does not have (IPv6 disabled?)"
    if isinstance(cause, OSError) and cause.strerror:
        return f"cannot listen on port {port}{f' of {interface}' if interface else ''}: {cause.strerror}"
    return str(e) or type(e).__name__
