"""Measure the CPU a front gateway spends per forwarded request, in one process, no sockets.

    python bench/front_hop.py [--requests 20000] [--sessions 10] [--profile]

The front's real stack (sessions, PinGuardedACS, OfflineACS, UpstreamACS, one upstream
connection per device, pass-through mode) serves a 63 with a PIN over and over, every
device with a request out at once; each upstream connection is a transport that
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
    def __init__(self) -> None:
        self.connected: list[_Upstream] = []

    def connect(self, factory):
        upstream = _Upstream()
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6001))
        upstream.protocol = protocol
        protocol.makeConnection(upstream)
        self.connected.append(upstream)
        return succeed(protocol)


class _NoAccounts:
    def account(self, name):
        return None

    def authenticate(self, user, password, location):
        return None


def build(sessions: int, clock_kind: str = "reactor"):
    """The front's stack in pass-through mode (as the bench's front), with ``sessions``
    devices logged in, each with its own upstream connection."""
    if clock_kind == "clock":
        clock = Clock()
        clock.advance(1_800_000_000)
    else:  # a reactor that is never run, for its timers: callLater and cancel cost what they
        # cost in the gateway (a heap), where task.Clock sorts its list on every call
        from twisted.internet.epollreactor import EPollReactor

        clock = EPollReactor()
    endpoint = _Endpoint()
    config = replace(parse_url("sip2://127.0.0.1:6001?institution=MAIN"), trace=False)  # [gateway] trace's default
    upstream = UpstreamACS([config], clock, endpoint_for=lambda reactor, config: endpoint)
    path = os.path.join(tempfile.mkdtemp(prefix="fronthop-"), "front.sqlite3")
    conn = schema.connect(path)
    schema.migrate(conn)
    conn.close()
    journal = Journal.open(path)
    offline = OfflineACS(upstream, AsyncJournal(journal, run=run_inline), OfflineConfig(), clock)
    offline.startService()
    guard = PinGuard(clock, MemoryAttempts())
    gateway = Gateway(acs=PinGuardedACS(offline, guard), accounts=_NoAccounts(), reactor=clock)
    devices = []
    for n in range(sessions):
        out: list[bytes] = []
        session = Session(gateway, ListenerSettings(), out.append, lambda: None, f"127.0.0.1:{5000 + n}")
        session.line_received(LOGIN)
        endpoint.connected[-1].answer()
        assert out and out[-1].startswith(b"941"), out
        devices.append((session, endpoint.connected[-1], out))
    return clock, devices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--sessions", type=int, default=10,
                        help="devices, each with a request out at once (default 10, as the bench's row)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the loop")
    parser.add_argument("--sort", default="tottime", help="cProfile order (default tottime)")
    parser.add_argument("--timers", choices=("reactor", "clock"), default="reactor",
                        help="an unrun epoll reactor's timers, as in the gateway (default), or task.Clock's")
    args = parser.parse_args(argv)
    clock, devices = build(args.sessions, args.timers)
    out = devices[0][2]

    advance = getattr(clock, "advance", None)  # task.Clock; real time passes by itself

    def run(n: int) -> None:
        for _ in range(n // len(devices)):
            for session, _upstream, _out in devices:  # every device asks ...
                if advance is not None:
                    advance(0.0005)  # 2,000 requests a second
                session.line_received(REQUEST)
            for _session, upstream, _out in devices:  # ... then the library system answers each
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
