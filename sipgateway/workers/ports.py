"""Listening sockets bound once by the parent and adopted by every worker.

Why the parent binds and the workers adopt (rather than SO_REUSEPORT, one socket per
worker): there is one accept queue per port, so a connection waiting in it when a worker
dies is accepted by another worker instead of being reset with the dead worker's queue;
a busy worker simply accepts less (the idle one is the one waiting in epoll), where
SO_REUSEPORT hashes connections to a worker whatever its load; the parent binds before
twistd drops root (ports below 1024 with ``--uid``), and no other process of the same
user can join the port.  Twisted's ``adoptStreamPort`` takes such a socket as it is.

A listener is shareable when its endpoint is, under any wrappers (``haproxy:``), a TCP or
UNIX socket or our ``tls:`` (TCP with TLS done in the worker).  Every other endpoint (a
serial line: one device can be opened by one process only; Twisted's ``ssl:``) is served
by worker 1 alone, which opens it as a single-process gateway does.
"""

from __future__ import annotations

import os
import socket

from twisted.internet.defer import execute
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, UNIXServerEndpoint
from twisted.internet.endpoints import _WrapperServerEndpoint as WrapperEndpoint
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from zope.interface import implementer

from sipgateway.transports.listening import ListenerService
from sipgateway.transports.proxyheader import ProxyHeaderEndpoint
from sipgateway.transports.tls import TLSServerEndpoint

_PLAIN = (TCP4ServerEndpoint, TCP6ServerEndpoint, UNIXServerEndpoint)


def shareable(endpoint: object) -> bool:
    """Can every worker serve this endpoint from one socket the parent bound?"""
    while isinstance(endpoint, WrapperEndpoint | ProxyHeaderEndpoint):
        endpoint = endpoint._wrappedEndpoint if isinstance(endpoint, WrapperEndpoint) else endpoint.inner
    return isinstance(endpoint, (*_PLAIN, TLSServerEndpoint))


def adopting(endpoint: object, adopted: IStreamServerEndpoint) -> object:
    """``endpoint`` with the socket it would bind replaced by ``adopted``: wrappers and TLS stay."""
    if isinstance(endpoint, WrapperEndpoint):
        return WrapperEndpoint(adopting(endpoint._wrappedEndpoint, adopted), endpoint._wrapperFactory)
    if isinstance(endpoint, ProxyHeaderEndpoint):  # haproxy: the header is read in the worker
        return ProxyHeaderEndpoint(endpoint.reactor, adopting(endpoint.inner, adopted))
    if isinstance(endpoint, TLSServerEndpoint):
        endpoint.tcp = adopted  # our own endpoint: TLS wraps the factory, the socket is adopted
        return endpoint
    if isinstance(endpoint, _PLAIN):
        return adopted
    raise ValueError(f"{endpoint!r} cannot be shared by worker processes")


class _NoConnections(Factory):
    """The parent never accepts: its port is held with reading stopped."""

    protocol = Protocol
    noisy = False

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name ("... starting on PORT")
        return "Held for the worker processes:"


class HeldPort(ListenerService):
    """The parent's side: bind and listen (in ``privilegedStartService``, before twistd drops
    root, with the one-line errors of any listener), then stop accepting: workers do."""

    def __init__(self, endpoint, label: str, description: str) -> None:
        super().__init__(endpoint, _NoConnections(), label, description)
        self.port = None

    def listen(self) -> None:
        super().listen()
        if self.port is None:
            self._waitingForPort.addCallback(self._hold)

    def _hold(self, port):
        port.stopReading()  # connections wait in the kernel's queue for a worker to accept them
        self.port = port
        return port

    def fileno(self) -> int:
        assert self.port is not None, "not listening yet"
        return self.port.fileno()

    def family(self) -> int:
        assert self.port is not None, "not listening yet"
        return self.port.socket.family


@implementer(IStreamServerEndpoint)
class AdoptedEndpoint:
    """The worker's side: listening means adopting the inherited socket (then closing our
    copy of the descriptor: the port holds its own)."""

    def __init__(self, reactor, fd: int, family: int) -> None:
        self.reactor = reactor
        self.fd = fd
        self.family = socket.AddressFamily(family)

    def listen(self, factory):
        def adopt():
            port = self.reactor.adoptStreamPort(self.fd, self.family, factory)
            os.close(self.fd)
            return port
        return execute(adopt)


class Adoption:
    """What a worker's ``make_service`` needs: which listener uses which inherited socket,
    and whether this worker also serves the listeners that cannot be shared."""

    def __init__(self, reactor, fds: dict[int | str, tuple[int, int]], first: bool, pid: int,
                 peers=None) -> None:
        self.reactor = reactor
        self.fds = fds
        self.first = first
        self.pid = pid
        #: the other workers, to ask (peers.py); becomes ``gateway.peers``
        self.peers = peers

    def serving(self, gateway) -> None:
        """This worker's gateway: it learns its pid and its peers, which can list its sessions."""
        gateway.worker, gateway.peers = self.pid, self.peers
        if self.peers is not None:
            from sipgateway.workers.peers import session_summary

            self.peers.answers["sessions"] = lambda: [session_summary(s, self.pid) for s in gateway.sessions]

    def endpoint(self, index: int | str, endpoint):
        """The endpoint listener ``index`` (or the port the parent holds under another key,
        such as "admin") listens on in this worker; None: not here."""
        if index in self.fds:
            fd, family = self.fds[index]
            return adopting(endpoint, AdoptedEndpoint(self.reactor, fd, family))
        return endpoint if self.first else None
