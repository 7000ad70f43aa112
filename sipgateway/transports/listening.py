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

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IServiceCollection
from twisted.internet.abstract import isIPv6Address
from twisted.internet.error import CannotListenError

from sipgateway.config import ConfigError
from sipgateway.transports.endpointstrings import split_description

#: endpoint types that listen on a TCP port (Twisted's and our tls)
_TCP_ENDPOINTS = frozenset({"tcp", "tcp6", "ssl", "tls", "siptls"})


class ListenError(ConfigError):
    """A listener cannot listen; the message names the listener and why."""


class ListenerService(StreamServerEndpointService):
    """One listener's endpoint and factory; ``listen`` raises ``ListenError``."""

    def __init__(self, endpoint, factory, label: str, description: str) -> None:
        super().__init__(endpoint, factory)
        self.label = label
        self.description = description
        self._raiseSynchronously = True

    def check(self) -> None:
        """Bind a socket to the listener's TCP address and close it: raise ``ListenError``
        for what would make listening fail (nothing to check for other endpoints)."""
        args, kwargs = split_description(self.description)
        kind = args[0].lower() if args else ""
        port = kwargs.get("port") or (args[1] if len(args) > 1 else "")
        if kind not in _TCP_ENDPOINTS or not port.lstrip("-").isdigit():
            return  # not TCP, or a port the endpoint parser already refused
        interface = kwargs.get("interface") or ("::" if kind == "tcp6" else "")
        family = socket.AF_INET6 if kind == "tcp6" or isIPv6Address(interface) else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted's ports do
                probe.bind((interface, int(port)))
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


def check_listeners(top: IServiceCollection) -> None:
    """``check`` every listener of ``top`` (before twistd daemonizes)."""
    for service in top:
        if isinstance(service, ListenerService):
            service.check()


def listen_failure(e: BaseException, description: str) -> str:
    """Why listening on ``description`` (a Twisted endpoint string) failed, in words."""
    args, kwargs = split_description(description)
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
