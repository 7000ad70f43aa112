"""Bounds: connection limits, secrets masked in logs, framing limits (the login lockout:
test_lockout.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport

from sipgateway.logmask import mask
from sipgateway.sip2 import checksum
from sipgateway.transports.framing import LineSplitter, LineTooLong
from sipgateway.transports.limits import ConnectionCounter, LimitedFactory


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


def connect(factory: LimitedFactory, host: str) -> tuple[Protocol, StringTransport]:
    addr = IPv4Address("TCP", host, 40000)
    proto = factory.buildProtocol(addr)
    transport = StringTransport(peerAddress=addr)
    proto.makeConnection(transport)
    return proto, transport


def test_connection_limits_total_and_per_address() -> None:
    counter = ConnectionCounter(max_total=3, max_per_address=2)
    factory = LimitedFactory(Factory.forProtocol(Echo), counter, "test")
    a1, t1 = connect(factory, "10.0.0.1")
    a2, t2 = connect(factory, "10.0.0.1")
    a3, t3 = connect(factory, "10.0.0.1")  # third from one address: refused
    assert not t1.disconnecting and not t2.disconnecting
    assert t3.disconnecting or t3.disconnected
    a3.dataReceived(b"ignored")
    assert t3.value() == b""
    b1, u1 = connect(factory, "10.0.0.2")
    c1, v1 = connect(factory, "10.0.0.3")  # fourth in all: refused
    assert v1.disconnecting or v1.disconnected
    assert counter.total == 3
    a1.connectionLost(None)
    a3.connectionLost(None)  # a refused connection going away changes no count
    assert counter.total == 2 and counter.by_address["10.0.0.1"] == 1
    d1, w1 = connect(factory, "10.0.0.3")
    assert not w1.disconnecting
    d1.dataReceived(b"hi")
    assert w1.value() == b"hi"


def test_secrets_are_masked() -> None:
    line = b"9300CNsc1|COpass1|CPMAIN|AY1AZF371"
    assert mask(line) == "9300CNsc1|CO****|CPMAIN|AY1AZF371"
    line = b"2300120240105    101500AOMAIN|AA100001|ACterm|AD1234|"
    assert mask(line) == "2300120240105    101500AOMAIN|AA100001|AC****|AD****|"
    assert "1234" not in mask(b"2500120240105    101500AD1234|AOMAIN|")
    assert mask(b"11NN20240105    101500AOMAIN|AC|") == "11NN20240105    101500AOMAIN|AC|"
    assert mask(b"9300COfirst|CNsc1|") == "9300CO****|CNsc1|"
    assert mask(b"93COfirst|CNsc1|") == "93CO****|CNsc1|"  # a malformed fixed part too


def test_a_secret_right_after_a_fixed_part_ending_in_a_letter_is_masked() -> None:
    # 37's fixed part ends with the currency; AC may be its first field
    line = b"3720240105    1015000100USDACterminalpw|AD1234|BV1.00|AOMAIN|AA100001|"
    assert mask(line) == "3720240105    1015000100USDAC****|AD****|BV1.00|AOMAIN|AA100001|"


def test_a_checksum_after_the_last_secret_is_kept_only_when_it_is_one() -> None:
    body = b"2300120240105    101500AOMAIN|AA1|ACterm|ADpinAY1AZ"
    right = checksum(body)
    assert mask(body + right.encode()) == f"2300120240105    101500AOMAIN|AA1|AC****|AD****AY1AZ{right}"
    assert mask(body + right.encode() + b"\r") == f"2300120240105    101500AOMAIN|AA1|AC****|AD****AY1AZ{right}\\r"
    # a PIN that merely ends like a checksum is masked whole
    assert mask(b"2300120240105    101500AOMAIN|AA1|ADpinAY1AZ1234") == "2300120240105    101500AOMAIN|AA1|AD****"
    assert mask(b"2300120240105    101500AOMAIN|AA1|AC|AD|") == "2300120240105    101500AOMAIN|AA1|AC|AD|"


def test_line_splitter_framing() -> None:
    s = LineSplitter(max_line=20)
    assert s.feed(b"99003") == []
    assert s.feed(b"02.00\r\n97\n\n96\r") == [b"9900302.00", b"97", b"96"]
    assert s.feed(b"abc\r") == [b"abc"]
    assert s.feed(b"x" * 21) is None
    s = LineSplitter(max_line=20)
    assert s.feed(b"x" * 25 + b"\r") is None
    s = LineSplitter(max_line=20)
    assert s.feed(b"12\r") == [b"12"]
    assert s.feed(b"\n34\r") == [b"34"]  # CR then LF in the next read: one terminator


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"17AB1", b"\r", b"\n", b"\r\n", b"x" * 19, b"x" * 20, b"99"]), max_size=12),
       st.lists(st.integers(1, 30), max_size=12), st.booleans())
def test_line_splitter_gives_the_same_lines_however_the_stream_is_read(pieces: list[bytes], cuts: list[int],
                                                                       at_each_cr: bool) -> None:
    """Reads of one whole CR-ended line take a shortcut: the lines, and the refusal of a
    line longer than max_line, are what the stream split at once would give."""
    stream = b"".join(pieces)
    normal = stream.replace(b"\r\n", b"\r").replace(b"\n", b"\r").split(b"\r")
    want = None if any(len(line) > 20 for line in normal) else [line for line in normal[:-1] if line]
    if at_each_cr:  # every read a whole line, as devices send them
        reads = [part + b"\r" for part in stream.split(b"\r")[:-1]] + [stream.split(b"\r")[-1]]
    else:
        reads, at = [], 0
        for cut in cuts:
            reads.append(stream[at:at + cut])
            at += cut
        reads.append(stream[at:])
    splitter, got = LineSplitter(max_line=20), []
    for chunk in reads:
        lines = splitter.feed(chunk)
        if lines is None:
            got = None
            break
        got += lines
    assert got == want


def test_line_splitter_one_line_at_a_time() -> None:
    s = LineSplitter(max_line=8)
    s.push(b"\r\nsc1\r")
    assert s.next_line() == b"" and s.next_line() == b"sc1" and s.next_line() is None
    s.push(b"\npass1\nrest")  # the LF of a CRLF split between two reads is no empty line
    assert s.next_line() == b"pass1" and s.next_line() is None
    s.max_line = 20
    assert s.feed(b"\r\n9900302.00\r") == [b"rest", b"9900302.00"]
    s = LineSplitter(max_line=8)
    s.push(b"123456789")
    with pytest.raises(LineTooLong):
        s.next_line()
    s = LineSplitter(max_line=8)
    s.push(b"123456789\r")
    with pytest.raises(LineTooLong):
        s.next_line()
