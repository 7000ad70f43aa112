"""One upstream connection: exact bytes out, lenient replies in, one request in flight,
timeouts and late replies, out-of-step detection, masked logs."""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.upstream.errors import (
    BadReply,
    ConnectionLost,
    DeadlinePassed,
    NotEncodable,
    NotSent,
    OutcomeUnknown,
    ReplyTimeout,
    Unavailable,
)
from sipgateway.acs.upstream.profiles import PROFILES
from sipgateway.acs.upstream.protocol import UpstreamProtocol
from sipgateway.acs.upstream.wire import WireSettings, show
from sipgateway.sip2 import checksum
from tests.upstream.helpers import CHECKIN_FIELDS, CHECKIN_FIXED, LogCapture, checkin_reply, protocol, reply

LOGIN_FIXED = {"uid_algorithm": "0", "pwd_algorithm": "0"}
LOGIN_FIELDS = {"CN": "gw", "CO": "secret", "CP": "DESK"}


def with_checksum(body: bytes) -> bytes:
    return body + checksum(body).encode()


class SendingTests(SynchronousTestCase):
    def test_request_bytes_with_sequence_and_checksum(self):
        proto, transport, _ = protocol()
        proto.send("93", LOGIN_FIXED, LOGIN_FIELDS)
        self.assertEqual(transport.value(), with_checksum(b"9300CNgw|COsecret|CPDESK|AY0AZ") + b"\r")

    def test_sequence_numbers_count_0_to_9_and_wrap(self):
        proto, transport, _ = protocol()
        seen = []
        for n in range(12):
            transport.clear()
            d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
            seen.append(transport.value()[-10:-6])
            proto.dataReceived(checkin_reply(str(n % 10)))
            self.successResultOf(d)
        self.assertEqual(seen, [f"AY{n % 10}A".encode() for n in range(12)])

    def test_no_checksum_mode_sends_no_error_detection(self):
        proto, transport, _ = protocol(checksum="none")
        proto.send("93", LOGIN_FIXED, LOGIN_FIELDS)
        self.assertEqual(transport.value(), b"9300CNgw|COsecret|CPDESK|\r")

    def test_character_checksum_sums_characters_not_bytes(self):
        proto, transport, _ = protocol(checksum="characters")
        proto.send("09", CHECKIN_FIXED, {**CHECKIN_FIELDS, "AB": "é1"})
        sent = transport.value()[:-1]
        body = sent[:-4].decode("utf-8")
        self.assertEqual(sent[-4:].decode(), "%04X" % (-sum(ord(c) & 0xFF for c in body) & 0xFFFF))
        self.assertNotEqual(sent[-4:].decode(), checksum(sent[:-4]))  # the byte sum differs for é

    def test_crlf_terminator(self):
        proto, transport, _ = protocol(terminator="CRLF")
        proto.send("93", LOGIN_FIXED, LOGIN_FIELDS)
        self.assertTrue(transport.value().endswith(b"AZ" + checksum(transport.value()[:-6]).encode() + b"\r\n"))

    def test_one_request_in_flight(self):
        proto, transport, _ = protocol()
        first = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        second = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        self.failureResultOf(second, Unavailable)
        self.assertEqual(transport.value().count(b"\r"), 1)
        self.assertNoResult(first)

    def test_deadline_passed_is_not_sent(self):
        proto, transport, clock = protocol()
        clock.advance(100)
        f = self.failureResultOf(proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS, deadline=100.0), DeadlinePassed)
        self.assertIsInstance(f.value, NotSent)
        self.assertEqual(transport.value(), b"")

    def test_request_sip2_cannot_carry_is_not_sent(self):
        proto, transport, _ = protocol()
        self.failureResultOf(proto.send("09", CHECKIN_FIXED, {**CHECKIN_FIELDS, "AB": "x" * 300}), NotEncodable)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(proto.idle)

    def test_only_requests_with_a_reply_can_be_sent(self):
        proto, transport, _ = protocol()
        for code in ("97", "10", "ZZ"):
            self.failureResultOf(proto.send(code, {}, {}), NotEncodable)
        self.assertEqual(transport.value(), b"")

    def test_sequence_is_not_used_up_by_a_refused_send(self):
        proto, transport, clock = protocol()
        clock.advance(10)
        self.failureResultOf(proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS, deadline=1.0), DeadlinePassed)
        proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        self.assertIn(b"AY0AZ", transport.value())


class ReplyTests(SynchronousTestCase):
    def test_reply_fires_with_the_message(self):
        proto, _, _ = protocol()
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.dataReceived(checkin_reply("0"))
        msg = self.successResultOf(d)
        self.assertEqual((msg.code, msg.fixed["ok"], msg.get("AB")), ("10", "1", "it2"))
        self.assertTrue(proto.idle)

    def test_a_reply_line_seen_before_is_not_decoded_again_but_its_checksum_still_counts(self):
        proto, transport, _ = protocol()
        msgs = []
        for n in range(11):  # AY 0..9, then 0 again: the same reply line as the first
            d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
            proto.dataReceived(checkin_reply(str(n % 10)))
            msgs.append(self.successResultOf(d))
        self.assertIs(msgs[10], msgs[0])  # the same Message: what is read from it can be remembered
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)  # AY1: a good line seen before, but damaged
        transport.clear()
        good = checkin_reply("1")
        damaged = good[:-5] + (b"0000" if good[-5:-1] != b"0000" else b"0001") + b"\r"
        proto.dataReceived(damaged)
        self.assertNoResult(d)
        self.assertEqual(transport.value(), with_checksum(b"97AZ") + b"\r")  # asked again, as for any bad checksum
        proto.dataReceived(good)
        self.assertIs(self.successResultOf(d), msgs[1])

    def test_lenient_terminators_and_split_reads(self):
        for terminator in (b"\r", b"\n", b"\r\n"):
            proto, _, _ = protocol()
            d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
            data = checkin_reply("0", terminator=terminator)
            for i in range(0, len(data), 7):  # seven bytes per read
                self.assertNoResult(d)
                proto.dataReceived(data[i:i + 7])
            self.assertEqual(self.successResultOf(d).get("AB"), "it2", terminator)
            d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
            proto.dataReceived(checkin_reply("1", terminator=terminator))
            self.successResultOf(d)

    def test_lowercase_and_missing_checksums_are_accepted(self):
        proto, _, _ = protocol()
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.dataReceived(checkin_reply("0", lower=True))
        self.successResultOf(d)
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.dataReceived(checkin_reply(None))
        self.successResultOf(d)

    def test_bad_checksum_asks_once_for_the_reply_again(self):
        proto, transport, _ = protocol()
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        transport.clear()
        good = checkin_reply("0")
        proto.dataReceived(good[:-5] + b"0000\r")
        self.assertEqual(transport.value(), b"97AZFEF5\r")
        self.assertNoResult(d)
        proto.dataReceived(good)
        self.successResultOf(d)

    def test_bad_checksum_twice_is_a_bad_reply(self):
        proto, transport, _ = protocol()
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        bad = checkin_reply("0")[:-5] + b"0000\r"
        proto.dataReceived(bad + bad)
        f = self.failureResultOf(d, BadReply)
        self.assertIsInstance(f.value, OutcomeUnknown)
        self.assertTrue(transport.disconnecting)

    def test_96_after_our_97_is_not_a_reason_to_send_the_request_again(self):
        proto, transport, _ = protocol()
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        transport.clear()
        proto.dataReceived(checkin_reply("0")[:-5] + b"0000\r")  # bad checksum: we ask with a 97
        proto.dataReceived(b"96\r")  # a server that cannot resend
        self.assertEqual(transport.value(), b"97AZFEF5\r")
        self.assertIsInstance(self.failureResultOf(d, BadReply).value, OutcomeUnknown)

    def test_96_makes_us_send_the_request_once_more(self):
        proto, transport, _ = protocol()
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        first = transport.value()
        transport.clear()
        proto.dataReceived(b"96\r")
        self.assertEqual(transport.value(), first)
        proto.dataReceived(checkin_reply("0"))
        self.successResultOf(d)


class OutOfStepTests(SynchronousTestCase):
    def test_wrong_reply_code_fails_and_closes(self):
        proto, transport, _ = protocol()
        log = LogCapture(self)
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.dataReceived(reply("94", {"ok": "1"}, {}, "0"))
        f = self.failureResultOf(d, BadReply)
        self.assertIn("a 94 came where a 10 was due", str(f.value))
        self.assertIn("upstream ils.example.org:6001:", str(f.value))
        self.assertTrue(transport.disconnecting)
        self.assertFalse(proto.usable)
        self.assertIn("closing the connection (out of step)", log.text())

    def test_wrong_sequence_number_fails_and_closes(self):
        proto, transport, _ = protocol()
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.dataReceived(checkin_reply("7"))
        self.assertIn("sequence number 7, request had 0", str(self.failureResultOf(d, BadReply).value))
        self.assertTrue(transport.disconnecting)

    def test_garbage_fails_and_closes(self):
        proto, transport, _ = protocol()
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.dataReceived(b"Problems handling the request: java.lang.NullPointerException\r")
        f = self.failureResultOf(d, BadReply)
        self.assertIn("Problems handling the request: java.lang.NullPointerException", f.value.line)
        self.assertTrue(transport.disconnecting)

    def test_unsolicited_line_closes(self):
        proto, transport, _ = protocol()
        log = LogCapture(self)
        proto.dataReceived(checkin_reply("0"))
        self.assertTrue(transport.disconnecting)
        self.assertIn("a line came when no reply was due", log.text())

    def test_over_long_reply_fails_and_closes(self):
        proto, transport, _ = protocol()
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.dataReceived(b"10" + b"x" * 70000)
        self.assertIn("longer than", str(self.failureResultOf(d, BadReply).value))
        self.assertTrue(transport.disconnecting)

    def test_connection_lost_while_waiting(self):
        proto, _, _ = protocol()
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.connectionLost(Failure(ConnectionDone()))
        f = self.failureResultOf(d, ConnectionLost)
        self.assertIsInstance(f.value, OutcomeUnknown)
        self.assertIsNone(self.successResultOf(f.value.late_reply))
        self.successResultOf(proto.closed)


class TimeoutTests(SynchronousTestCase):
    def test_timeout_then_late_reply_is_logged_handed_over_and_the_connection_closed(self):
        proto, transport, clock = protocol(timeout=5.0)
        log = LogCapture(self)
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        clock.advance(4.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        f = self.failureResultOf(d, ReplyTimeout)
        self.assertIsInstance(f.value, OutcomeUnknown)
        self.assertFalse(proto.usable)  # waiting for the late reply: no new request
        self.failureResultOf(proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS), Unavailable)
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(checkin_reply("0"))
        late = self.successResultOf(f.value.late_reply)
        self.assertEqual((late.code, late.get("AB")), ("10", "it2"))
        self.assertTrue(transport.disconnecting)
        self.assertIn("late reply to 09 dropped: 101YNN", log.text())

    def test_no_late_reply_closes_after_the_drain_time(self):
        proto, transport, clock = protocol(timeout=5.0)
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        clock.advance(5.0)
        f = self.failureResultOf(d, ReplyTimeout)
        self.assertNoResult(f.value.late_reply)
        clock.advance(proto.drain)
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(self.successResultOf(f.value.late_reply))

    def test_deadline_before_timeout_bounds_the_wait(self):
        proto, _, clock = protocol(timeout=5.0)
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS, deadline=1.0)
        clock.advance(0.99)
        self.assertNoResult(d)
        clock.advance(0.01)
        self.failureResultOf(d, ReplyTimeout)


class FolioErrorLineTests(SynchronousTestCase):
    def test_error_line_is_the_reply_and_the_connection_stays_in_step(self):
        proto, transport, _ = protocol("folio")
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.dataReceived(b"Problems handling the request: Unable to find item\r")
        f = self.failureResultOf(d, BadReply)
        self.assertIn("not a SIP2 reply", str(f.value))
        self.assertFalse(transport.disconnecting)
        self.assertTrue(proto.idle)
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.dataReceived(checkin_reply("1"))
        self.successResultOf(d)


class LogTests(SynchronousTestCase):
    def test_secrets_are_masked_and_bytes_escaped(self):
        proto, _, _ = protocol(trace=True)
        log = LogCapture(self)
        proto.send("93", LOGIN_FIXED, LOGIN_FIELDS)
        text = log.text()
        self.assertIn("CO****", text)
        self.assertNotIn("secret", text)
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)  # busy: refused
        self.failureResultOf(d)

    def test_requests_are_not_held_back_by_nagles_algorithm(self):
        class TCPTransport(StringTransport):
            no_delay = False

            def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 - Twisted's name
                self.no_delay = enabled

        transport = TCPTransport()
        proto = UpstreamProtocol(WireSettings.for_profile(PROFILES["generic"]), Clock(), "ils:6001", timeout=5.0)
        proto.makeConnection(transport)
        self.assertTrue(transport.no_delay)

    def test_lines_are_logged_only_with_trace(self):
        proto, _, _ = protocol(trace=False)
        log = LogCapture(self)
        proto.send("93", LOGIN_FIXED, LOGIN_FIELDS)
        self.assertEqual(log.lines(LogLevel.debug), [])

    def test_show_masks_escapes_and_bounds(self):
        self.assertEqual(show(b"6300120240101    000000          AOx|AApat|ADpin|ACtp|"),
                         "6300120240101    000000          AOx|AApat|AD****|AC****|")
        self.assertEqual(show(b"\x1b[2Jcaf\xc3\xa9\\"), "\\x1b[2Jcaf\\xc3\\xa9\\x5c")
        self.assertEqual(show(b"a" * 300), "a" * 200 + "... (300 bytes)")

    def test_warnings_about_bad_lines_mask_secrets(self):
        proto, _, _ = protocol()
        log = LogCapture(self)
        d = proto.send("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        proto.dataReceived(b"XXgarbage|ADsecretpin|\x00\r")
        self.failureResultOf(d, BadReply)
        warnings = "\n".join(log.lines(LogLevel.warn))
        self.assertIn("AD****", warnings)
        self.assertIn("\\x00", warnings)
        self.assertNotIn("secretpin", warnings)
