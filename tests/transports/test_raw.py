"""Raw SIP2 door: framing over a transport, a bound account, lines held until it is known."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sipgateway.gateway import Gateway
from sipgateway.settings import ListenerSettings
from sipgateway.transports.raw import SIPFactory
from tests.fakes import FakeACS

PEER = IPv4Address("TCP", "192.0.2.7", 40001)


def connect(acs: FakeACS, settings: ListenerSettings):
    factory = SIPFactory(Gateway(acs=acs, reactor=Clock()), settings)
    proto = factory.buildProtocol(PEER)
    wire = StringTransport(peerAddress=PEER)
    proto.makeConnection(wire)
    return proto, wire


def test_crlf_lf_and_split_reads() -> None:
    proto, wire = connect(FakeACS(), ListenerSettings(name="raw"))
    proto.dataReceived(b"9300CNsc1|COpa")
    proto.dataReceived(b"ss1|CPMAIN|\r\n99003")
    proto.dataReceived(b"02.00\n")
    assert wire.value().split(b"\r")[0] == b"941"
    assert wire.value().split(b"\r")[1].startswith(b"98YYYY")


def test_lines_wait_for_the_bound_account() -> None:
    acs = FakeACS()
    pending: Deferred = Deferred()
    acs.account = lambda name: pending  # a backend that answers later
    proto, wire = connect(acs, ListenerSettings(name="serial", account="sc1", idle_timeout=0, login_timeout=0))
    proto.dataReceived(b"1720240105    101500AOMAIN|AB200001|\r")
    assert wire.value() == b""
    pending.callback(acs.accounts["sc1"][1])
    assert wire.value().startswith(b"18030101")  # answered as sc1, not "log in first"


def test_overlong_line_closes() -> None:
    proto, wire = connect(FakeACS(), ListenerSettings(name="raw", max_line=64))
    proto.dataReceived(b"9" * 65)
    assert wire.disconnecting


def test_one_byte_a_minute_is_closed_by_the_idle_timeout() -> None:
    acs = FakeACS()
    clock = Clock()
    factory = SIPFactory(Gateway(acs=acs, reactor=clock), ListenerSettings(name="raw", idle_timeout=300))
    proto = factory.buildProtocol(PEER)
    wire = StringTransport(peerAddress=PEER)
    proto.makeConnection(wire)
    proto.dataReceived(b"9300CNsc1|COpass1|\r")
    for byte in b"9900302.0":  # never finishes its line
        clock.advance(60)
        proto.dataReceived(bytes([byte]))
        if wire.disconnecting:
            break
    assert wire.disconnecting  # bytes without a whole request do not keep it alive


def test_a_client_that_does_not_read_is_not_read_from() -> None:
    proto, wire = connect(FakeACS(), ListenerSettings(name="raw"))
    assert wire.producer is proto and wire.streaming
    proto.pauseProducing()  # what the transport does when our replies pile up unread
    assert wire.producerState == "paused"
    proto.resumeProducing()
    assert wire.producerState == "producing"


def test_disconnect_mid_message_drops_the_half_line() -> None:
    acs = FakeACS()
    proto, wire = connect(acs, ListenerSettings(name="raw"))
    proto.dataReceived(b"9300CNsc1|COpass1|\r11NN20240105    101500")
    proto.connectionLost(None)
    assert [c for c in acs.calls if c[0] == "checkout"] == []
    assert proto.session.closed


def test_too_many_lines_before_the_bound_account_is_known_closes() -> None:
    acs = FakeACS()
    acs.account = lambda name: Deferred()  # never answers
    proto, wire = connect(acs, ListenerSettings(name="serial", account="sc1", idle_timeout=0, login_timeout=0))
    proto.dataReceived(b"9900302.00\r" * 17)
    assert wire.disconnecting and proto.session.closed
