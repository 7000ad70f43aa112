"""The PROXY protocol (v1 and v2) read before a listener's protocols see the connection:
the client's address is the peer for the connection limits, the session and the logs."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sipgateway.transports.limits import ConnectionCounter, LimitedFactory
from sipgateway.transports.proxyheader import (
    HEADER_TIMEOUT,
    V2_SIGNATURE,
    BadHeader,
    ProxyHeaderFactory,
    read_header,
    unwrapped,
)
from tests.logcapture import Logged, capture

BALANCER = IPv4Address("TCP", "10.0.0.1", 50000)
V1 = b"PROXY TCP4 192.0.2.7 10.0.0.5 40001 6001\r\n"


def v2(source: str, destination: str, sport: int, dport: int, command: int = 1) -> bytes:
    """A PROXY v2 header over TCP, as HAProxy's ``send-proxy-v2`` sends it."""
    six = ":" in source
    family = socket.AF_INET6 if six else socket.AF_INET
    block = socket.inet_pton(family, source) + socket.inet_pton(family, destination) + struct.pack("!HH", sport, dport)
    return V2_SIGNATURE + bytes([0x20 | command, (0x21 if six else 0x11)]) + struct.pack("!H", len(block)) + block


@pytest.fixture
def logged() -> Iterator[Logged]:
    yield from capture()


def test_v1_tcp4_and_the_bytes_after_it() -> None:
    addresses, rest = read_header(V1 + b"9300CN")
    assert addresses == (IPv4Address("TCP", "192.0.2.7", 40001), IPv4Address("TCP", "10.0.0.5", 6001))
    assert rest == b"9300CN"


def test_v1_tcp6_and_unknown() -> None:
    addresses, rest = read_header(b"PROXY TCP6 2001:db8::7 2001:db8::1 40001 6001\r\n")
    assert addresses[0] == IPv6Address("TCP", "2001:db8::7", 40001) and rest == b""
    assert read_header(b"PROXY UNKNOWN\r\n99") == (None, b"99")


def test_v2_ipv4_ipv6_mapped_and_local() -> None:
    addresses, rest = read_header(v2("192.0.2.7", "10.0.0.5", 40001, 6001) + b"99")
    assert addresses[0] == IPv4Address("TCP", "192.0.2.7", 40001) and rest == b"99"
    addresses, _ = read_header(v2("2001:db8::7", "2001:db8::1", 40001, 6001))
    assert addresses[0] == IPv6Address("TCP", "2001:db8::7", 40001)
    addresses, _ = read_header(v2("::ffff:192.0.2.7", "::ffff:10.0.0.5", 40001, 6001))
    assert addresses[0] == IPv4Address("TCP", "192.0.2.7", 40001)  # one device, one address
    assert read_header(v2("10.0.0.1", "10.0.0.5", 1, 2, command=0)) == (None, b"")  # the balancer's check


def test_every_prefix_of_a_header_asks_for_more() -> None:
    for header in (V1, v2("192.0.2.7", "10.0.0.5", 40001, 6001)):
        for n in range(len(header)):
            assert read_header(header[:n]) is None


@pytest.mark.parametrize("data", [b"9300CNsc1|", b"PROXY TCP4 nonsense\r\n",
                                  b"PROXY TCP4 192.0.2.7 10.0.0.5 99999 1\r\n",
                                  b"PROXY TCP4 2001:db8::7 10.0.0.5 1 2\r\n", b"PROXY " + b"1" * 200,
                                  V2_SIGNATURE + b"\x31\x11\x00\x00"])
def test_what_is_not_a_header(data: bytes) -> None:
    with pytest.raises(BadHeader):
        read_header(data)


class Recorder(Protocol):
    def __init__(self) -> None:
        self.peer = None
        self.received = b""

    def connectionMade(self) -> None:
        self.peer = self.transport.getPeer()

    def dataReceived(self, data: bytes) -> None:
        self.received += data


def connect(counter: ConnectionCounter, clock: Clock):
    limited = LimitedFactory(Factory.forProtocol(Recorder), counter, "raw")
    factory = ProxyHeaderFactory(limited, clock, "raw")
    proto = factory.buildProtocol(BALANCER)
    wire = StringTransport(peerAddress=BALANCER)
    proto.makeConnection(wire)
    return proto, wire


def recorder(proto) -> Recorder:
    return proto.wrappedProtocol.wrappedProtocol


def test_limits_and_protocol_see_the_client_not_the_balancer() -> None:
    counter = ConnectionCounter(max_total=10, max_per_address=1)
    proto, wire = connect(counter, Clock())
    assert counter.total == 0  # nothing is admitted before the header says who it is
    proto.dataReceived(V1[:10])
    proto.dataReceived(V1[10:] + b"99")
    assert recorder(proto).peer == IPv4Address("TCP", "192.0.2.7", 40001)
    assert recorder(proto).received == b"99"
    assert dict(counter.by_address) == {"192.0.2.7": 1}

    other, other_wire = connect(counter, Clock())  # a second device behind the same balancer
    other.dataReceived(v2("192.0.2.8", "10.0.0.5", 40002, 6001))
    assert dict(counter.by_address) == {"192.0.2.7": 1, "192.0.2.8": 1} and not other_wire.disconnecting

    third, third_wire = connect(counter, Clock())  # the same device again: its own limit of 1
    third.dataReceived(V1)
    assert third_wire.disconnecting or third_wire.disconnected
    proto.connectionLost(None)
    assert dict(counter.by_address) == {"192.0.2.8": 1}


def test_no_header_closes_with_one_line(logged: Logged) -> None:
    counter = ConnectionCounter(max_total=10, max_per_address=10)
    proto, wire = connect(counter, Clock())
    proto.dataReceived(b"9300CNsc1|COpass1|CPMAIN|\r")
    assert wire.disconnecting or wire.disconnected
    assert recorder(proto).peer is None and counter.total == 0
    lines = logged.lines("PROXY")
    assert lines == ["raw: 10.0.0.1:50000: the connection did not start with a PROXY protocol header; closing "
                     "(this listener expects HAProxy's PROXY protocol)"]
    assert "pass1" not in "".join(logged.lines())


def test_a_header_that_never_comes_times_out(logged: Logged) -> None:
    clock = Clock()
    proto, wire = connect(ConnectionCounter(10, 10), clock)
    proto.dataReceived(b"PROXY TCP4 ")
    clock.advance(HEADER_TIMEOUT)
    assert wire.disconnecting or wire.disconnected
    assert logged.lines(f"no PROXY header within {HEADER_TIMEOUT:g} s")
    proto.connectionLost(None)
    assert not clock.getDelayedCalls()


def test_unwrapped() -> None:
    assert unwrapped("haproxy:tcp:6001:interface=127.0.0.1") == "tcp:6001:interface=127.0.0.1"
    assert unwrapped("HAProxy:tls:6009") == "tls:6009"
    assert unwrapped("tcp:6001") == "tcp:6001"
