"""The ceiling for a hop: a Twisted relay that parses nothing.  Each connection it accepts
gets its own connection to the upstream (as a front gateway in pass-through mode does), and
bytes go through both ways unread.  It writes with the gateway's own ``direct_write`` and
``no_delay`` (sipgateway/transports/directwrite.py: straight to the socket when nothing waits
in the transport's buffer, Nagle off on both sides), so it pays no more per write than the gateway.

    python bench/relay.py PORT UPSTREAM_PORT [--interface 127.0.0.1]

Whatever a front gateway adds to a request's latency beyond what this relay adds is the
gateway's own work; what the relay adds is the price of one more process on the path here
(its wake-ups, the loopback, the scheduler).  PORT 0 picks a free port.  Once listening,
prints ``listening on PORT`` on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys

# the epoll reactor, installed before anything imports the default one
try:
    from twisted.internet import epollreactor

    epollreactor.install()
except (ImportError, AssertionError):  # AssertionError: a reactor was installed already
    pass

from twisted.internet import protocol  # noqa: E402

# run as a script: this checkout's bench and sipgateway, whether or not the project is installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.ceiling import serve  # noqa: E402
from sipgateway.transports.directwrite import direct_write, no_delay  # noqa: E402

#: bytes a device may send before its upstream connection is up (then it is dropped)
MAX_PENDING = 64 * 1024


class Upstream(protocol.Protocol):
    """The relay's connection to the upstream, for one device."""

    def __init__(self, device: Device) -> None:
        self.device = device

    def connectionMade(self) -> None:  # noqa: N802
        no_delay(self.transport)  # as the gateway's upstream connections (upstream/protocol.py)
        self.write = direct_write(self.transport)
        self.device.upstream_made(self)

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.device.write(data)

    def connectionLost(self, reason) -> None:  # noqa: N802
        self.device.transport.loseConnection()


class UpstreamFactory(protocol.ClientFactory):
    def __init__(self, device: Device) -> None:
        self.device = device

    def buildProtocol(self, addr) -> Upstream:  # noqa: N802
        return Upstream(self.device)

    def clientConnectionFailed(self, connector, reason) -> None:  # noqa: N802
        self.device.transport.loseConnection()


class Device(protocol.Protocol):
    """A device's connection to the relay."""

    def __init__(self, reactor, upstream: tuple[str, int]) -> None:
        self.reactor = reactor
        self.upstream_address = upstream
        self.upstream: Upstream | None = None
        self.pending: list[bytes] = []
        self.pending_bytes = 0

    def connectionMade(self) -> None:  # noqa: N802
        no_delay(self.transport)  # as the gateway's doors (transports/limits.py)
        self.write = direct_write(self.transport)
        host, port = self.upstream_address
        self.reactor.connectTCP(host, port, UpstreamFactory(self))

    def upstream_made(self, upstream: Upstream) -> None:
        self.upstream = upstream
        if self.pending:
            upstream.transport.write(b"".join(self.pending))
            self.pending = []

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.upstream is not None:
            self.upstream.write(data)
            return
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes > MAX_PENDING:
            self.transport.loseConnection()

    def connectionLost(self, reason) -> None:  # noqa: N802
        if self.upstream is not None:
            self.upstream.transport.loseConnection()


class RelayFactory(protocol.Factory):
    def __init__(self, reactor, upstream: tuple[str, int]) -> None:
        self.reactor = reactor
        self.upstream = upstream

    def buildProtocol(self, addr) -> Device:  # noqa: N802
        return Device(self.reactor, self.upstream)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a SIP2 relay that parses nothing (the ceiling for a hop)")
    parser.add_argument("port", type=int, help="TCP port, 0 for a free one")
    parser.add_argument("upstream_port", type=int, help="the upstream's TCP port on the same interface")
    parser.add_argument("--interface", default="127.0.0.1", help="address to listen on and connect to "
                        "(default 127.0.0.1)")
    args = parser.parse_args(argv)
    for name in ("port", "upstream_port"):
        if not 0 <= getattr(args, name) <= 65535:
            parser.error(f"{name} {getattr(args, name)} is not between 0 and 65535")

    upstream = (args.interface, args.upstream_port)
    return serve("relay", lambda reactor: RelayFactory(reactor, upstream), args.port, args.interface)

if __name__ == "__main__":
    sys.exit(main())
