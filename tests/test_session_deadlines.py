"""The session and a backend that answers by each call's deadline (IACS.answers_by_deadline):
the deadline reaches the backend with the call, the session sets no timer of its own (a
write being applied is answered when its outcome is known), a deadline failure gets the
"did not answer in time" reply, and an answer after the connection closed is dropped."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from sipgateway.acs import model as m
from sipgateway.deadlines import DEADLINE_SLACK
from sipgateway.gateway import Gateway
from sipgateway.session import ACS_TIMEOUT, Session
from sipgateway.settings import ListenerSettings
from tests.fakes import FakeACS
from tests.test_session import T0

CHECKOUT = b"11NN20240105    101500                  AOMAIN|AA100001|AB200001|AC|"
TIMEOUT = 5.0


class DeadlineACS(FakeACS):
    answers_by_deadline = True

    def __init__(self) -> None:
        super().__init__()
        self.terminals: list[m.Terminal] = []

    def checkout(self, terminal, request):
        self.terminals.append(terminal)
        return super().checkout(terminal, request)


class Harness:
    def __init__(self, acs: FakeACS) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.acs = acs
        self.out: list[bytes] = []
        self.session = Session(Gateway(acs=acs, reactor=self.clock, acs_timeout=TIMEOUT),
                               ListenerSettings(name="test"), self.out.append, lambda: None, "test 127.0.0.1:5000")
        self.session.line_received(b"9300CNsc1|COpass1|CPMAIN|")
        assert self.out == [b"941\r"]
        self.acs.manual = True


def test_each_call_carries_the_deadline_of_its_request_to_the_backend() -> None:
    h = Harness(DeadlineACS())
    h.clock.advance(7)
    h.session.line_received(CHECKOUT)
    (terminal,) = h.acs.terminals
    assert T0 + 7 + TIMEOUT <= terminal.deadline <= T0 + 7 + TIMEOUT + DEADLINE_SLACK
    assert terminal == m.Terminal(account="sc1", institution="MAIN", location="MAIN")  # same terminal
    assert h.session.terminal.deadline == terminal.deadline


def test_a_write_held_past_its_deadline_gets_its_real_reply_not_a_timeout() -> None:
    h = Harness(DeadlineACS())
    h.session.line_received(CHECKOUT)
    h.clock.advance(TIMEOUT * 3)                # the session sets no timer of its own
    assert h.out == [b"941\r"]
    h.acs.fire()                                 # the write committed after its deadline
    assert h.out[-1].startswith(b"121NNY") and b"AB200001|" in h.out[-1]


def test_a_call_failed_at_its_deadline_gets_the_did_not_answer_in_time_reply() -> None:
    h = Harness(DeadlineACS())
    h.session.line_received(CHECKOUT)
    d, _ = h.acs.pending.pop()
    d.errback(Failure(m.ACSTimeout("checkout: its deadline passed before it was sent; nothing was changed")))
    assert h.out[-1].startswith(b"120NUN") and f"AF{ACS_TIMEOUT}|".encode() in h.out[-1]


def test_an_answer_after_the_connection_closed_is_dropped() -> None:
    for backend in (DeadlineACS, FakeACS):
        h = Harness(backend())
        h.session.line_received(CHECKOUT)
        h.session.connection_lost()
        h.acs.fire()
        assert h.out == [b"941\r"]
        h = Harness(backend())
        h.session.line_received(CHECKOUT)
        h.session.connection_lost()
        d: Deferred = h.acs.pending.pop()[0]
        d.errback(Failure(m.ACSTimeout("late")))
        assert h.out == [b"941\r"]


def test_a_backend_without_the_declaration_is_still_timed_by_the_session() -> None:
    h = Harness(FakeACS())
    h.session.line_received(CHECKOUT)
    h.clock.advance(TIMEOUT)
    assert f"AF{ACS_TIMEOUT}|".encode() in h.out[-1]


def test_a_request_gets_a_deadline_no_earlier_than_its_arrival_plus_acs_timeout() -> None:
    h = Harness(DeadlineACS())
    h.acs.manual = False
    for step in (0.0, 0.03, 0.05, 0.2, 0.01, 1.0):
        h.clock.advance(step)
        arrival = h.clock.seconds()
        h.session.line_received(CHECKOUT)
        deadline = h.acs.terminals[-1].deadline
        assert arrival + TIMEOUT <= deadline <= arrival + TIMEOUT + DEADLINE_SLACK
