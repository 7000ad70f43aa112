"""The database process: calls go out as frames, one commit per batch, a Deferred fires
only once its batch is committed, PINs verified there are known here, a dead process
fails its calls and is started again, and stopping lets it finish what it was given."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.logger import globalLogPublisher

from sipgateway.acs import model as m
from sipgateway.acs.sqlite import SQLiteACS, loans
from sipgateway.acs.sqlite.context import Call
from sipgateway.acs.sqlite.errors import ACSUnavailable
from sipgateway.acs.sqlite.frames import FrameError, FrameReader, Setup, encode
from sipgateway.acs.sqlite.rules import CirculationRules
from tests.acs.childpipe import Children
from tests.acs.conftest import FAST, MAIN, fired


@pytest.fixture
def children() -> Iterator[Children]:
    kids = Children()
    yield kids
    kids.stop_all()


@pytest.fixture
def acs(tmp_path: Path, children: Children) -> Iterator[SQLiteACS]:
    library = SQLiteACS(str(tmp_path / "lib.sqlite3"), children.clock, hash_iterations=FAST, spawn=children)
    library.seed_demo()
    library.start()
    yield library
    closed = library.close()
    children.pump_until(lambda: closed.called, "closing")


@pytest.fixture
def logged() -> Iterator[list[str]]:
    from twisted.logger import formatEvent

    lines: list[str] = []

    def observe(event: dict) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def database(acs: SQLiteACS) -> sqlite3.Connection:
    return sqlite3.connect(acs.path)


def open_loans(acs: SQLiteACS) -> set[str]:
    conn = database(acs)
    try:
        return {r[0] for r in conn.execute("SELECT i.barcode FROM loans l JOIN items i ON i.id = l.item_id "
                                           "WHERE l.returned_at IS NULL")}
    finally:
        conn.close()


def checkout(acs: SQLiteACS, item: str, patron: str = "100001", pin: str | None = "1234") -> Deferred:
    return acs.checkout(MAIN, m.CheckoutRequest(patron_id=patron, item_id=item, patron_pin=pin))


def test_a_write_is_answered_after_its_commit_in_the_database_process(acs: SQLiteACS, children: Children) -> None:
    d = checkout(acs, "200001")
    assert not d.called                  # it went to the other process
    assert open_loans(acs) == set()      # and nothing has been sent yet: it leaves at the end of the turn
    children.pump_until(lambda: d.called)
    result = fired(d)
    assert result.ok and result.item_id == "200001" and result.pin_valid is True
    assert open_loans(acs) == {"200001"}  # committed before the answer came
    assert children.current.pid != 0 and len(children.started) == 1


def test_the_calls_of_one_turn_are_one_batch_with_one_commit(acs: SQLiteACS, children: Children) -> None:
    items = ["200001", "200002", "1565921879", "0440242746", "660"]
    ds = [checkout(acs, item) for item in items]
    children.pump_until(lambda: all(d.called for d in ds))
    assert all(fired(d).ok for d in ds)
    assert acs.runner.stats.batches == 1 and acs.runner.stats.commits == 1 and acs.runner.stats.largest == 5
    assert open_loans(acs) == set(items)


def test_a_pin_verified_in_the_database_process_is_known_to_quick_reads(acs: SQLiteACS,
                                                                        children: Children) -> None:
    first = acs.patron_status(MAIN, "100001", "1234")
    assert not first.called               # checking a PIN the first time hashes: not in the reactor
    children.pump_until(lambda: first.called)
    assert fired(first).pin_valid is True
    acs.cache.clear()
    again = acs.patron_status(MAIN, "100001", "1234")
    assert again.called and fired(again).pin_valid is True  # answered at once, here
    wrong = acs.patron_status(MAIN, "100001", "9999")
    assert not wrong.called               # a wrong PIN is never cached: it costs a hash every time
    children.pump_until(lambda: wrong.called)
    assert fired(wrong).pin_valid is False


def test_a_bug_in_a_call_fails_only_that_call_and_is_logged_with_its_traceback(
        acs: SQLiteACS, children: Children, logged: list[str]) -> None:
    good = checkout(acs, "200001")
    bad = acs.runner.submit("checkout", Call(loans.checkout, (None,), MAIN, acs.ctx.clock(), acs.ctx))
    also_good = checkout(acs, "200002")
    children.pump_until(lambda: good.called and bad.called and also_good.called)
    assert fired(good).ok and fired(also_good).ok
    with pytest.raises(AttributeError):
        fired(bad)
    children.pump_until(lambda: any("Traceback" in line for line in logged), "the traceback")
    text = "\n".join(logged)
    assert "database process: checkout failed" in text and "AttributeError" in text
    assert open_loans(acs) == {"200001", "200002"}


def test_a_dead_database_process_fails_its_calls_and_is_started_again(
        acs: SQLiteACS, children: Children, logged: list[str]) -> None:
    ok = checkout(acs, "200001")
    children.pump_until(lambda: ok.called)
    children.current.signalProcess("KILL")
    children.pump_until(lambda: children.current.ended, "the killed process")
    lost = checkout(acs, "200002")
    with pytest.raises(ACSUnavailable, match="checkout: the database process is not running"):
        fired(lost)
    assert acs.runner.failing
    status = fired(acs.status(MAIN))
    assert status.online is False and status.checkout_ok is False
    assert any("database process stopped unexpectedly" in line for line in logged)
    children.clock.advance(1.0)           # the first restart waits one second
    assert len(children.started) == 2
    again = checkout(acs, "200002")
    children.pump_until(lambda: again.called)
    assert fired(again).ok and not acs.runner.failing
    assert open_loans(acs) == {"200001", "200002"}


def test_calls_in_flight_when_the_process_dies_fail_with_a_clear_reason(acs: SQLiteACS,
                                                                        children: Children) -> None:
    children.current.signalProcess("STOP")   # frozen: it cannot answer
    try:
        d = checkout(acs, "200001")
        children.clock.advance(0)             # sent
        children.current.signalProcess("KILL")
    finally:
        children.current.signalProcess("CONT")
    children.pump_until(lambda: d.called)
    with pytest.raises(ACSUnavailable, match="during checkout: the database process exited"):
        fired(d)


def test_close_lets_the_database_process_commit_what_it_was_given(acs: SQLiteACS, children: Children) -> None:
    ds = [checkout(acs, item) for item in ("200001", "200002")]
    closed = acs.close()                  # the calls are sent first, then end of file
    children.pump_until(lambda: closed.called, "closing")
    assert all(fired(d).ok for d in ds)
    assert open_loans(acs) == {"200001", "200002"}
    assert children.current.proc.returncode == 0
    with pytest.raises(ACSUnavailable, match="closed"):
        fired(checkout(acs, "660"))


def test_calls_made_before_start_wait_for_the_database_process(tmp_path: Path, children: Children) -> None:
    acs = SQLiteACS(str(tmp_path / "lib.sqlite3"), children.clock, hash_iterations=FAST, spawn=children)
    acs.seed_demo()
    account = acs.account("sc1")          # a serial line binding its account while twistd starts
    children.clock.advance(0)
    assert not account.called and children.started == []
    acs.start()
    children.pump_until(lambda: account.called)
    assert fired(account).name == "sc1"
    closed = acs.close()
    children.pump_until(lambda: closed.called, "closing")


def test_start_up_calls_run_in_the_caller_before_start(tmp_path: Path, children: Children) -> None:
    acs = SQLiteACS(str(tmp_path / "lib.sqlite3"), children.clock, hash_iterations=FAST, spawn=children)
    assert acs.is_new and acs.seed_demo()
    account = acs.ensure_account("kiosk-9", "s3cret", "MAIN")
    assert account.name == "kiosk-9" and children.started == []   # no process needed for start-up
    assert fired(acs.close()) is None


def test_frames_survive_any_split_and_garbage_is_an_error() -> None:
    setup = Setup(path="/x", currency="USD", rules=CirculationRules(max_renewals=5), hash_iterations=1,
                  cache_size=4, secrets_key=b"k" * 32, max_batch=8)
    data = encode(setup) + encode([(1, "checkout", True, loans.checkout, (), MAIN, None)])
    for cut in range(len(data) + 1):
        reader = FrameReader()
        frames = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert frames[0] == setup and frames[0].rules.loan_period("001") == 21
        assert frames[1][0][3] is loans.checkout and reader.buffered == 0
    with pytest.raises(FrameError, match="frame of"):
        FrameReader().feed(b"\xff\xff\xff\xff")
    with pytest.raises(FrameError, match="undecodable"):
        FrameReader().feed(b"\x00\x00\x00\x03abc")


def test_garbage_from_the_database_process_stops_it_and_fails_its_calls(
        acs: SQLiteACS, children: Children, logged: list[str]) -> None:
    children.current.signalProcess("STOP")    # it must not answer before the garbage arrives
    try:
        d = checkout(acs, "200001")
        children.clock.advance(0)
        children.current.protocol.outReceived(b"\xff\xff\xff\xff")
    finally:
        children.current.signalProcess("CONT")
    children.pump_until(lambda: d.called)
    with pytest.raises(ACSUnavailable, match="the database process exited"):
        fired(d)
    assert any("database process sent garbage" in line for line in logged)
    children.clock.advance(1.0)
    again = checkout(acs, "200001")
    children.pump_until(lambda: again.called)
    assert len(children.started) == 2 and fired(again).ok
