"""The telnet door with StringTransport + Clock, fed the exact bytes a real telnet client
sends. The INETUTILS_* streams were captured once from inetutils-telnet 2.4 (Debian 12)
logged into this door on loopback, one list item per TCP segment as it arrived."""

from __future__ import annotations

from twisted.conch.telnet import DO, DONT, ECHO, IAC, SGA, WILL, WONT
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.model import Account
from sipgateway.gateway import Gateway
from sipgateway.lockout import Lockout
from sipgateway.settings import ListenerSettings
from sipgateway.transports.telnet import (
    LOGIN_BAD,
    LOGIN_OK,
    MAX_TRIES,
    PROMPT_LOGIN,
    PROMPT_PASSWORD,
    SIPTelnetTransport,
    TelnetSIPFactory,
    clean_credential,
)
from tests.fakes import FakeACS

SC_STATUS = b"9900302.00AY1AZFCA5"

# `telnet 127.0.0.1 6002`: no option negotiation of its own (not port 23), answers ours,
# character mode (one key per segment), Enter sent as CR NUL.
INETUTILS_LOGIN = [
    IAC + DO + SGA + b"s", b"c", b"1", b"\r\x00",
]
INETUTILS_PASSWORD = [
    IAC + DO + ECHO, b"p", b"a", b"s", b"s", b"1", b"\r\x00",
]
INETUTILS_SIP = [IAC + DONT + ECHO] + [bytes([c]) for c in SC_STATUS] + [b"\r\x00"]

# `telnet -- 127.0.0.1 -6002`: the leading '-' makes it open with its own negotiation:
# DO/WILL ENCRYPT, DO SGA, WILL TTYPE NAWS TSPEED LFLOW LINEMODE NEW-ENVIRON, DO STATUS.
INETUTILS_NEGOTIATION = (b"\xff\xfd&\xff\xfb&\xff\xfd\x03\xff\xfb\x18\xff\xfb\x1f\xff\xfb \xff\xfb!"
                         b"\xff\xfb\"\xff\xfb'\xff\xfd\x05")
REFUSALS = (b"\xff\xfc&\xff\xfe&\xff\xfe\x18\xff\xfe\x1f\xff\xfe \xff\xfe!\xff\xfe\"\xff\xfe'\xff\xfc\x05")

# After `toggle crlf` at the telnet> prompt Enter goes out as CR LF; an empty line first.
INETUTILS_CRLF = [IAC + DO + SGA, b"\r\n", b"s", b"c", b"1", b"\r\n"]

PEER = IPv4Address("TCP", "10.0.0.7", 40001)


class RecordingSession:
    """Stands in for Session: records what the door hands it and answers ACK:<line> CR."""

    def __init__(self, gateway, settings, write, lose_connection, peer, *, address=None) -> None:
        self.write, self.lose_connection, self.peer, self.address = write, lose_connection, peer, address
        self.account: Account | None = None
        self.lines: list[bytes] = []
        self.lost = False

    def bind_account(self, account: Account) -> None:
        self.account = account

    def line_received(self, line: bytes) -> None:
        self.lines.append(line)
        self.write(b"ACK:" + line + b"\r")

    def connection_lost(self) -> None:
        self.lost = True

    def close(self) -> None:
        self.lose_connection()


class Harness:
    def __init__(self, test: SynchronousTestCase, settings: ListenerSettings | None = None,
                 session_factory=None, lockout: Lockout | None = None) -> None:
        self.clock = Clock()
        self.acs = FakeACS()
        self.gateway = Gateway(acs=self.acs, reactor=self.clock, lockout=lockout)
        self.sessions: list[RecordingSession] = []

        def make_session(*args, **kwargs):
            session = RecordingSession(*args, **kwargs)
            self.sessions.append(session)
            return session

        settings = settings or ListenerSettings(name="telnet", login_timeout=60.0)
        self.factory = TelnetSIPFactory(self.gateway, settings, session_factory=session_factory or make_session)
        self.telnet = self.factory.buildProtocol(PEER)
        self.wire = StringTransport(peerAddress=PEER)
        self.telnet.makeConnection(self.wire)
        self.protocol = self.telnet.protocol
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        test.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def send(self, *chunks: bytes) -> bytes:
        """Feed the chunks one by one; return everything written meanwhile."""
        self.wire.clear()
        for chunk in chunks:
            self.telnet.dataReceived(chunk)
        return self.wire.value()

    def logged(self) -> str:
        return "\n".join(formatEvent(e) for e in self.events)

    @property
    def session(self) -> RecordingSession:
        assert len(self.sessions) == 1
        return self.sessions[0]

    def login(self) -> None:
        self.send(b"sc1\r\n", b"pass1\r\n")


class RealClientTests(SynchronousTestCase):
    def test_inetutils_login_and_sip(self):
        h = Harness(self)
        self.assertEqual(h.wire.value(), IAC + WILL + SGA + PROMPT_LOGIN)
        self.assertEqual(h.send(*INETUTILS_LOGIN), IAC + WILL + ECHO + PROMPT_PASSWORD)
        self.assertEqual(h.send(*INETUTILS_PASSWORD), IAC + WONT + ECHO + b"\r\n" + LOGIN_OK)
        self.assertEqual(h.session.account.name, "sc1")
        self.assertEqual(h.acs.calls, [("authenticate", "sc1", "")])
        self.assertEqual(h.send(*INETUTILS_SIP), b"ACK:" + SC_STATUS + b"\r")
        self.assertEqual(h.session.lines, [SC_STATUS])
        self.assertIn("telnet 10.0.0.7:40001: telnet login as 'sc1'", h.logged())
        self.assertNotIn("pass1", h.logged())

    def test_inetutils_opening_negotiation_is_refused_politely(self):
        h = Harness(self)
        self.assertEqual(h.send(INETUTILS_NEGOTIATION), REFUSALS)
        # DO SGA confirmed our offer: not answered again, and SGA is on.
        self.assertEqual(h.telnet.getOptionState(SGA).us.state, "yes")
        out = h.send(*INETUTILS_LOGIN[1:])  # its "s" went with the DO SGA we replaced
        self.assertEqual(out, IAC + WILL + ECHO + PROMPT_PASSWORD)
        self.assertEqual(h.protocol._user, "c1")

    def test_inetutils_crlf_mode_and_empty_line(self):
        h = Harness(self)
        out = h.send(*INETUTILS_CRLF)
        self.assertEqual(out, PROMPT_LOGIN + IAC + WILL + ECHO + PROMPT_PASSWORD)
        self.assertEqual(h.send(IAC + DO + ECHO, b"pass1\r\n"), IAC + WONT + ECHO + b"\r\n" + LOGIN_OK)
        self.assertEqual(h.send(SC_STATUS + b"\r\n"), b"ACK:" + SC_STATUS + b"\r")


class LineEndTests(SynchronousTestCase):
    def test_bare_cr_ending_a_segment_is_a_line_end_at_once(self):
        # A device that sends "...\r" and waits: TelnetTransport alone would hold the CR.
        h = Harness(self)
        self.assertTrue(h.send(b"sc1\r").endswith(PROMPT_PASSWORD))
        self.assertTrue(h.send(b"\npass1\r").endswith(LOGIN_OK))  # the LF of a split CRLF is dropped
        self.assertEqual(h.send(SC_STATUS + b"\r"), b"ACK:" + SC_STATUS + b"\r")
        self.assertEqual(h.send(b"\x00" + SC_STATUS + b"\r"), b"ACK:" + SC_STATUS + b"\r")
        self.assertEqual(h.session.lines, [SC_STATUS, SC_STATUS])

    def test_lf_only(self):
        h = Harness(self)
        h.send(b"sc1\n", b"pass1\n")
        self.assertEqual(h.send(SC_STATUS + b"\n"), b"ACK:" + SC_STATUS + b"\r")

    def test_cr_nul_cr_lf_and_lf_in_one_stream(self):
        h = Harness(self)
        h.login()
        h.send(b"9900302.00\r\x0023001\r\n63001\n17001\r")
        self.assertEqual(h.session.lines, [b"9900302.00", b"23001", b"63001", b"17001"])

    def test_everything_in_one_segment_while_the_acs_is_slow(self):
        h = Harness(self)
        h.acs.manual = True
        out = h.send(b"sc1\r\npass1\r\n" + SC_STATUS + b"\r\n")
        self.assertNotIn(LOGIN_OK, out)
        self.assertEqual(h.sessions, [])
        h.wire.clear()
        h.acs.fire()
        self.assertEqual(h.wire.value(), LOGIN_OK + b"ACK:" + SC_STATUS + b"\r")

    def test_a_failed_try_and_the_next_in_one_segment(self):
        h = Harness(self)
        out = h.send(b"sc1\r\nwrong\r\nsc1\r\npass1\r\n" + SC_STATUS + b"\r")
        self.assertIn(LOGIN_BAD + PROMPT_LOGIN, out)
        self.assertTrue(out.endswith(LOGIN_OK + b"ACK:" + SC_STATUS + b"\r"))

    def test_replies_are_written_raw_with_iac_doubled(self):
        h = Harness(self)
        h.login()
        h.wire.clear()
        h.session.write(b"AF\xffline\nnext\r")
        self.assertEqual(h.wire.value(), b"AF\xff\xffline\nnext\r")

    def test_long_sip_line_closes(self):
        h = Harness(self, ListenerSettings(name="telnet", max_line=64))
        h.login()
        h.send(b"9" * 65)
        self.assertTrue(h.wire.disconnecting)
        self.assertIn("line longer than 64 bytes", h.logged())


class CredentialTests(SynchronousTestCase):
    def test_stray_iac_and_control_bytes_are_stripped(self):
        h = Harness(self)
        h.send(b"s" + IAC + IAC + b"c\x001\x07\r\n")  # IAC IAC arrives as a data byte 0xFF
        self.assertEqual(h.protocol._user, "sc1")

    def test_erase_characters_apply(self):
        self.assertEqual(clean_credential(b"sx\x7fc1"), "sc1")
        self.assertEqual(clean_credential(b"\x08\x08sc1"), "sc1")
        self.assertEqual(clean_credential(b"  sc1 \t"), "sc1")

    def test_empty_login_line_prompts_again_without_a_try(self):
        h = Harness(self)
        self.assertEqual(h.send(b"\r\n"), PROMPT_LOGIN)
        self.assertEqual(h.protocol.tries, 0)

    def test_overlong_login_line_closes(self):
        h = Harness(self)
        h.send(b"x" * 200)
        self.assertTrue(h.wire.disconnecting)
        self.assertIn("telnet login line longer than 128 bytes", h.logged())


class FailedLoginTests(SynchronousTestCase):
    def test_three_failed_tries_disconnect_and_never_log_the_password(self):
        h = Harness(self)
        for attempt in range(1, MAX_TRIES + 1):
            h.send(b"sc1\r\n")
            out = h.send(IAC + DO + ECHO, b"s3cretX\r\n")
            self.assertTrue(out.startswith(IAC + WONT + ECHO + b"\r\n" + LOGIN_BAD))
            if attempt < MAX_TRIES:
                self.assertTrue(out.endswith(PROMPT_LOGIN))
                self.assertFalse(h.wire.disconnecting)
                h.send(IAC + DONT + ECHO)
        self.assertTrue(h.wire.disconnecting)
        self.assertEqual(h.sessions, [])
        logged = h.logged()
        self.assertIn("telnet 10.0.0.7:40001: telnet login failed for account 'sc1' (try 3 of 3)", logged)
        self.assertIn("telnet 10.0.0.7:40001: 3 failed telnet logins; disconnecting", logged)
        self.assertNotIn("s3cretX", logged)

    def test_session_counts_later_93_failures_by_the_client_address(self):
        h = Harness(self)
        h.login()
        self.assertEqual(h.session.address, "10.0.0.7")

    def test_lockout_is_honoured(self):
        clock = Clock()
        lockout = Lockout(clock, max_failures=2, lock_seconds=600)
        h = Harness(self, lockout=lockout)
        h.send(b"sc1\r\n", b"bad\r\n", b"sc1\r\n", b"bad\r\n")
        out = h.send(b"sc1\r\n", b"pass1\r\n")  # right password, but locked out now
        self.assertIn(LOGIN_BAD, out)
        self.assertNotIn(LOGIN_OK, out)
        self.assertEqual(len([c for c in h.acs.calls if c[0] == "authenticate"]), 2)
        self.assertIn("refused: locked out", h.logged())
        # keyed by the client's address with the account: the same account from elsewhere,
        # and another account from here, may still try
        self.assertIsNotNone(self.successResultOf(lockout.check("10.0.0.7", "sc1")).locked)
        self.assertIsNone(self.successResultOf(lockout.check("10.0.0.8", "sc1")).locked)
        self.assertIsNone(self.successResultOf(lockout.check("10.0.0.7", "other")).locked)

    def test_success_clears_the_failures(self):
        clock = Clock()
        lockout = Lockout(clock, max_failures=3, lock_seconds=600)
        h = Harness(self, lockout=lockout)
        h.send(b"sc1\r\n", b"bad\r\n", b"sc1\r\n", b"pass1\r\n")
        records = self.successResultOf(lockout.store.records())
        # the address's own count stays (a success must not wipe out a scan of other accounts)
        self.assertEqual({r.key.scope for r in records}, {"login-address", "login-account"})

    def test_broken_acs_answers_and_counts_a_try(self):
        h = Harness(self)
        h.acs.raise_on.add("authenticate")
        out = h.send(b"sc1\r\n", b"pass1\r\n")
        self.assertIn(b"Login unavailable, try again later\r\n" + PROMPT_LOGIN, out)
        self.assertEqual(h.protocol.tries, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class TimeoutTests(SynchronousTestCase):
    def test_no_login_in_time_disconnects(self):
        h = Harness(self, ListenerSettings(name="telnet", login_timeout=30.0))
        h.send(b"sc1\r\n")
        h.clock.advance(29.9)
        self.assertFalse(h.wire.disconnecting)
        h.wire.clear()
        h.clock.advance(0.1)
        self.assertTrue(h.wire.disconnecting)
        self.assertEqual(h.wire.value(), b"\r\nLogin timed out\r\n")
        self.assertIn("telnet 10.0.0.7:40001: no telnet login within 30 s; disconnecting", h.logged())

    def test_timer_stops_after_login_and_on_disconnect(self):
        h = Harness(self, ListenerSettings(name="telnet", login_timeout=30.0))
        h.login()
        self.assertEqual(h.clock.getDelayedCalls(), [])
        h.clock.advance(31)
        self.assertFalse(h.wire.disconnecting)

        other = Harness(self, ListenerSettings(name="telnet", login_timeout=30.0))
        other.telnet.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(other.clock.getDelayedCalls(), [])

    def test_zero_means_no_timeout(self):
        h = Harness(self, ListenerSettings(name="telnet", login_timeout=0))
        self.assertEqual(h.clock.getDelayedCalls(), [])


class NegotiationTests(SynchronousTestCase):
    def test_client_that_never_answers_echo_gets_wont_once_it_does(self):
        h = Harness(self)
        h.send(b"sc1\r\n")
        out = h.send(b"pass1\r\n")  # no DO ECHO yet: nothing to withdraw
        self.assertEqual(out, b"\r\n" + LOGIN_OK)
        self.assertEqual(h.send(IAC + DO + ECHO), IAC + WONT + ECHO)

    def test_client_refusing_echo_is_fine(self):
        h = Harness(self)
        h.send(b"sc1\r\n")
        self.assertEqual(h.send(IAC + DONT + ECHO, b"pass1\r\n"), b"\r\n" + LOGIN_OK)

    def test_unsolicited_do_echo_is_refused_outside_the_password(self):
        h = Harness(self)
        self.assertEqual(h.send(IAC + DO + ECHO), IAC + WONT + ECHO)

    def test_second_try_waits_for_the_echo_withdrawal_before_asking_again(self):
        h = Harness(self)
        h.send(b"sc1\r\n", IAC + DO + ECHO)
        out = h.send(b"bad\r\n")          # WONT ECHO sent, not yet acknowledged
        self.assertIn(IAC + WONT + ECHO, out)
        out = h.send(b"sc1\r\n")          # asking for the password again ...
        self.assertEqual(out, PROMPT_PASSWORD)
        out = h.send(IAC + DONT + ECHO)   # ... WILL ECHO goes out once the WONT is acknowledged
        self.assertEqual(out, IAC + WILL + ECHO)

    def test_not_a_telnet_command_closes_without_an_exception(self):
        h = Harness(self)
        h.send(IAC + b"\x10")
        self.assertTrue(h.wire.disconnecting)
        self.assertIn("which is no telnet command", h.logged())

    def test_disconnect_reaches_the_session(self):
        h = Harness(self)
        h.login()  # its WILL ECHO was never answered: the hang-up must not loop on it
        h.telnet.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(h.session.lost)

    def test_factory_builds_our_transport(self):
        h = Harness(self)
        self.assertIsInstance(h.telnet, SIPTelnetTransport)
        self.assertIs(h.telnet.factory, h.factory)


class RealSessionTests(SynchronousTestCase):
    """The door with the real Session: after the telnet login no 93 is needed."""

    def test_sc_status_after_telnet_login(self):
        from sipgateway.session import Session

        h = Harness(self, session_factory=Session)
        h.login()
        reply = h.send(SC_STATUS + b"\r\x00")
        self.assertTrue(reply.startswith(b"98"), reply)
        self.assertTrue(reply.endswith(b"\r"))

    def test_a_client_that_does_not_read_gets_one_back_pressure_line_then_a_count(self):
        from sipgateway.session import Session

        h = Harness(self, session_factory=Session)
        h.login()
        tcp = h.wire
        self.assertIs(tcp.producer, h.protocol)
        for _ in range(1000):  # the transport asks again on every reply written to a full buffer
            h.protocol.pauseProducing()
        self.assertEqual(tcp.producerState, "paused")
        self.assertEqual(h.logged().count("not reading its replies"), 1)
        h.telnet.connectionLost(Failure(ConnectionDone()))
        self.assertIn("telnet 10.0.0.7:40001: not reading its replies: 999 more before the connection closed",
                      h.logged())
