"""The ceiling for a Twisted SIP2 server on this machine: a line server that parses
nothing and answers every CR-terminated line with one fixed 98 line.  Whatever the
gateway does per request costs on top of this, so its rate is the most a Twisted
gateway could reach here.

    python bench/ceiling.py PORT [--interface 127.0.0.1]

PORT 0 picks a free port.  Once listening, prints ``listening on PORT`` on stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

# the epoll reactor, installed before anything imports the default one
try:
    from twisted.internet import epollreactor

    epollreactor.install()
except (ImportError, AssertionError):  # AssertionError: a reactor was installed already
    pass

from twisted.internet import protocol  # noqa: E402
from twisted.internet.error import CannotListenError  # noqa: E402
from twisted.protocols.basic import LineOnlyReceiver  # noqa: E402

REPLY = b"98YYYYNN60000320260101    1200002.00AOMAIN|AMMain Library|BXYYYYYYYYYYYYYYYY|AY1AZE5E5\r"


class FixedReply(LineOnlyReceiver):
    delimiter = b"\r"

    def lineReceived(self, line: bytes) -> None:
        self.transport.write(REPLY)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fixed-reply SIP2 ceiling server")
    parser.add_argument("port", type=int, help="TCP port, 0 for a free one")
    parser.add_argument("--interface", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"port {args.port} is not between 0 and 65535")

    return serve("ceiling", lambda reactor: protocol.Factory.forProtocol(FixedReply), args.port, args.interface)


def serve(name: str, factory: Callable[[Any], protocol.Factory], port: int, interface: str) -> int:
    """Listen on ``port`` with ``factory(reactor)``, say ``listening on PORT`` on stdout (what
    bench/servers.py waits for) and run the reactor; 1 when the port cannot be had."""
    from twisted.internet import reactor

    try:
        listening = reactor.listenTCP(port, factory(reactor), backlog=4096, interface=interface)
    except CannotListenError as e:
        print(f"{name}: cannot listen on {interface}:{port}: {e}", file=sys.stderr)
        return 1
    print(f"listening on {listening.getHost().port}", flush=True)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
