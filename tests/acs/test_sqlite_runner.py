"""Batches: one transaction and one COMMIT per batch, a SAVEPOINT per job only when one
fails, database errors as ACSUnavailable.  The synchronous runner of the rule tests: every
call and its answer cross the frames of the database process, so what would not reach the
database process, or come back from it, fails here too."""

from __future__ import annotations

import pickle
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import open_sqlite_acs
from sipgateway.acs.sqlite.context import Call, Context, Tx
from sipgateway.acs.sqlite.credentials import VerifiedSecrets
from sipgateway.acs.sqlite.errors import ACSUnavailable
from sipgateway.acs.sqlite.rules import CirculationRules
from sipgateway.acs.sqlite.runner import Job, SyncRunner, run_batch
from sipgateway.acs.sqlite.schema import connect
from tests.acs.conftest import FAST, MAIN, fired


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


def test_open_sqlite_acs_seeds_the_demo_once(tmp_path: Path) -> None:
    url = f"sqlite:{tmp_path / 'gw.sqlite3'}"
    for attempt in range(2):
        acs = open_sqlite_acs(url, Clock(), demo=True, hash_iterations=FAST)
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


# --- the synchronous runner: through the frames ------------------------------------------


@dataclass(frozen=True)
class Point:
    """A value that pickles, but is no ACS value: a gateway could not read it back from
    the outcome record of a database process that died."""

    x: int


def insert_job(tx: Tx, n: object) -> object:
    tx.run("INSERT INTO t (n) VALUES (?)", 1)
    return n


def give(tx: Tx, value: object) -> object:
    return value


def insert_and_lock(tx: Tx) -> object:
    tx.run("INSERT INTO t (n) VALUES (?)", 1)
    return threading.Lock()


def give_lock(tx: Tx) -> object:
    return threading.Lock()


def divide(tx: Tx, by: int) -> float:
    return 1 / by


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


def raise_unpicklable(tx: Tx) -> None:
    raise Unpicklable()


@pytest.fixture
def sync(path: str) -> Iterator[SyncRunner]:
    runner = SyncRunner(path)
    yield runner
    runner.close()


@pytest.fixture
def now_ctx() -> Context:
    return Context(clock=datetime.now, currency="USD", rules=CirculationRules(), secrets=VerifiedSecrets(16))


def call(ctx: Context, fn: Callable[..., object], *args: object) -> Call:
    return Call(fn, args, MAIN, datetime(2024, 1, 5, 10, 15), ctx)


def test_a_call_reaches_its_job_as_the_database_process_would_receive_it(sync: SyncRunner, now_ctx: Context) -> None:
    request = rq.CheckoutRequest(patron_id="100001", item_id="200001")
    value = fired(sync.submit("give", call(now_ctx, give, request), write=False))
    assert value == request and value is not request      # a copy, unpickled from the frame
    assert sync.stats.jobs == 1 and sync.stats.commits == 1


def test_an_argument_that_does_not_pickle_fails_the_call_and_the_job_never_runs(sync: SyncRunner, now_ctx: Context,
                                                                                 path: str) -> None:
    d = sync.submit("insert", call(now_ctx, insert_job, threading.Lock()))
    with pytest.raises(ACSUnavailable, match="during insert: TypeError"):
        fired(d)
    assert rows(path) == [] and sync.stats.jobs == 0


def test_a_job_function_that_does_not_pickle_fails_the_call(sync: SyncRunner, now_ctx: Context, path: str) -> None:
    d = sync.submit("insert", call(now_ctx, lambda tx: insert_job(tx, 1)))
    with pytest.raises(ACSUnavailable, match="during insert"):
        fired(d)
    assert rows(path) == []


def test_a_value_that_does_not_pickle_fails_the_call_and_its_writes_are_not_committed(
        sync: SyncRunner, now_ctx: Context, path: str) -> None:
    with pytest.raises(ACSUnavailable, match="during insert: TypeError"):
        fired(sync.submit("insert", call(now_ctx, insert_and_lock)))
    assert rows(path) == []       # encoded before COMMIT, as the database process does
    with pytest.raises(ACSUnavailable, match="during read: TypeError"):
        fired(sync.submit("read", call(now_ctx, give_lock), write=False))


def test_a_write_whose_value_is_no_acs_value_fails_as_its_recovery_would(sync: SyncRunner, now_ctx: Context) -> None:
    # as a read, anything that pickles comes back
    assert fired(sync.submit("give", call(now_ctx, give, Point(1)), write=False)) == Point(1)
    # a write's value is recorded for the case the database process dies: it must read back
    with pytest.raises(pickle.UnpicklingError, match="Point is not an ACS value"):
        fired(sync.submit("give", call(now_ctx, give, Point(1)), write=True))


def test_a_failure_crosses_the_frames_too(sync: SyncRunner, now_ctx: Context) -> None:
    with pytest.raises(ZeroDivisionError):
        fired(sync.submit("give", call(now_ctx, divide, 0)))
    with pytest.raises(RuntimeError, match="Unpicklable could not be sent"):
        fired(sync.submit("give", call(now_ctx, raise_unpicklable)))


def test_a_closed_synchronous_runner_fails_calls(sync: SyncRunner, now_ctx: Context) -> None:
    assert not sync.failing
    fired(sync.close())
    assert sync.failing
    with pytest.raises(ACSUnavailable, match="closed"):
        fired(sync.submit("give", call(now_ctx, give, 1)))
