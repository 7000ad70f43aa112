"""The database process: calls go out as frames, one commit per batch, a Deferred fires
only once its batch is committed, PINs verified there are known here, a dead process
fails its calls and is started again, and stopping lets it finish what it was given."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.logger import formatEvent, globalLogPublisher

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.model import ACSTimeout
from sipgateway.acs.sqlite import SQLiteACS, loans
from sipgateway.acs.sqlite.context import Call
from sipgateway.acs.sqlite.errors import ACSUnavailable
from sipgateway.acs.sqlite.frames import FrameError, FrameReader, Setup, encode
from sipgateway.acs.sqlite.rules import CirculationRules
from sipgateway.acs.sqlite.schema import INCONSISTENT_ITEMS_SQL
from tests.acs.childpipe import Children
from tests.acs.conftest import FAST, MAIN, fired, served, stop
from tests.acs.slowjobs import Gate, count_to, gated_checkout


@pytest.fixture
def acs(tmp_path: Path, children: Children) -> Iterator[SQLiteACS]:
    library = served(tmp_path / "lib.sqlite3", children)
    yield library
    stop(library, children)


@pytest.fixture
def logged() -> Iterator[list[str]]:
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
    return acs.checkout(MAIN, rq.CheckoutRequest(patron_id=patron, item_id=item, patron_pin=pin))


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
    first = acs.patron_status(MAIN, rq.PatronStatusRequest("100001", "1234"))
    assert not first.called               # checking a PIN the first time hashes: not in the reactor
    children.pump_until(lambda: first.called)
    assert fired(first).pin_valid is True
    acs.cache.clear()
    again = acs.patron_status(MAIN, rq.PatronStatusRequest("100001", "1234"))
    assert again.called and fired(again).pin_valid is True  # answered at once, here
    wrong = acs.patron_status(MAIN, rq.PatronStatusRequest("100001", "9999"))
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
    status = fired(acs.status(MAIN, rq.StatusRequest()))
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
        with contextlib.suppress(ProcessExitedAlready):  # killed, maybe reaped already
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
        with contextlib.suppress(ProcessExitedAlready):  # the garbage got it killed, maybe reaped already
            children.current.signalProcess("CONT")
    children.pump_until(lambda: d.called)
    with pytest.raises(ACSUnavailable, match="the database process exited"):
        fired(d)
    assert any("database process sent garbage" in line for line in logged)
    children.clock.advance(1.0)
    again = checkout(acs, "200001")
    children.pump_until(lambda: again.called)
    assert len(children.started) == 2 and fired(again).ok


# --- deadlines, heartbeats, a dead or stopped process, a deleted database file ---------------


def checkout_by(acs: SQLiteACS, children: Children, item: str, seconds: float) -> Deferred:
    """A checkout whose deadline is ``seconds`` from now (the session sets it so)."""
    terminal = MAIN.until(children.clock.seconds() + seconds)
    return acs.checkout(terminal, rq.CheckoutRequest(patron_id="100001", item_id=item, patron_pin="1234"))


def heartbeat_overdue(children: Children) -> None:
    """Move the gateway's clock until a heartbeat the child cannot answer is overdue."""
    for _ in range(4):
        children.clock.advance(1.0)


def test_every_call_carries_a_deadline_and_the_backend_answers_by_it(acs: SQLiteACS,
                                                                     children: Children) -> None:
    assert acs.answers_by_deadline
    call = acs._call(loans.checkout, (), MAIN)   # no deadline of its own: the backend's timeout
    assert call.deadline == children.clock.seconds() + acs.timeout
    assert acs._call(loans.checkout, (), MAIN.until(123.0)).deadline == 123.0


def test_a_write_sent_to_a_stopped_process_is_held_then_not_applied_when_it_resumes(
        acs: SQLiteACS, children: Children, monkeypatch: pytest.MonkeyPatch) -> None:
    from sipgateway.acs.sqlite import dbprocess

    monkeypatch.setattr(dbprocess, "HEARTBEAT_OVERDUE", 3600.0)  # not killed, however slow this machine
    children.current.signalProcess("STOP")
    try:
        d = checkout_by(acs, children, "200001", 0.3)
        children.clock.advance(0)                      # sent
        # its deadline passes (on both clocks): the write is held, not failed
        children.pump_until(lambda: acs.runner.failing, "the deadline")
        assert not d.called
        assert fired(acs.status(MAIN, rq.StatusRequest())).online is False
        with pytest.raises(ACSUnavailable, match="does not answer"):
            fired(checkout(acs, "200002"))             # new writes fail at once, not sent
    finally:
        children.current.signalProcess("CONT")
    children.pump_until(lambda: d.called)
    with pytest.raises(ACSTimeout, match="deadline passed before its transaction started; nothing was changed"):
        fired(d)
    assert open_loans(acs) == set()
    assert not acs.runner.failing and fired(acs.status(MAIN, rq.StatusRequest())).online is True
    again = checkout(acs, "200001")
    children.pump_until(lambda: again.called)
    assert fired(again).ok and open_loans(acs) == {"200001"}


def test_a_stopped_process_holding_writes_is_killed_and_the_database_says_they_did_not_commit(
        acs: SQLiteACS, children: Children, logged: list[str]) -> None:
    first = children.current
    first.signalProcess("STOP")
    try:
        d = checkout_by(acs, children, "200001", 0.3)
        children.clock.advance(0)
        children.pump_until(lambda: acs.runner.failing, "the deadline")
        heartbeat_overdue(children)
        children.pump_until(lambda: first.ended, "the stuck process to be killed")
    finally:
        if first.proc.poll() is None:
            first.signalProcess("CONT")
    with pytest.raises(ACSUnavailable, match="exited before applying it"):
        fired(d)
    assert open_loans(acs) == set()
    text = "\n".join(logged)
    assert "has not answered a heartbeat" in text and "killing it to learn which of them committed" in text
    assert "1 writes in flight: 0 had committed" in text
    children.clock.advance(1.0)                        # started again
    again = checkout(acs, "200001")
    children.pump_until(lambda: again.called)
    assert fired(again).ok


def test_a_stopped_process_makes_98_offline_and_fails_writes_at_once_until_it_answers(
        acs: SQLiteACS, children: Children) -> None:
    assert fired(acs.status(MAIN, rq.StatusRequest())).online is True
    children.current.signalProcess("STOP")
    try:
        heartbeat_overdue(children)
        assert acs.runner.failing and fired(acs.status(MAIN, rq.StatusRequest())).online is False
        with pytest.raises(ACSUnavailable, match="the database process does not answer"):
            fired(checkout(acs, "200001"))
    finally:
        children.current.signalProcess("CONT")
    children.pump_until(lambda: not acs.runner.failing, "the heartbeat answer")
    assert fired(acs.status(MAIN, rq.StatusRequest())).online is True
    d = checkout(acs, "200001")
    children.pump_until(lambda: d.called)
    assert fired(d).ok


def test_a_busy_process_answers_heartbeats_and_a_write_inside_its_transaction_at_its_deadline_commits_ok(
        acs: SQLiteACS, children: Children, tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    request = rq.CheckoutRequest(patron_id="100001", item_id="200001", patron_pin="1234")
    deadline = children.clock.seconds() + 5.0
    d = acs.runner.submit("checkout", Call(gated_checkout, (request, gate.path), MAIN, acs.ctx.clock(), acs.ctx,
                                           deadline))
    children.pump_until(lambda: gate.entered, "the job to start")
    for _ in range(7):                                 # past its deadline, heartbeats answered
        children.clock.advance(1.0)
        children.pump_until(lambda: acs.runner._ping_sent is None, "the heartbeat answer")
    assert children.clock.seconds() > deadline and not d.called   # held: its outcome is not known
    assert acs.runner.failing                          # 98: a call is past its deadline
    assert len(children.started) == 1                  # alive, so not killed
    gate.open()
    children.pump_until(lambda: d.called)
    result = fired(d)
    assert result.ok and result.item_id == "200001"
    assert open_loans(acs) == {"200001"} and not acs.runner.failing


def test_a_call_whose_deadline_passes_before_it_is_sent_fails_and_never_runs(
        tmp_path: Path, children: Children) -> None:
    acs = SQLiteACS(str(tmp_path / "lib.sqlite3"), children.clock, hash_iterations=FAST, spawn=children)
    acs.seed_demo()
    late = checkout_by(acs, children, "200001", 1.0)   # made before start: waits for the process
    children.clock.advance(2.0)
    with pytest.raises(ACSTimeout, match="before it was sent to the database process"):
        fired(late)
    acs.start()
    on_time = checkout_by(acs, children, "200002", 30.0)
    children.pump_until(lambda: on_time.called)
    assert fired(on_time).ok and open_loans(acs) == {"200002"}
    closed = acs.close()
    children.pump_until(lambda: closed.called, "closing")
    assert open_loans(acs) == {"200002"}


def test_a_read_past_its_deadline_fails_and_its_late_answer_is_dropped(acs: SQLiteACS,
                                                                       children: Children) -> None:
    children.current.signalProcess("STOP")
    try:
        terminal = MAIN.until(children.clock.seconds() + 0.3)
        d = acs.patron_status(terminal, rq.PatronStatusRequest("100001", "1234"))  # checking a PIN goes to the process
        children.clock.advance(0)
        children.pump_until(lambda: d.called, "the deadline")
    finally:
        children.current.signalProcess("CONT")
    with pytest.raises(ACSTimeout, match="while the database process had it"):
        fired(d)
    children.pump_until(lambda: not acs.runner.failing, "the late answer")


def test_a_write_committed_by_a_process_that_dies_before_answering_is_answered_ok(
        acs: SQLiteACS, children: Children, logged: list[str]) -> None:
    child = children.current
    # Its answers never reach the gateway, up to its end: an answer it wrote before the kill
    # may still sit in the pipe, and delivering it would make this an ordinary answered call.
    child.open[child.proc.stdout.fileno()] = lambda data: None
    d = checkout(acs, "200001")
    children.pump_until(lambda: open_loans(acs) == {"200001"}, "the commit")
    child.signalProcess("KILL")                        # dies as if between COMMIT and answering
    children.pump_until(lambda: d.called)
    result = fired(d)
    assert result.ok and result.item_id == "200001" and result.due_date is not None
    assert any("1 writes in flight: 1 had committed" in line for line in logged)


def test_the_outcome_records_are_pruned_by_age_and_read_back_as_model_values_only(tmp_path: Path) -> None:
    import pickle

    from sipgateway.acs.sqlite import outcomes
    from sipgateway.acs.sqlite.schema import connect, migrate

    conn = connect(str(tmp_path / "o.sqlite3"))
    migrate(conn)
    value = m.CirculationResult(ok=True, patron_id="100001", item_id="200001")
    outcomes.record(conn, "old", 1, 2, 1000.0, outcomes.encode([(1, value), (2, value)]))
    outcomes.record(conn, "mine", 3, 5, 2000.0, outcomes.encode([(3, value), (5, value)]))
    assert outcomes.committed(conn, "mine", {3, 4, 5, 9}) == {3: value, 5: value}
    outcomes.prune(conn, 1000.0 + outcomes.RETENTION + 1)
    assert [r[0] for r in conn.execute("SELECT runner FROM call_outcomes")] == ["mine"]
    outcomes.prune(conn, 2000.0 + outcomes.RETENTION + 1)
    assert conn.execute("SELECT count(*) FROM call_outcomes").fetchone()[0] == 0
    evil = pickle.dumps([(7, sqlite3.connect)])
    outcomes.record(conn, "mine", 7, 7, 3000.0, evil)
    with pytest.raises(pickle.UnpicklingError, match="is not an ACS value"):
        outcomes.committed(conn, "mine", {7})
    conn.close()


def test_a_deleted_database_file_fails_writes_and_reads_says_offline_and_is_logged_critical(
        acs: SQLiteACS, children: Children, tmp_path: Path) -> None:
    from twisted.logger import LogLevel

    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        path = Path(acs.path)
        path.unlink()
        d = checkout(acs, "200001")                    # before any heartbeat noticed
        children.pump_until(lambda: d.called)
        with pytest.raises(ACSUnavailable, match="was deleted; nothing was changed"):
            fired(d)
        assert acs.runner.failing and fired(acs.status(MAIN, rq.StatusRequest())).online is False
        with pytest.raises(ACSUnavailable, match="was deleted"):
            fired(acs.item_information(MAIN, rq.ItemInformationRequest("200001")))   # not read from the removed file
        critical = [e for e in events if e.get("log_level") == LogLevel.critical]
        assert len(critical) == 1
        text = formatEvent(critical[0])
        assert str(path) in text and "was deleted" in text and "restart sipgateway" in text
    finally:
        globalLogPublisher.removeObserver(events.append)


def test_a_database_file_moved_away_and_back_is_noticed_by_the_heartbeat_and_service_resumes(
        acs: SQLiteACS, children: Children) -> None:
    path = Path(acs.path)
    moved = path.with_suffix(".moved")
    path.rename(moved)
    path.write_bytes(b"")                              # another file at the path
    children.clock.advance(1.0)                        # a heartbeat
    children.pump_until(lambda: acs.runner.failing, "the heartbeat")
    assert acs.runner._file_problem == "was replaced by another file"
    path.unlink()
    moved.rename(path)                                 # the same file back
    children.clock.advance(1.0)
    children.pump_until(lambda: not acs.runner.failing, "the heartbeat")
    d = checkout(acs, "200001")
    children.pump_until(lambda: d.called)
    assert fired(d).ok and open_loans(acs) == {"200001"}


def test_a_write_committed_into_a_file_deleted_meanwhile_is_not_acknowledged(
        acs: SQLiteACS, children: Children, tmp_path: Path) -> None:
    gate = Gate(tmp_path)
    request = rq.CheckoutRequest(patron_id="100001", item_id="200001", patron_pin="1234")
    d = acs.runner.submit("checkout", Call(gated_checkout, (request, gate.path), MAIN, acs.ctx.clock(), acs.ctx,
                                           children.clock.seconds() + 30))
    children.pump_until(lambda: gate.entered, "the job to start")
    Path(acs.path).unlink()                            # while the write is in its transaction
    gate.open()
    children.pump_until(lambda: d.called)
    with pytest.raises(ACSUnavailable, match="was deleted while it ran; it is not in the database"):
        fired(d)


def test_the_database_process_bounds_its_batches(tmp_path: Path, children: Children) -> None:
    acs = SQLiteACS(str(tmp_path / "lib.sqlite3"), children.clock, hash_iterations=FAST, spawn=children)
    acs.runner.max_batch = 4     # told to the process when it starts
    acs.seed_demo()
    acs.start()
    children.pump_until(lambda: acs.runner.ready, "start-up")
    items = ["200001", "200002", "200003", "1565921879", "0440242746", "660", "300001", "300002", "300003",
             "400001"]
    ds = [checkout(acs, item) for item in items]   # one frame: the process has them all at once
    children.pump_until(lambda: all(d.called for d in ds))
    assert [fired(d).ok for d in ds] == [True] * 10
    stats = acs.runner.stats
    assert (stats.batches, stats.jobs, stats.commits, stats.largest) == (3, 10, 3, 4)   # 4 + 4 + 2
    stop(acs, children)


def test_a_read_does_not_wait_for_writes_in_the_database_process(acs: SQLiteACS, children: Children) -> None:
    out = checkout(acs, "200001")
    before = acs.item_information(MAIN, rq.ItemInformationRequest("200001"))
    assert fired(before).circulation_status is m.CirculationStatus.AVAILABLE   # what is committed
    children.pump_until(lambda: out.called)
    assert fired(out).ok
    after = acs.item_information(MAIN, rq.ItemInformationRequest("200001"))
    assert fired(after).circulation_status is m.CirculationStatus.CHARGED
    conn = database(acs)
    try:
        assert conn.execute(INCONSISTENT_ITEMS_SQL).fetchall() == []
    finally:
        conn.close()


def test_a_read_over_its_budget_moves_to_the_database_process(acs: SQLiteACS, children: Children) -> None:
    reader = acs.runner._reader
    quick = acs.runner.submit("quick", Call(count_to, (10,), None, acs.ctx.clock(), acs.ctx), write=False)
    assert fired(quick) == 10 and reader.moved == 0
    slow = acs.runner.submit("slow", Call(count_to, (3_000_000,), None, acs.ctx.clock(), acs.ctx), write=False)
    assert not slow.called and reader.moved == 1   # interrupted here, handed to the process
    children.pump_until(lambda: slow.called, "the slow read")
    assert fired(slow) == 3_000_000
