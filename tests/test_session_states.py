"""The session's explicit states, its one input queue, and its message-level entry (for
doors that hand it parsed messages, such as HTTP with JSON), driven by a Clock and the
in-memory ACS."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred, succeed

from sipgateway.acs import model as m
from sipgateway.exchange import EXCHANGES, ReplyContext
from sipgateway.session import MAX_PENDING
from sipgateway.settings import ListenerSettings
from sipgateway.sip2 import Message, format_message, parse
from sipgateway.states import State
from tests.test_session import Harness, with_ed

LOGIN = b"9300CNsc1|COpass1|CPMAIN|"
ITEM = "1720240105    101500AOMAIN|AB200001|AC|"
CHECKOUT = "11YN20240105    101500                  AOMAIN|AA100001|AB200001|AC|"


def message(line: bytes | str) -> Message:
    return parse(line.encode() if isinstance(line, str) else line, verify=False)


def answer(d: Deferred) -> Message:
    got: list = []
    d.addBoth(got.append)
    assert got, "the reply has not come"
    assert isinstance(got[0], Message), got[0]
    return got[0]


# --- states --------------------------------------------------------------------------------

def test_a_session_goes_awaiting_login_busy_ready_and_closed() -> None:
    h = Harness()
    h.acs.manual = True
    assert h.session.state is State.AWAITING_LOGIN
    h.session.line_received(LOGIN)
    assert h.session.state is State.BUSY and h.out == []
    h.acs.fire()  # the password checked
    assert h.session.state is State.READY and h.out == [b"941\r"]
    h.session.line_received(ITEM.encode())
    assert h.session.state is State.BUSY
    h.acs.fire()
    assert h.session.state is State.READY and h.out[-1].startswith(b"18")
    h.session.close()
    assert h.session.state is State.CLOSED and h.closed == 1


def test_a_refused_login_goes_back_to_awaiting_login() -> None:
    h = Harness()
    assert h.send(b"9300CNsc1|COwrong|CPMAIN|") == b"940"
    assert h.session.state is State.AWAITING_LOGIN and h.session.account is None


def test_input_while_busy_waits_in_order_and_a_flood_closes() -> None:
    h = Harness()
    h.login()
    h.acs.manual = True
    for n in range(3):
        h.session.line_received(with_ed(ITEM, str(n)))
    assert len(h.acs.pending) == 1  # one at a time
    for _ in range(3):
        h.acs.fire()
    assert [r[-10:-6] for r in h.out[-3:]] == [b"AY0A", b"AY1A", b"AY2A"]
    h.acs.manual = True
    for _ in range(MAX_PENDING + 2):
        h.session.line_received(ITEM.encode())
    assert h.session.state is State.CLOSED and h.closed == 1


def test_a_late_answer_after_close_is_dropped() -> None:
    h = Harness()
    h.login()
    h.acs.manual = True
    h.session.line_received(CHECKOUT.encode())
    written = len(h.out)
    h.session.connection_lost()
    h.acs.fire()  # the ACS answers after the connection went
    assert len(h.out) == written and h.session.state is State.CLOSED


def test_a_late_answer_after_the_session_timed_out_is_dropped() -> None:
    h = Harness()
    h.login()
    h.acs.manual = True
    h.session.line_received(with_ed(ITEM, "1"))
    h.clock.advance(h.gateway.acs_timeout)
    assert h.out[-1].startswith(b"18") and b"did not answer in time" in h.out[-1]
    h.acs.fire()
    assert len(h.out) == 2 and h.session.state is State.READY


def test_binding_holds_input_until_the_account_is_known_then_serves_it_in_order() -> None:
    h = Harness(ListenerSettings(name="serial", account="sc1", idle_timeout=0, login_timeout=0))
    looked_up: Deferred = Deferred()
    h.acs.account = lambda name: looked_up  # the door's account is still being looked up
    h.session.bind("sc1", "listener setting 'account'")
    assert h.session.state is State.BINDING
    h.session.line_received(ITEM.encode())
    h.session.line_received(with_ed(ITEM, "4"))
    assert h.out == []
    looked_up.callback(h.acs.accounts["sc1"][1])
    assert h.session.state is State.READY and h.session.account.name == "sc1"
    assert [r[:2] for r in h.out] == [b"18", b"18"] and h.out[1][-11:-5] == b"|AY4AZ"


def test_binding_to_an_unknown_account_leaves_the_device_to_log_in() -> None:
    h = Harness()
    h.session.bind("nosuch", "listener setting 'account'")
    assert h.session.state is State.AWAITING_LOGIN and h.session.account is None
    h.login()
    assert h.session.state is State.READY


# --- the message-level entry ---------------------------------------------------------------

def test_a_message_door_gets_reply_messages_with_login_gating_and_order() -> None:
    h = Harness()
    refused = answer(h.session.message_received(message(ITEM)))
    assert refused.code == "18" and "Please log in first (93)" in refused.fields["AF"]
    assert answer(h.session.message_received(message(LOGIN))).fixed == {"ok": "1"}
    h.acs.manual = True
    first, second = h.session.message_received(message(ITEM)), h.session.message_received(message(CHECKOUT))
    assert not first.called and not second.called and len(h.acs.pending) == 1
    h.acs.fire()
    assert answer(first).code == "18" and not second.called
    h.acs.fire()
    assert answer(second).fixed["ok"] == "1"
    assert h.out == []  # nothing written to a line transport


def test_a_message_door_gets_replay_97_and_96_as_line_doors_do() -> None:
    h = Harness()
    h.session.message_received(message(LOGIN))
    checkout = message(with_ed(CHECKOUT, "3"))
    first = answer(h.session.message_received(checkout))
    again = answer(h.session.message_received(message(with_ed(CHECKOUT, "3"))))
    assert again == first and h.acs.calls.count(("checkout", h.acs.calls[-1][1])) == 1
    assert answer(h.session.message_received(Message("97"))) == first
    bad = answer(h.session.message_received(Message("22", {}, {"AY": "1", "AZ": "0000"})))
    assert bad.code == "96"


def test_a_message_door_login_counts_toward_the_lockout() -> None:
    h = Harness()
    for _ in range(h.gateway.lockout.max_failures):
        assert answer(h.session.message_received(message(b"9300CNsc1|COwrong|CPMAIN|"))).fixed == {"ok": "0"}
    assert answer(h.session.message_received(message(LOGIN))).fixed == {"ok": "0"}  # locked out


def test_a_closed_session_fails_message_requests() -> None:
    h = Harness()
    h.session.close()
    got: list = []
    h.session.message_received(message(LOGIN)).addErrback(got.append)
    assert got and got[0].check(ConnectionError)


# --- the reply memo ------------------------------------------------------------------------

@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["99", "17", "23", "63"]), st.sampled_from(["", "1", "12"]),
                          st.sampled_from([0.0, 0.3, 1.0])), min_size=1, max_size=12))
def test_a_remembered_reply_is_the_reply_built_afresh(steps) -> None:
    """Whatever is asked, in whatever second and with whatever AY, a reply served from the
    memo equals the reply the table builds for that answer and context now."""
    h = Harness()
    h.login()
    answers = {}
    for name, value in (("status", m.ACSStatus(supported=h.acs.supported)),
                        ("item_information", m.ItemInformation(item_id="200001", title="Dune")),
                        ("patron_status", m.PatronStatus(patron_id="100001", name="Ada", valid=True)),
                        ("patron_information", m.PatronInformation(patron_id="100001", name="Ada", valid=True))):
        answers[name] = value
    for name, value in answers.items():  # the same answer object every time, as a read cache gives
        setattr(h.acs, name, lambda terminal, request, value=value: succeed(value))
    requests = {"99": "9900302.00", "17": ITEM, "23": "2300120240105    101500AOMAIN|AA100001|AC|AD|",
                "63": "6300120240105    101500          AOMAIN|AA100001|AC|AD|"}
    methods = {"99": "status", "17": "item_information", "23": "patron_status", "63": "patron_information"}
    for code, seq, wait in steps:
        h.clock.advance(wait)
        line = with_ed(requests[code], seq) if seq else requests[code].encode()
        got = h.send(line)
        msg = parse(line)
        ctx = ReplyContext.answering(msg, h.session.account, h.session.terminal, h.gateway.now(), "utf-8")
        fresh = format_message(*EXCHANGES[code].build(answers[methods[code]], ctx), sequence=seq or None,
                               error_detection=bool(seq))
        assert got == fresh


def test_every_reply_the_session_sends_is_in_the_table() -> None:
    assert {e.reply for e in EXCHANGES.values()} >= {"94", "98", "24", "64", "26", "36", "12", "30", "66", "10",
                                                      "18", "20", "16", "38"}



def test_a_line_served_again_is_read_again_after_a_login_changes_the_rules() -> None:
    """The session reuses the parse of a line it has just served; a login (which may change
    the character set and the error detection policy) forgets it."""
    h = Harness()
    h.login()
    assert h.send(ITEM).startswith(b"18") and h.send(ITEM).startswith(b"18")
    assert h.send(b"9300CNstrict|COpw|CPMAIN|") == b"941"  # an account that requires AY/AZ
    assert h.send(ITEM) == b"96AZFEF6"  # required: no AY/AZ is unusable now


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def served(self, session, code, outcome, seconds) -> None:
        self.seen.append((code, outcome, seconds))


def test_observers_hear_every_request_with_its_outcome_and_time() -> None:
    h = Harness()
    rec = Recorder()
    h.gateway.observers.append(rec)
    assert h.session in h.gateway.sessions
    h.send(ITEM)                                   # before login: refused
    h.login()                                      # ok
    h.send(b"9300CNsc1|COwrong|CPMAIN|")           # refused
    h.acs.manual = True
    h.session.line_received(with_ed(CHECKOUT, "1"))
    h.clock.advance(0.25)
    h.acs.fire()                                   # ok after 0.25 s
    h.send(with_ed(CHECKOUT, "1"))                 # replayed
    h.send(b"22garbage")                           # bad
    assert rec.seen == [("17", "refused", 0.0), ("93", "ok", 0.0), ("93", "refused", 0.0), ("11", "ok", 0.25),
                        ("11", "replayed", 0.0), ("22", "bad", 0.0)]
    assert (h.session.served, h.session.last_code, h.session.since) == (6, "22", h.clock.seconds() - 0.25)
    h.session.connection_lost()
    assert h.session not in h.gateway.sessions
