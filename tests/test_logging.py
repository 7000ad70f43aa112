"""What reaches the log about a client: its bytes escaped, secrets masked, excerpts capped."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, LogLevel

from sipgateway.gateway import Gateway
from sipgateway.logmask import LOG_EXCERPT, excerpt, mask, printable
from sipgateway.repeatlog import REPEAT_INTERVAL, RepeatedLines
from sipgateway.settings import ListenerSettings
from sipgateway.transports.raw import SIPFactory
from tests.fakes import FakeACS
from tests.logcapture import Logged, capture
from tests.test_session import Harness

PEER = IPv4Address("TCP", "192.0.2.7", 40001)


@pytest.fixture
def logged() -> Iterator[Logged]:
    yield from capture()


def test_client_bytes_are_escaped_to_printable_ascii() -> None:
    hostile = b"\x1b[2J\x1b]0;owned\x07\r\nfake: logged in as 'admin' \\ \xc3\xa9\x00"
    text = printable(hostile)
    assert text.isascii() and text.isprintable()
    assert text == "\\x1b[2J\\x1b]0;owned\\x07\\r\\nfake: logged in as \\'admin\\' \\\\ \\xc3\\xa9\\x00"


def test_excerpt_masks_before_cutting_and_says_how_much_was_left_out() -> None:
    assert excerpt(b"9300CNsc1|COpass1|CPMAIN|") == "9300CNsc1|CO****|CPMAIN|"
    long = b"2300120240105    101500AOMAIN|AA1|AD" + b"s" * 400 + b"|AC" + b"t" * 10 + b"|"
    text = excerpt(long)
    assert "s" * 5 not in text and "t" * 5 not in text
    assert text == mask(long)  # masked, it is short enough
    junk = b"\x1b" * 1000
    text = excerpt(junk)
    assert text == "\\x1b" * LOG_EXCERPT + f"... ({1000 - LOG_EXCERPT} more bytes not shown)"


def test_unusable_request_log_line_is_escaped_masked_and_capped(logged: Logged) -> None:
    h = Harness()
    h.login()
    request = b"93\x1b[31mCNsc1|COpass1|" + b"\x07" * 2000
    assert h.send(request) == b"96"
    [line] = logged.lines("unusable request")
    assert "\x1b" not in line and "\x07" not in line and "pass1" not in line
    assert line.isascii() and line.isprintable()
    assert "93\\x1b[31mCNsc1|CO****|" + "\\x07" * (LOG_EXCERPT - 20) + "... (1764 more bytes not shown)" in line


# --- repeated lines: first in full, then one count per interval, and at close ----------

def test_repeated_lines_first_then_a_count_per_interval_then_at_close(logged: Logged) -> None:
    clock = Clock()
    lines = RepeatedLines(clock)
    log = Logger(namespace="test")
    for i in range(1000):
        lines.log(log.warn, "unusable request", "raw 10.0.0.1:4000", "unusable request {n}", n=i)
        if i == 500:
            clock.advance(REPEAT_INTERVAL - 1)
    assert logged.lines() == ["raw 10.0.0.1:4000: unusable request 0"]
    clock.advance(1)
    lines.log(log.warn, "unusable request", "raw 10.0.0.1:4000", "unusable request {n}", n=1000)
    assert logged.lines()[1:] == [
        "raw 10.0.0.1:4000: unusable request: 1000 more in the last 60 s, counted, not logged one by one; "
        "the latest: unusable request 1000"]
    for i in range(5):
        lines.log(log.warn, "unusable request", "raw 10.0.0.1:4000", "unusable request {n}", n=1001 + i)
        lines.log(log.info, "97 before any reply", "raw 10.0.0.1:4000", "97 first")  # its own kind
    lines.close()
    assert logged.lines()[2:] == [
        "raw 10.0.0.1:4000: 97 first",
        "raw 10.0.0.1:4000: unusable request: 5 more before the connection closed, counted, not logged one by "
        "one; the latest: unusable request 1005",
        "raw 10.0.0.1:4000: 97 before any reply: 4 more before the connection closed, counted, not logged one "
        "by one; the latest: 97 first"]
    assert [e["log_level"] for e in logged.events] == [LogLevel.warn, LogLevel.warn, LogLevel.info,
                                                       LogLevel.warn, LogLevel.info]


def test_a_session_flooding_unusable_requests_and_early_requests_logs_a_few_lines(logged: Logged) -> None:
    h = Harness(ListenerSettings(name="test", login_timeout=0))
    for i in range(2000):
        h.send(f"2300120240105    101500AOMAIN|AA{i}|AC|AD|")  # before login
        h.send(f"XX{i}")                                          # garbage, never the same twice
    assert len(logged.lines()) == 2
    h.clock.advance(REPEAT_INTERVAL)
    h.send("XX-last")
    assert len(logged.lines()) == 3
    assert "unusable request: 2000 more in the last 60 s" in logged.lines()[-1]
    h.session.connection_lost()
    assert len(logged.lines()) == 4
    assert logged.lines()[-1] == (
        "test 127.0.0.1:5000: request before login: 1999 more before the connection closed, counted, not logged "
        "one by one; the latest: 23 before a successful login (93); refused")


class FullBufferTransport(StringTransport):
    """Does what a TCP transport does once its send buffer is full: asks the producer to
    pause on every further write (the client never reads)."""

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None and len(self.io.getvalue()) > 4096:
            self.producer.pauseProducing()


def test_a_client_pipelining_without_reading_gets_one_back_pressure_line(logged: Logged) -> None:
    clock = Clock()
    factory = SIPFactory(Gateway(acs=FakeACS(), reactor=clock), ListenerSettings(name="raw"))
    proto = factory.buildProtocol(PEER)
    wire = FullBufferTransport(peerAddress=PEER)
    proto.makeConnection(wire)
    proto.dataReceived(b"9300CNsc1|COpass1|CPMAIN|\r" + b"9900302.00\r" * 20000)
    assert wire.producerState == "paused"
    back_pressure = logged.lines("not reading its replies")
    assert back_pressure == ["raw 192.0.2.7:40001: not reading its replies; stopped reading from it until it does"]
    proto.connectionLost()
    [summary] = logged.lines("not reading its replies: ")
    assert summary.startswith("raw 192.0.2.7:40001: not reading its replies: ")
    assert int(summary.split(": ")[2].split()[0]) > 19000
    assert len(logged.lines()) == 5  # connected, logged in, back-pressure, its count, disconnected


def test_a_client_sending_wrong_logins_in_a_loop_logs_a_few_lines(logged: Logged) -> None:
    h = Harness()
    for _ in range(500):  # failures, then the lockout refuses them
        assert h.send("9300CNsc1|COwrong|CPMAIN|") == b"940"
    lines = [line for line in logged.lines() if not line.startswith("login locked out for")]  # the lockout's own
    assert lines == [
        "test 127.0.0.1:5000: login failed for account 'sc1'",
        "test 127.0.0.1:5000: login for 'sc1' refused: locked out (test 127.0.0.1:5000 (sc1)) after too many "
        "failures; 'sipgateway unlock test 127.0.0.1:5000' lifts it"]
    logged.clear()
    h.session.connection_lost()
    assert logged.lines() == [
        "test 127.0.0.1:5000: login failed: 9 more before the connection closed, counted, not logged one by one; "
        "the latest: login failed for account 'sc1'",
        "test 127.0.0.1:5000: login locked out: 489 more before the connection closed, counted, not logged one by "
        "one; the latest: login for 'sc1' refused: locked out (test 127.0.0.1:5000 (sc1)) after too many failures; "
        "'sipgateway unlock test 127.0.0.1:5000' lifts it"]
