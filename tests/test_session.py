"""Session state machine: login gating, AY/AZ, 96/97, replay, ordering, timeouts — with a
Clock and the in-memory ACS, asserting the exact bytes written."""

from __future__ import annotations

from datetime import datetime

import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from sipgateway.acs import model as m
from sipgateway.gateway import Gateway
from sipgateway.session import ACS_FAILED, ACS_TIMEOUT, NOT_LOGGED_IN, Session
from sipgateway.settings import ListenerSettings
from sipgateway.sip2 import checksum, parse, sip_date
from tests.fakes import FakeACS

T0 = 1704449700.0  # 2024-01-05 10:15:00 UTC


def with_ed(body: str, seq: str) -> bytes:
    """``body`` + AY/AZ with a correct checksum (UTF-8)."""
    text = f"{body}AY{seq}AZ"
    return (text + checksum(text.encode())).encode()


class Harness:
    def __init__(self, settings: ListenerSettings | None = None) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.acs = FakeACS()
        self.gateway = Gateway(acs=self.acs, reactor=self.clock, acs_timeout=5.0)
        self.out: list[bytes] = []
        self.closed = 0
        self.session = Session(self.gateway, settings or ListenerSettings(name="test"), self.out.append,
                               self._close, "test 127.0.0.1:5000")

    def _close(self) -> None:
        self.closed += 1

    @property
    def now(self) -> str:
        return sip_date(datetime.fromtimestamp(self.clock.seconds()))

    def send(self, line: bytes | str) -> bytes:
        before = len(self.out)
        self.session.line_received(line.encode() if isinstance(line, str) else line)
        assert len(self.out) == before + 1, f"expected one reply, got {self.out[before:]}"
        reply = self.out[-1]
        assert reply.endswith(b"\r") and b"\r" not in reply[:-1]
        return reply[:-1]

    def login(self, user: str = "sc1", password: str = "pass1") -> None:
        assert self.send(f"9300CN{user}|CO{password}|CPMAIN|") == b"941"


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_login_with_checksum_echoes_sequence(h: Harness) -> None:
    assert h.send(with_ed("9300CNsc1|COpass1|CPMAIN|", "1")) == b"941AY1AZFDFC"
    assert h.session.account is not None and h.session.account.name == "sc1"


def test_sequence_numbers_past_9_are_served_and_echoed_as_received(h: Harness) -> None:
    # A client that counts on after AY9 used to get 96 to everything from AY10 on.
    assert h.send(with_ed("9300CNsc1|COpass1|CPMAIN|", "10")) == b"941AY10AZFDCC"
    for seq in ("11", "99", "100", "011"):
        reply = h.send(with_ed("1720240105    101500AOMAIN|AB200001|AC|", seq))
        assert reply.startswith(b"18") and reply[-6 - len(seq) - 2:-4] == f"AY{seq}AZ".encode()
        assert reply[-4:] == checksum(reply[:-4]).encode()
    assert h.send(with_ed("9900302.00", "12")[:-4] + b"0000") == b"96AZFEF6"  # still verified
    assert h.acs.calls.count(("status", h.session.terminal)) == 0


def test_wrong_password_is_refused_and_connection_stays_usable(h: Harness) -> None:
    assert h.send(with_ed("9300CNsc1|COwrong|CPMAIN|", "1")) == b"940AY1AZFDFD"
    assert h.closed == 0
    h.login()


def test_request_before_login_is_refused_with_the_right_reply(h: Harness) -> None:
    reply = h.send("2300120240105    101500AOMAIN|AA100001|AC|AD1234|")
    assert reply == f"24YYYY          001{h.now}AOMAIN|AA100001|AE|BLN|AF{NOT_LOGGED_IN}|".encode()
    assert h.acs.calls == []
    reply = h.send("9900302.00")
    assert reply.startswith(b"98NNNNNN000999") and NOT_LOGGED_IN.encode() in reply
    h.login()


def test_sc_status_reports_real_flags_date_and_supported_messages(h: Harness) -> None:
    h.login()
    reply = h.send(with_ed("9900302.00", "2"))
    body = f"98YYYYYN999999{h.now}2.00AOMAIN|AMMain Library|BXYYYYYYYYYYYYYYYY|ANMAIN|AY2AZ"
    assert reply == (body + checksum(body.encode())).encode()


def test_bad_checksum_gets_96_and_runs_nothing(h: Harness) -> None:
    h.login()
    assert h.send("11NN20240105    101500                  AOMAIN|AA100001|AB200001|AC|AY3AZ0000") == b"96AZFEF6"
    assert [c for c in h.acs.calls if c[0] == "checkout"] == []


def test_resend_97_repeats_last_reply_byte_for_byte(h: Harness) -> None:
    assert h.send("97") == b"96"  # nothing sent yet
    h.login()
    first = h.send(with_ed("1720240105    101500AOMAIN|AB200001|AC|", "4"))
    assert h.send("97AZFEF5") == first
    assert h.send("97") == first


def test_repeated_side_effect_request_is_answered_from_cache_not_run_twice(h: Harness) -> None:
    h.login()
    request = with_ed("11NN20240105    101500                  AOMAIN|AA100001|AB200001|AC|AD1234|", "5")
    first = h.send(request)
    assert first.startswith(b"121NNY")
    h.clock.advance(3)
    assert h.send(request) == first
    assert len([c for c in h.acs.calls if c[0] == "checkout"]) == 1
    # a different sequence number is a new request
    h.send(with_ed("11NN20240105    101500                  AOMAIN|AA100001|AB200001|AC|AD1234|", "6"))
    assert len([c for c in h.acs.calls if c[0] == "checkout"]) == 2


def test_checkout_reply_exact_bytes(h: Harness) -> None:
    h.login()
    reply = h.send("11NN20240105    101500                  AOMAIN|AA100001|AB200001|AC|AD1234|")
    assert reply == (f"121NNY{h.now}AOMAIN|AA100001|AB200001|AJHarry Potter y el cáliz de fuego|"
                     "AH20240126    235959|CK001|").encode()


def test_ascii_account_never_gets_non_ascii_bytes(h: Harness) -> None:
    h.login("ascii", "pw")
    reply = h.send("11NN20240105    101500                  AOUWOLS|AA100001|AB200001|AC|")
    reply.decode("ascii")
    assert b"AJHarry Potter y el caliz de fuego|" in reply


def test_replies_leave_in_request_order(h: Harness) -> None:
    h.login()
    h.acs.manual = True
    h.session.line_received(b"1720240105    101500AOMAIN|AB200001|")
    h.session.line_received(b"1720240105    101500AOMAIN|AB200002|")
    assert h.out[-1] == b"941\r" and len(h.acs.pending) == 1  # the second waits for the first
    h.acs.fire()
    assert b"AB200001|" in h.out[-1]
    h.acs.fire()
    assert b"AB200002|" in h.out[-1]


def test_acs_that_never_answers_gets_failure_reply_and_session_stays_usable(h: Harness) -> None:
    h.login()
    h.acs.manual = True
    h.session.line_received(b"11NN20240105    101500                  AOMAIN|AA100001|AB200001|AC|")
    h.clock.advance(5)
    reply = h.out[-1][:-1]
    assert reply == f"120NUN{h.now}AOMAIN|AA100001|AB200001|AJ|AH|AF{ACS_TIMEOUT}|".encode()
    h.acs.fire()  # the late answer is dropped
    assert h.out[-1][:-1] == reply
    h.acs.manual = False
    assert h.send("1720240105    101500AOMAIN|AB200001|").startswith(b"18030101")


def test_acs_that_raises_gets_failure_reply(h: Harness) -> None:
    h.login()
    h.acs.raise_on.add("item_information")
    reply = h.send("1720240105    101500AOMAIN|AB200001|")
    assert reply == f"18010101{h.now}AB200001|AJ|AF{ACS_FAILED}|".encode()


def test_block_patron_answers_24(h: Harness) -> None:
    h.login()
    reply = h.send(with_ed("01N20240105    101500AOMAIN|ALCARD BLOCKED|AA100001|AC|", "5"))
    msg = parse(reply)
    assert msg.code == "24" and msg.fixed["patron_status"].startswith("YYYY")
    assert h.acs.calls[-1] == ("block_patron", "100001", "CARD BLOCKED", False)


def test_required_checksum_refuses_plain_requests(h: Harness) -> None:
    h.login("strict", "pw")
    assert h.send("1720240105    101500AOMAIN|AB200001|") == b"96AZFEF6"
    assert h.send(with_ed("1720240105    101500AOMAIN|AB200001|", "1")).startswith(b"18")


def test_error_detection_off_never_appends(h: Harness) -> None:
    h.login("quiet", "pw")
    reply = h.send(with_ed("1720240105    101500AOMAIN|AB200001|", "1"))
    assert b"AY" not in reply and b"AZ" not in reply


def test_same_garbage_three_times_closes(h: Harness) -> None:
    h.login()
    for _ in range(3):
        assert h.send("55garbage") == b"96"
    assert h.closed == 1


def test_unparseable_request_names_the_problem_and_continues(h: Harness) -> None:
    h.login()
    assert h.send("1720241305    101500AOMAIN|AB1|") == b"96"
    assert h.closed == 0
    assert h.send("1720240105    101500AOMAIN|AB200001|").startswith(b"18")


def test_idle_timeout_closes() -> None:
    h = Harness(ListenerSettings(name="t", idle_timeout=30, login_timeout=0))
    h.login()
    h.clock.advance(29)
    h.send("1720240105    101500AOMAIN|AB200001|")
    h.clock.advance(29)
    assert h.closed == 0
    h.clock.advance(2)
    assert h.closed == 1


def test_login_timeout_closes_when_not_logged_in() -> None:
    h = Harness(ListenerSettings(name="t", idle_timeout=0, login_timeout=10))
    h.clock.advance(10)
    assert h.closed == 1


def test_bound_account_is_logged_in_and_93_must_match() -> None:
    h = Harness(ListenerSettings(name="serial", idle_timeout=0, login_timeout=0))
    h.session.bind_account(h.acs.accounts["sc1"][1])
    assert h.send("1720240105    101500AOMAIN|AB200001|").startswith(b"18")
    assert h.send("9300CNascii|COpw|") == b"940"
    assert h.send("9300CNsc1|COpass1|") == b"941"


def test_lockout_after_repeated_failures() -> None:
    h = Harness(ListenerSettings(name="t", idle_timeout=0, login_timeout=0))
    for _ in range(10):
        assert h.send("9300CNsc1|COwrong|") == b"940"
    assert h.send("9300CNsc1|COpass1|") == b"940"  # locked, even with the right password
    h.clock.advance(3601)
    assert h.send("9300CNsc1|COpass1|") == b"941"


@pytest.mark.parametrize("line,expect_prefix", [
    ("2300120240105    101500AOMAIN|AA100001|AC|AD1234|", b"24              001"),
    ("6300120240105    101500  Y       AOMAIN|AA100001|AC|AD1234|BP1|BQ5|", b"64              001"),
    ("2520240105    101500AOMAIN|AA100001|AC|AD1234|", b"26              000"),
    ("29NN20240105    101500                  AOMAIN|AA100001|AB200001|AC|", b"301YNY"),
    ("6520240105    101500AOMAIN|AA100001|AC|", b"6610001000120240105"[:6]),
    ("09N20240105    10150020240105    101500APMAIN|AOMAIN|AB200001|AC|", b"101YNN"),
    ("1920240105    101500AOMAIN|AB200001|AC|CHdamaged|", b"201"),
    ("15+20240105    101500AOMAIN|AA100001|AJDune|AC|", b"161N"),
    ("3520240105    101500AOMAIN|AA100001|AC|AD|", b"36Y"),
    ("3720240105    1015000400USDBV3.25|AOMAIN|AA100001|AC|AD1234|BKPOS-1|", b"38Y"),
    # OCLC Wise SIP2+
    ("3720240105    1015000100USDBV3.25|AOMAIN|AA100001|AC|FC3.25|", b"38Y"),
    ("3920240105    101500AA100001|BV1.00|FH2910|FI09|", b"40Y"),
    ("4120240105    101500AA100001|FJ01-01-2024|FK31-01-2024|", b"42YZ01-01-2024 ~ Registration ~ 10.00 ~ Cash"),
    ("7020240105    101500|AA100001|AB|", b"71GC200001~Dune~26-01-2024~~0.25~0.00~0~0.00~On hold for another"),
    ("Y120240105    101500AA100001|", b"Y20"),
    ("Y320240105    101500AA100001|FGBOEK-40-15.75-4100|FI00|", b"Y40"),
    ("X1FOjan12345|AA100001|AD1234|", b"X20AA100001|FOjan12345|"),
])
def test_every_pair_answers_with_its_reply(h: Harness, line: str, expect_prefix: bytes) -> None:
    h.login()
    reply = h.send(line)
    assert reply.startswith(expect_prefix), reply
    parse(reply)  # well-formed


def test_patron_information_lists_charged_items(h: Harness) -> None:
    h.login()
    reply = h.send("6300120240105    101500  Y       AOMAIN|AA100001|AC|AD1234|BP1|BQ5|")
    assert reply == (f"64              001{h.now}000000000002000000000000AOMAIN|AA100001|AEAda Lovelace|"
                     "BLY|CQY|BHUSD|BV0.00|AU200001|AU200002|").encode()
    assert h.acs.calls[-1] == ("patron_information", "100001", "1234", m.ItemList.CHARGED, 1, 5)


def test_account_idle_timeout_overrides_the_listener() -> None:
    h = Harness(ListenerSettings(name="t", idle_timeout=600, login_timeout=0))
    h.gateway.idle_timeouts["sc1"] = 20
    h.login()
    h.clock.advance(19)
    assert h.closed == 0
    h.clock.advance(2)
    assert h.closed == 1


def test_remembered_replies_follow_the_second_and_the_sequence(h: Harness) -> None:
    """A backend that answers with the same object gets the formatted reply reused,
    but never across a change of second, sequence number or institution."""
    h.login()
    same = m.ItemInformation(item_id="200001", circulation_status=m.CirculationStatus.AVAILABLE, title="Dune")
    h.acs.item_information = lambda terminal, item_id: succeed(same)
    first = h.send("1720240105    101500AOMAIN|AB200001|")
    assert h.send("1720240105    101500AOMAIN|AB200001|") == first
    a = h.send(with_ed("1720240105    101500AOMAIN|AB200001|", "1"))
    b = h.send(with_ed("1720240105    101500AOMAIN|AB200001|", "2"))
    assert a[-9:-6] == b"AY1" and b[-9:-6] == b"AY2"
    assert len(h.gateway.memo._entries) == 2  # one reply without AY/AZ, one with: AY is put in
    h.gateway.memo._entries.clear()
    assert h.send(with_ed("1720240105    101500AOMAIN|AB200001|", "2")) == b  # as formatted afresh
    assert h.send(with_ed("1720240105    101500AOMAIN|AB200001|", "1")) == a
    parse(a), parse(b)  # checksums right
    h.clock.advance(1)
    later = h.send("1720240105    101500AOMAIN|AB200001|")
    assert later != first and later[8:26] == h.now.encode()


def test_reply_memo_is_bounded_and_checks_identity() -> None:
    from sipgateway.replymemo import ReplyMemo

    clock = Clock()
    memo = ReplyMemo(clock, size=2)
    answer = object()
    assert memo.get("k", answer) is None
    memo.put("k", answer, b"x")
    assert memo.get("k", answer) == b"x"
    assert memo.get("k", object()) is None  # same key, another answer: not this reply
    memo.put("k2", answer, b"y")
    memo.put("k3", answer, b"z")  # full: starts over
    assert memo.get("k", answer) is None and memo.get("k3", answer) == b"z"
    clock.advance(1)
    assert memo.get("k3", answer) is None


def test_long_screen_messages_are_split_and_cleaned() -> None:
    from sipgateway.exchange.fields import texts

    text = "a|b\r" + "x" * 600
    parts = texts([text, ""], "utf-8")
    assert [len(p) for p in parts] == [255, 255, 94, 0]
    assert parts[0].startswith("a b ") and "".join(parts) == "a b " + "x" * 600
