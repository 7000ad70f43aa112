"""The database thread: one transaction and one COMMIT per batch, a SAVEPOINT per job,
database errors as ACSUnavailable, results delivered with one callFromThread per batch."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import SQLiteACS, open_sqlite_acs
from sipgateway.acs.sqlite.errors import ACSUnavailable
from sipgateway.acs.sqlite.runner import Job, ThreadedRunner, run_batch
from sipgateway.acs.sqlite.schema import INCONSISTENT_ITEMS_SQL, connect
from tests.acs.conftest import FAST, MAIN, QueueReactor, fired

WAIT = 30.0  # seconds: generous bound for the worker thread on a busy machine


@pytest.fixture
def path(tmp_path: Path) -> str:
    p = str(tmp_path / "runner.sqlite3")
    conn = connect(p)
    conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    conn.close()
    return p


def insert(n: int):
    return lambda conn: conn.execute("INSERT INTO t (n) VALUES (?)", (n,)).lastrowid


def rows(path: str) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [r[0] for r in conn.execute("SELECT n FROM t ORDER BY n")]
    finally:
        conn.close()


def traced(path: str) -> tuple[sqlite3.Connection, list[str]]:
    conn = connect(path)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    return conn, statements


def hold_worker(runner: ThreadedRunner) -> tuple[threading.Event, Deferred]:
    """Park the worker inside a job until the returned event is set."""
    entered, gate = threading.Event(), threading.Event()

    def blocker(conn: sqlite3.Connection) -> bool:
        entered.set()
        return gate.wait(WAIT)

    d = runner.submit("blocker", blocker)
    assert entered.wait(WAIT)
    return gate, d


def boom(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t (n) VALUES (1000)")
    raise ValueError("a bug in one job")


def test_one_commit_per_batch_and_a_failing_job_rolls_back_only_itself(path: str) -> None:
    conn, statements = traced(path)
    jobs = [Job("a", insert(1)), Job("b", boom), Job("c", insert(2)),
            Job("d", lambda c: c.execute("SELECT * FROM no_such_table")), Job("e", insert(3))]
    outcomes = run_batch(conn, jobs)
    assert [o.ok for o in outcomes] == [True, False, True, False, True]
    assert isinstance(outcomes[1].value, ValueError)
    assert isinstance(outcomes[3].value, ACSUnavailable) and "no such table" in str(outcomes[3].value)
    # tried plainly first, rolled back whole at the first failure, then run job by job
    first = statements.index("ROLLBACK")
    assert statements[0] == "BEGIN IMMEDIATE" and "COMMIT" not in statements[:first]
    assert statements.count("COMMIT") == 1 and statements.count("BEGIN IMMEDIATE") == 2
    assert statements.count("SAVEPOINT job") == 5 and statements.count("ROLLBACK TO job") == 2
    assert rows(path) == [1, 2, 3]
    conn.close()


def test_a_clean_batch_needs_no_savepoints(path: str) -> None:
    conn, statements = traced(path)
    outcomes = run_batch(conn, [Job("a", insert(1)), Job("b", insert(2)), Job("c", insert(3))])
    assert [o.ok for o in outcomes] == [True, True, True]
    assert statements.count("BEGIN IMMEDIATE") == 1 and statements.count("COMMIT") == 1
    assert "SAVEPOINT job" not in statements
    assert rows(path) == [1, 2, 3]
    conn.close()


def test_read_only_batch_takes_no_write_lock(path: str) -> None:
    conn, statements = traced(path)
    outcomes = run_batch(conn, [Job("r", lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0], write=False)])
    assert outcomes[0].ok and outcomes[0].value == 0
    assert "BEGIN" in statements and "BEGIN IMMEDIATE" not in statements
    conn.close()


def test_a_lost_transaction_fails_every_job_done_in_it(path: str) -> None:
    """Disk full or an I/O error can make SQLite roll the whole transaction back: jobs that
    already succeeded in it lost their writes, so they must fail too."""
    conn = connect(path)

    def io_error(c: sqlite3.Connection) -> None:
        c.execute("ROLLBACK")
        raise sqlite3.OperationalError("disk I/O error")

    outcomes = run_batch(conn, [Job("a", insert(1)), Job("b", io_error), Job("c", insert(2))])
    assert [o.ok for o in outcomes] == [False, False, True]
    assert all(isinstance(o.value, ACSUnavailable) for o in outcomes[:2])
    assert "disk I/O error" in str(outcomes[1].value)
    assert rows(path) == [2]   # exactly what was reported ok
    conn.close()


def test_locked_database_fails_the_batch_cleanly_and_recovers(path: str) -> None:
    conn = connect(path)
    conn.execute("PRAGMA busy_timeout=50")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    outcomes = run_batch(conn, [Job("checkout", insert(1)), Job("checkin", insert(2))])
    assert [o.ok for o in outcomes] == [False, False]
    assert all(isinstance(o.value, ACSUnavailable) and "locked" in str(o.value) for o in outcomes)
    assert "during checkout" in str(outcomes[0].value)
    other.execute("ROLLBACK")
    other.close()
    assert run_batch(conn, [Job("checkout", insert(3))])[0].ok
    assert rows(path) == [3]
    conn.close()


def test_a_failed_commit_fails_the_whole_batch(path: str) -> None:
    conn = connect(path)
    conn.execute("CREATE TABLE child (p INTEGER REFERENCES t (n) DEFERRABLE INITIALLY DEFERRED)")
    orphan = Job("b", lambda c: c.execute("INSERT INTO child (p) VALUES (42)"))  # checked only at COMMIT
    outcomes = run_batch(conn, [Job("a", insert(1)), orphan])
    assert [o.ok for o in outcomes] == [False, False]
    assert all(isinstance(o.value, ACSUnavailable) for o in outcomes)
    assert rows(path) == [] and not conn.in_transaction
    assert run_batch(conn, [Job("a", insert(1))])[0].ok
    conn.close()


def test_threaded_group_commit_delivers_a_batch_in_one_call(path: str) -> None:
    reactor = QueueReactor()
    runner = ThreadedRunner(path, reactor)
    gate, first = hold_worker(runner)
    # the worker is held inside the first job: these pile up and become one batch
    results: dict[int, object] = {}
    deferreds: list[Deferred] = []
    for n in range(20):
        d = runner.submit(f"job{n}", insert(n))
        d.addBoth(lambda r, n=n: results.__setitem__(n, r))
        deferreds.append(d)
    bad = runner.submit("bad", boom)
    errors: list = []
    bad.addErrback(errors.append)
    gate.set()
    assert reactor.run_calls(wait=WAIT, expect=2) == 2   # one call per batch, not one per job
    assert fired(first) is True
    assert sorted(results) == list(range(20)) and all(isinstance(v, int) for v in results.values())
    assert errors and errors[0].check(ValueError)
    assert runner.stats.batches == 2 and runner.stats.commits == 2 and runner.stats.largest == 21
    assert rows(path) == list(range(20))
    closed = runner.close()
    assert reactor.run_calls(wait=WAIT, expect=1) == 1
    assert fired(closed) is None
    with pytest.raises(ACSUnavailable, match="closed"):
        fired(runner.submit("late", insert(99)))


def test_threaded_batches_are_bounded(path: str) -> None:
    reactor = QueueReactor()
    runner = ThreadedRunner(path, reactor, max_batch=4)
    gate, _ = hold_worker(runner)
    for n in range(10):
        runner.submit(f"job{n}", insert(n))
    gate.set()
    assert reactor.run_calls(wait=WAIT, expect=4) == 4   # 1 + 4 + 4 + 2
    assert runner.stats.largest == 4
    runner.close()
    reactor.run_calls(wait=WAIT, expect=1)


def test_run_sync_waits_for_the_commit_without_the_reactor(path: str) -> None:
    reactor = QueueReactor()
    runner = ThreadedRunner(path, reactor)
    assert runner.run_sync("insert", insert(7)) == 7
    assert rows(path) == [7]
    with pytest.raises(ValueError):
        runner.run_sync("boom", boom)
    assert reactor.count == 0 and reactor.run_calls() == 0
    runner.close()
    reactor.run_calls(wait=WAIT, expect=1)


def test_threaded_acs_end_to_end(tmp_path: Path) -> None:
    reactor = QueueReactor()
    path = str(tmp_path / "lib.sqlite3")
    acs = SQLiteACS(path, reactor, hash_iterations=FAST, runner=ThreadedRunner(path, reactor))
    assert acs.is_new and acs.seed_demo()
    out = acs.checkout(MAIN, rq.CheckoutRequest(patron_id="100001", item_id="200001", patron_pin="1234"))
    # a read does not wait for writes still in the database thread: it sees what is committed
    before = acs.item_information(MAIN, rq.ItemInformationRequest("200001"))
    assert fired(before).circulation_status is m.CirculationStatus.AVAILABLE
    reactor.run_calls(wait=WAIT, expect=1)
    assert fired(out).ok
    # read in the reactor thread, after the commit
    info = acs.item_information(MAIN, rq.ItemInformationRequest("200001"))
    assert fired(info).circulation_status is m.CirculationStatus.CHARGED
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT count(*) FROM loans WHERE returned_at IS NULL").fetchone()[0] == 1
    assert conn.execute(INCONSISTENT_ITEMS_SQL).fetchall() == []
    conn.close()
    closed = acs.close()
    reactor.run_calls(wait=WAIT, expect=1)
    assert closed.called


def test_reads_run_inline_but_slow_ones_move_to_the_database_thread(tmp_path: Path) -> None:
    reactor = QueueReactor()
    path = str(tmp_path / "lib.sqlite3")
    acs = SQLiteACS(path, reactor, hash_iterations=FAST, runner=ThreadedRunner(path, reactor))
    acs.seed_demo()
    reader = acs.runner._reader
    # a cached PIN check runs inline; an uncached one would hash: it goes to the worker
    first = acs.patron_status(MAIN, rq.PatronStatusRequest("100001", "1234"))
    assert not first.called and reader.moved == 1
    reactor.run_calls(wait=WAIT, expect=1)
    assert fired(first).pin_valid is True
    again = acs.patron_status(MAIN, rq.PatronStatusRequest("100001", "1234"))
    assert fired(again).pin_valid is True and reader.moved == 1
    # a query over the budget is interrupted and handed to the database thread
    slow = acs.runner.submit("slow", lambda conn: conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000000) "
        "SELECT count(*) FROM n").fetchone()[0], write=False)
    assert not slow.called and reader.moved == 2
    reactor.run_calls(wait=WAIT * 10, expect=1)
    assert fired(slow) == 3000000
    acs.close()
    reactor.run_calls(wait=WAIT, expect=1)


def test_open_sqlite_acs_seeds_the_demo_once(tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path / 'gw.sqlite3'}"
    for attempt in range(2):
        acs = open_sqlite_acs(url, QueueReactor(), demo=True, hash_iterations=FAST)
        assert acs.is_new is (attempt == 0)
        assert fired(acs.close()) is None  # never started: nothing to wait for
    conn = sqlite3.connect(tmp_path / "gw.sqlite3")
    assert conn.execute("SELECT count(*) FROM circulation_log WHERE operation = 'seed_demo'").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM patrons").fetchone()[0] == 4
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_a_bug_outside_the_jobs_fails_the_batch_rolled_back_and_the_writer_serves_on(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from sipgateway.acs.sqlite import batch

    conn = connect(path)
    real = batch.run_batch

    def broken(conn: sqlite3.Connection, jobs, stats=None, record=None):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (n) VALUES (5)")
        raise KeyError("a bug in the batch code")

    reported: list[str] = []
    monkeypatch.setattr(batch, "run_batch", broken)
    outcomes = batch.run_batch_or_fail(conn, [Job("a", insert(1)), Job("b", insert(2))], None,
                                       lambda: reported.append("reported"))
    assert reported == ["reported"] and not conn.in_transaction and rows(path) == []
    assert [str(o.value) for o in outcomes] == ["library database unavailable during a: KeyError",
                                                "library database unavailable during b: KeyError"]
    monkeypatch.setattr(batch, "run_batch", real)
    assert batch.run_batch_or_fail(conn, [Job("c", insert(3))], None, lambda: None)[0].result() == 3
    conn.close()
