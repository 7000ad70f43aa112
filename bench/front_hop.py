"""Measure the CPU a front gateway spends per forwarded request, in one process, no sockets.

    python bench/front_hop.py [--requests 20000] [--pooled] [--profile]

The front's real stack (Session, PinGuardedACS, OfflineACS, UpstreamACS and its upstream
connection) serves a 63 with a PIN over and over; the upstream is a transport that
records each request and is answered at once with the reply the back gateway's demo
library gives (AY/AZ as the request had them).  Prints microseconds per request: what the
front costs, without the back, the kernel or the load generator.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from dataclasses import replace

from twisted.internet.address import IPv4Address
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sipgateway.acs.offline.acs import OfflineACS  # noqa: E402
from sipgateway.acs.offline.journal import Journal  # noqa: E402
from sipgateway.acs.offline.runner import AsyncJournal, run_inline  # noqa: E402
from sipgateway.acs.sqlite import schema  # noqa: E402
from sipgateway.acs.upstream.backend import UpstreamACS  # noqa: E402
from sipgateway.acs.upstream.url import parse_url  # noqa: E402
from sipgateway.config.offline import OfflineConfig  # noqa: E402
from sipgateway.gateway import Gateway  # noqa: E402
from sipgateway.lockout import MemoryAttempts  # noqa: E402
from sipgateway.pinguard import PinGuard, PinGuardedACS  # noqa: E402
from sipgateway.session import Session  # noqa: E402
from sipgateway.settings import ListenerSettings  # noqa: E402
from sipgateway.sip2 import checksum  # noqa: E402

LOGIN = b"9300CNsc1|COpass1|CPMAIN|"
REQUEST = b"6300120260101    120000          AOMAIN|AA100001|AC|AD1234|"
#: the back gateway's demo answer (after the code)
REPLY_64 = ("              00120261127    220958000100000000000000000000"
            "AOMAIN|AA100001|AEAda Lovelace|BZ0010|CA0005|CB0025|BLY|CQY|BHUSD|BV0.00|CC10.00|"
            "BD12 St James's Square, London|BEada@example.org|BF555-0101|AF1 hold(s) waiting for you|")


class _Upstream:
    """The upstream side: one connection's transport; answers each request when asked."""

    disconnecting = False

    def __init__(self) -> None:
        self.protocol = None
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def writeSequence(self, seq) -> None:  # noqa: N802
        self.sent.extend(seq)

    def loseConnection(self) -> None:  # noqa: N802
        pass

    def getPeer(self):  # noqa: N802
        return IPv4Address("TCP", "127.0.0.1", 6001)

    getHost = getPeer

    def answer(self) -> None:
        data = self.sent.pop()
        at = data.rfind(b"AY")  # the request's sequence number, if any (no parse: not the front's cost)
        seq = data[at + 2:at + 3].decode() if at >= 0 and data[at + 3:at + 5] == b"AZ" else None
        reply = _REPLIES.get((data[:2], seq))
        if reply is None:
            body = b"941" if data[:2] == b"93" else b"64" + REPLY_64.encode()
            if seq is not None:
                body += f"AY{seq}AZ".encode()
                body += checksum(body).encode()
            reply = _REPLIES[data[:2], seq] = body + b"\r"
        self.protocol.dataReceived(reply)


_REPLIES: dict[tuple[bytes, str | None], bytes] = {}


class _Endpoint:
    def __init__(self, upstream: _Upstream) -> None:
        self.upstream = upstream

    def connect(self, factory):
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6001))
        self.upstream.protocol = protocol
        protocol.makeConnection(self.upstream)
        return succeed(protocol)


class _NoAccounts:
    def account(self, name):
        return None

    def authenticate(self, user, password, location):
        return None


def build(pooled: bool):
    clock = Clock()
    clock.advance(1_800_000_000)
    upstream_side = _Upstream()
    query = "institution=MAIN" + ("&login=gw&password=pw" if pooled else "")
    config = replace(parse_url(f"sip2://127.0.0.1:6001?{query}"), trace=False)  # as [gateway] trace's default
    upstream = UpstreamACS([config], clock,
                           endpoint_for=lambda reactor, config: _Endpoint(upstream_side))
    path = os.path.join(tempfile.mkdtemp(prefix="fronthop-"), "front.sqlite3")
    conn = schema.connect(path)
    schema.migrate(conn)
    conn.close()
    journal = Journal.open(path)
    offline = OfflineACS(upstream, AsyncJournal(journal, run=run_inline), OfflineConfig(), clock)
    offline.startService()
    if pooled:
        upstream_side.answer()  # the pool's 93
    guard = PinGuard(clock, MemoryAttempts())
    gateway = Gateway(acs=PinGuardedACS(offline, guard), accounts=_NoAccounts(), reactor=clock)
    out: list[bytes] = []
    session = Session(gateway, ListenerSettings(), out.append, lambda: None, "127.0.0.1:5000")
    return clock, upstream_side, session, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--pooled", action="store_true", help="pooled mode (default: pass-through, as the bench)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the loop")
    parser.add_argument("--sort", default="tottime", help="cProfile order (default tottime)")
    args = parser.parse_args(argv)
    clock, upstream, session, out = build(args.pooled)
    if args.pooled:
        session.line_received(b"9300CNgw|COpw|CPMAIN|")
    else:
        session.line_received(LOGIN)
        upstream.answer()
    assert out and out[-1].startswith(b"941"), out

    def run(n: int) -> None:
        for _ in range(n):
            clock.advance(0.0005)  # 2,000 requests a second
            session.line_received(REQUEST)
            upstream.answer()

    run(1000)  # warm the caches
    assert out[-1].startswith(b"64"), out[-1]
    first = out[-1]
    profiler = cProfile.Profile() if args.profile else None
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    run(args.requests)
    if profiler is not None:
        profiler.disable()
    seconds = time.process_time() - started
    assert out[-1][:20] == first[:20], (first, out[-1])
    print(f"{seconds / args.requests * 1e6:.1f} us of CPU per forwarded 63 ({args.requests} requests)")
    print("reply:", out[-1])
    if profiler is not None:
        pstats.Stats(profiler).sort_stats(args.sort).print_stats(35)
    return 0


if __name__ == "__main__":
    sys.exit(main())
