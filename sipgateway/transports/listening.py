"""Listening on a listener's endpoint, with a failure to listen as one line naming the
listener and the reason (a port in use, a port out of range, an address of another host).

twistd listens in ``privilegedStartService``, after it has daemonized: a failure there is a
traceback in the log, and the daemon's parent shows its first 100 bytes ("... Address a").
So TCP-based listeners listen earlier, while the plugin builds the service (as root when
``--uid`` is given, as twistd does), and an error stops twistd before it forks, as a bad
option does. The sockets are inherited by the daemon. Other endpoints (a serial line,
which opens its device and starts its session at once) listen when twistd says so.
"""

from __future__ import annotations

import errno
import socket

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IServiceCollection
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.error import CannotListenError

from sipgateway.config import ConfigError
from sipgateway.transports.tls import TLSServerEndpoint, split_description

#: endpoints whose listen only binds a socket: safe to do before twistd forks
_EARLY = (TCP4ServerEndpoint, TCP6ServerEndpoint, SSL4ServerEndpoint, TLSServerEndpoint)


class ListenError(ConfigError):
    """A listener cannot listen; the message names the listener and why."""


class ListenerService(StreamServerEndpointService):
    """One listener's endpoint and factory; ``listen`` raises ``ListenError``."""

    def __init__(self, endpoint, factory, label: str, description: str) -> None:
        super().__init__(endpoint, factory)
        self.label = label
        self.description = description
        self._raiseSynchronously = True

    @property
    def early(self) -> bool:
        return isinstance(self.endpoint, _EARLY)

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


def listen_early(top: IServiceCollection) -> None:
    """Listen on every TCP-based listener of ``top`` now (before twistd daemonizes)."""
    for service in top:
        if isinstance(service, ListenerService) and service.early:
            service.listen()


def listen_failure(e: BaseException, description: str) -> str:
    """Why listening on ``description`` (a Twisted endpoint string) failed, in words."""
    args, kwargs = split_description(description)
    port = args[1] if len(args) > 1 else "?"
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
