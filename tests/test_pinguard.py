"""The PIN guard in front of the embedded library system, over a session: ten wrong PINs
lock the patron (the right PIN is refused too), every request that checks a PIN counts and
is refused alike, a right PIN clears the count, a terminal guessing for many patrons is
locked, and guesses sent at once still meet the limit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import SQLiteACS
from sipgateway.attempts import PIN_PATRON, PIN_TERMINAL
from sipgateway.gateway import Gateway
from sipgateway.lockout import Lockout, MemoryAttempts
from sipgateway.pinguard import PIN_LOCKED, PinGuard, PinGuardedACS, mask_patron
from sipgateway.session import Session
from sipgateway.settings import ListenerSettings
from tests.fakes import FakeACS

T0 = 1704449700.0
D = "20240105    101500"
LOCKED = f"AF{PIN_LOCKED}|".encode()
RIGHT = b"|BLY|CQY|BHUSD|BV0.00|AF1 hold(s) waiting for you|"  # how a 24 for 100001 with the right PIN ends
KIOSK = m.Terminal(account="sc1", institution="MAIN", location="MAIN", address="10.0.0.1")


class Desk:
    """The demo library behind the guard, the guard's counters in the same database, and
    sessions from any address."""

    def __init__(self, path: Path, **limits) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.acs = SQLiteACS.synchronous(str(path), now=lambda: datetime.fromtimestamp(self.clock.seconds()),
                                         hash_iterations=1000)
        self.acs.seed_demo()
        self.store = self.acs.attempt_store()
        self.guard = PinGuard(self.clock, self.store, **limits)
        self.gateway = Gateway(acs=PinGuardedACS(self.acs, self.guard), accounts=self.acs, reactor=self.clock,
                               lockout=Lockout(self.clock, self.store))
        self.sessions: dict[str, tuple[Session, list[bytes]]] = {}

    def send(self, line: str, address: str = "10.0.0.1") -> bytes:
        if address not in self.sessions:
            out: list[bytes] = []
            session = Session(self.gateway, ListenerSettings(name="t"), out.append, lambda: None,
                              f"t {address}:4000", address=address)
            self.sessions[address] = session, out
            session.line_received(b"9300CNsc1|COpass1|CPMAIN|")
            assert out == [b"941\r"]
        session, out = self.sessions[address]
        session.line_received(line.encode())
        return out[-1][:-1]

    def state(self) -> list[tuple]:
        """What a circulation request could change."""
        conn = self.acs.runner.conn
        return [tuple(row) for sql in ("SELECT * FROM loans", "SELECT * FROM holds", "SELECT * FROM payments",
                                       "SELECT barcode, blocked FROM patrons", "SELECT * FROM fees")
                for row in conn.execute(sql)]


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    d = Desk(tmp_path / "lib.sqlite3")
    yield d
    d.acs.close()


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []
    observer = lambda event: lines.append(formatEvent(event))  # noqa: E731
    globalLogPublisher.addObserver(observer)
    yield lines
    globalLogPublisher.removeObserver(observer)


def status(pin: str, patron: str = "100001") -> str:
    return f"23001{D}AOMAIN|AA{patron}|AC|AD{pin}|"


#: every request that checks a PIN, with the right PIN for 100001 (100002 for 25: blocked)
REQUESTS = {
    "23": (status("1234"), b"24              001" + D.encode() + b"AOMAIN|AA100001|AEAda Lovelace|BLY|CQN|"),
    "63": (f"63001{D}Y         AOMAIN|AA100001|AC|AD1234|",
           b"64              001" + D.encode() + b"000000000000000000000000AOMAIN|AA100001|AEAda Lovelace|BLY|CQN|"),
    "25": (f"25{D}AOMAIN|AA100002|AC|AD1234|", b"26"),
    "11": (f"11NN{D}{D}AOMAIN|AA100001|AB200001|AC|AD1234|",
           b"120NUU" + D.encode() + b"AOMAIN|AA100001|AB200001|AJ|AH|CQN|"),
    "29": (f"29NN{D}{D}AOMAIN|AA100001|AB200001|AC|AD1234|",
           b"300NUU" + D.encode() + b"AOMAIN|AA100001|AB200001|AJ|AH|CQN|"),
    "65": (f"65{D}AOMAIN|AA100001|AC|AD1234|", b"660" + b"0000" + b"0000" + D.encode() + b"AOMAIN|"),
    "15": (f"15+{D}AOMAIN|AA100001|AB200002|AC|AD1234|", b"160N" + D.encode() + b"AOMAIN|AA100001|AB200002|"),
    "37": (f"37{D}0100USDBV1.00|AOMAIN|AA100001|AC|AD1234|", b"38N" + D.encode() + b"AOMAIN|AA100001|"),
}


def wrong(code: str, n: int) -> str:
    line = REQUESTS[code][0]
    return line.replace("AD1234|", f"AD{9000 + n}|")


def test_ten_wrong_pins_lock_the_patron_and_then_the_right_pin_is_refused_too(desk: Desk) -> None:
    for n in range(10):
        assert desk.send(status(f"{9000 + n}")).endswith(b"|BLY|CQN|AFInvalid PIN|")
    reply = desk.send(status("1234"))
    assert reply == REQUESTS["23"][1] + LOCKED
    assert desk.send(status("1234"), address="10.0.0.2") == REQUESTS["23"][1] + LOCKED  # from any terminal


@pytest.mark.parametrize("code", sorted(REQUESTS))
def test_a_locked_patron_is_refused_by_every_request_that_checks_a_pin(desk: Desk, code: str) -> None:
    patron = "100002" if code == "25" else "100001"
    for n in range(10):
        desk.send(status(f"{9000 + n}", patron))
    before = desk.state()
    line, head = REQUESTS[code]
    reply = desk.send(line)
    assert reply.startswith(head) and reply.endswith(LOCKED), reply
    assert desk.state() == before  # nothing was done: no loan, renewal, hold, payment or unblocking


@pytest.mark.parametrize("code", sorted(REQUESTS))
def test_wrong_pins_count_whichever_request_carries_them(desk: Desk, code: str) -> None:
    patron = "100002" if code == "25" else "100001"
    for n in range(10):
        assert b"AFInvalid PIN|" in desk.send(wrong(code, n)), code
    assert desk.send(status("1234", patron)).endswith(LOCKED)


def test_the_right_pin_clears_the_patron_count(desk: Desk) -> None:
    for n in range(9):
        desk.send(status(f"{9000 + n}"))
    assert desk.send(status("1234")).endswith(RIGHT)
    for n in range(9):  # without the reset, the first of these would have been the tenth
        assert desk.send(status(f"{9000 + n}")).endswith(b"|CQN|AFInvalid PIN|")
    assert desk.send(status("9999")).endswith(b"|CQN|AFInvalid PIN|")  # the tenth since the right one
    assert desk.send(status("1234")).endswith(LOCKED)


def test_the_patron_key_ignores_case_and_padding(desk: Desk) -> None:
    for n in range(10):
        desk.send(status(f"{9000 + n}", "Djfiander " if n % 2 else "djfiander"))
    assert desk.send(status("6789", "djfiander")).endswith(LOCKED)


def test_a_terminal_guessing_for_many_patrons_is_locked(desk: Desk) -> None:
    for n in range(30):
        desk.send(status("1111", f"99{n:04}"))          # 30 patrons, one guess each
    assert desk.send(status("1234")).endswith(LOCKED)   # a patron it never guessed for
    assert desk.send(status("1234"), address="10.0.0.2").endswith(RIGHT)


def test_a_lock_ends_after_pin_lockout_seconds(tmp_path: Path) -> None:
    desk = Desk(tmp_path / "lib.sqlite3", lock_seconds=600)
    for n in range(10):
        desk.send(status(f"{9000 + n}"))
    desk.clock.advance(599)
    assert desk.send(status("1234")).endswith(LOCKED)
    desk.clock.advance(2)
    assert desk.send(status("1234")).endswith(RIGHT)
    desk.acs.close()


def test_requests_without_a_pin_are_not_guarded(desk: Desk) -> None:
    for n in range(10):
        desk.send(status(f"{9000 + n}"))
    reads: list[object] = []
    original = desk.store.read
    desk.store.read = lambda keys: (reads.append(keys), original(keys))[1]  # type: ignore[method-assign]
    assert desk.send(f"11NN{D}{D}AOMAIN|AA100001|AB200001|AC|").startswith(b"121")
    assert desk.send(f"23001{D}AOMAIN|AA100001|AC|").endswith(b"|BLY|BHUSD|BV0.00|AF1 hold(s) waiting for you|")
    assert reads == []


def test_the_lock_is_logged_once_with_the_patron_masked(desk: Desk, logged: list[str]) -> None:
    for n in range(15):
        desk.send(status(f"{9000 + n}"))
    locks = [line for line in logged if "PIN checks locked" in line]
    assert locks == ["PIN checks locked for patron ****01 for 3600 s after 10 wrong PINs "
                     "(the last from 10.0.0.1 (sc1))"]
    assert not any("100001" in line or "9003" in line for line in logged)


def test_the_counts_are_kept_in_the_database(desk: Desk) -> None:
    for n in range(3):
        desk.send(status(f"{9000 + n}"))
    rows = desk.acs.runner.conn.execute("SELECT scope, subject, subject2, failures FROM auth_failures "
                                        "ORDER BY scope").fetchall()
    assert [tuple(r) for r in rows] == [(PIN_PATRON, "100001", "", 3), (PIN_TERMINAL, "10.0.0.1", "sc1", 3)]


def test_guesses_sent_at_once_still_meet_the_limit() -> None:
    clock = Clock()
    backend = FakeACS()
    backend.manual = True
    guarded = PinGuardedACS(backend, PinGuard(clock, MemoryAttempts()))
    # from 200 terminals, so that only the patron's count can stop them
    answers = [guarded.patron_status(replace(KIOSK, address=f"10.0.{n}.1"),
                                     rq.PatronStatusRequest("100001", f"{9000 + n}"))
               for n in range(200)]
    while backend.pending:  # the backend answers one call at a time, as slowly as it likes
        backend.fire()
    checked = [c for c in backend.calls if c[0] == "patron_status" and c[2] is not None]
    assert len(checked) == 10                 # ten guesses reached the backend, one after another
    results = [d.result for d in answers]
    assert all(r.pin_valid is False for r in results)
    assert sum(PIN_LOCKED in r.messages.screen for r in results) == 190


def test_right_pins_of_one_terminal_go_out_side_by_side() -> None:
    clock = Clock()
    backend = FakeACS()
    backend.manual = True
    guarded = PinGuardedACS(backend, PinGuard(clock, MemoryAttempts()))
    answers = [guarded.patron_status(KIOSK, rq.PatronStatusRequest(f"2000{n:02}", "1234")) for n in range(25)]
    assert len(backend.pending) == 25  # 25 patrons, no failures recorded: nobody waits
    while backend.pending:
        backend.fire()
    assert all(d.result.pin_valid for d in answers)


def test_a_check_that_never_comes_back_gives_its_slot_back_after_the_hold_limit() -> None:
    clock = Clock()
    backend = FakeACS()
    backend.manual = True
    guarded = PinGuardedACS(backend, PinGuard(clock, MemoryAttempts(), max_failures=1, hold_limit=30))
    guarded.patron_status(KIOSK, rq.PatronStatusRequest("100001", "1234"))     # lost in the backend
    second = guarded.patron_status(KIOSK, rq.PatronStatusRequest("100001", "1234"))
    assert len(backend.calls) == 1 and not second.called  # the one slot is out
    clock.advance(30)
    assert len(backend.calls) == 2
    backend.fire(1)
    assert second.result.pin_valid is True
    assert len(guarded.guard.slots) == 0


def test_a_long_queue_of_refusals_is_woken_without_nesting() -> None:
    clock = Clock()
    backend = FakeACS()
    backend.manual = True
    store = MemoryAttempts()
    guarded = PinGuardedACS(backend, PinGuard(clock, store, max_failures=1))
    first = guarded.patron_status(KIOSK, rq.PatronStatusRequest("100001", "0000"))  # the one slot: a wrong PIN, out
    rest = [guarded.patron_status(KIOSK, rq.PatronStatusRequest("100001", "1234"))
            for _ in range(sys.getrecursionlimit() * 2)]
    backend.manual = False  # the refusals' own lookups answer at once
    backend.fire()
    assert first.result.pin_valid is False
    assert all(d.called and PIN_LOCKED in d.result.messages.screen for d in rest)
    assert len(guarded.guard.slots) == 0


def test_patron_ids_are_masked_in_logs() -> None:
    assert mask_patron("100001") == "****01"
    assert mask_patron("miker") == "****"
