"""A batch of database jobs in one transaction with one commit (group commit).

A job is a function of the connection.  ``run_batch`` runs a batch of jobs inside one
transaction and COMMITs once; if a job fails, the batch is run again with each job in its
own SAVEPOINT, so a job that raises rolls back only its own writes and fails only itself.
Results are handed out only after that commit, so an ok answer means the work is on disk
(WAL, synchronous=FULL).  A ``record`` function, when given, runs inside the transaction
just before the COMMIT with the outcomes about to be committed (the database process
records them there: outcomes.py).  No Twisted here: the database process imports this and
stays small.
"""

from __future__ import annotations

import random
import sqlite3
import sys
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sipgateway.acs.sqlite.errors import CommitUnknown, OutcomeUnknown, SerializationConflict, unavailable

JobFunction = Callable[[sqlite3.Connection], Any]
#: called inside the transaction before its COMMIT with an outcome per job; raising fails the batch
Record = Callable[[sqlite3.Connection, Sequence["Outcome"]], None]
#: how many times a batch that lost a race to another process (PostgreSQL) is run again
CONFLICT_RETRIES = 8
#: seconds: the pause before the first rerun is random up to twice this, doubling with each rerun
CONFLICT_PAUSE = 0.001
#: the most jobs one transaction takes; bounds the latency of the first job of a batch
MAX_BATCH = 512
#: upper bounds of the batch-size histogram (jobs per transaction), for the admin listener's /metrics
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
#: upper bounds of the commit-time histogram (seconds a COMMIT took: the fsync)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Job:
    name: str                  # the operation, for error messages
    fn: JobFunction
    write: bool = True


@dataclass
class Outcome:
    ok: bool
    value: Any

    def result(self) -> Any:
        """The job's value; its exception raised."""
        if not self.ok:
            raise self.value
        return self.value


@dataclass
class BatchStats:
    """The batches run so far.  The database process sends them with every answer, so
    reading them costs the gateway nothing until someone asks (bench, /metrics)."""

    batches: int = 0
    jobs: int = 0
    commits: int = 0
    largest: int = 0
    #: batches by size: [i] counts those of at most SIZE_BUCKETS[i] jobs (not cumulative; the last: more)
    sizes: list[int] = field(default_factory=lambda: [0] * (len(SIZE_BUCKETS) + 1))
    #: commits by the time the COMMIT took, likewise over COMMIT_BUCKETS, and their sum in seconds
    commit_times: list[int] = field(default_factory=lambda: [0] * (len(COMMIT_BUCKETS) + 1))
    commit_seconds: float = 0.0
    #: batches rolled back and run again because another process changed what they read (PostgreSQL)
    conflicts: int = 0

    def ran(self, jobs: int) -> None:
        self.batches += 1
        self.jobs += jobs
        self.largest = max(self.largest, jobs)
        self.sizes[bisect_left(SIZE_BUCKETS, jobs)] += 1

    def committed(self, seconds: float) -> None:
        self.commits += 1
        self.commit_times[bisect_left(COMMIT_BUCKETS, seconds)] += 1
        self.commit_seconds += seconds


def _commit(conn: sqlite3.Connection, stats: BatchStats | None) -> None:
    started = time.perf_counter()
    conn.execute("COMMIT")
    if stats is not None:
        stats.committed(time.perf_counter() - started)


def translate(job: Job, error: Exception) -> Exception:
    """Database trouble (locked, full, I/O, corrupt) becomes ``ACSUnavailable``; anything
    else is a bug and keeps its own type, so it shows as what it is."""
    if isinstance(error, sqlite3.Error) and not isinstance(
            error, sqlite3.ProgrammingError | sqlite3.IntegrityError | sqlite3.InterfaceError):
        return unavailable(job.name, error)
    return error


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as e:  # the connection is beyond repair; the next BEGIN will say so
            print(f"sqlite rollback failed: {e}", file=sys.stderr)  # twistd logs stderr


def run_batch(conn: sqlite3.Connection, jobs: Sequence[Job], stats: BatchStats | None = None,
              record: Record | None = None) -> list[Outcome]:
    """Run ``jobs`` in one transaction with one commit; an ``Outcome`` per job, in order.

    On PostgreSQL another process may change what a batch read before it commits: the
    batch is then rolled back whole and run again (``SerializationConflict``), up to
    ``CONFLICT_RETRIES`` times after a short random pause, so the two do not meet again;
    after the last, every job fails, not applied."""
    conflict: SerializationConflict | None = None
    for attempt in range(CONFLICT_RETRIES + 1):
        if attempt:
            time.sleep(random.uniform(0, CONFLICT_PAUSE * 2 ** attempt))
        try:
            return _run_once(conn, jobs, stats, record)
        except CommitUnknown as e:   # never run again: it may have committed
            return [Outcome(False, OutcomeUnknown(f"library database unavailable during {job.name}: {e}"))
                    for job in jobs]
        except SerializationConflict as e:
            rollback(conn)
            conflict = e
            if stats is not None:
                stats.conflicts += 1
    return [Outcome(False, unavailable(job.name, conflict)) for job in jobs]


def _run_once(conn: sqlite3.Connection, jobs: Sequence[Job], stats: BatchStats | None,
              record: Record | None) -> list[Outcome]:
    """Jobs almost never fail, so the batch is first run plainly; only if a job raises is it
    rolled back whole and run again the careful way, each job in its own savepoint, so
    that the failing job alone is lost.  (Savepoints cost two statements a job, about a
    tenth of a checkout.)"""
    # (on PostgreSQL a savepoint is two more round trips: a lone job is run plainly first too)
    if len(jobs) > 1 or getattr(conn, "dialect", "sqlite") == "postgresql":
        outcomes = _run_plain(conn, jobs, stats, record)
        if outcomes is not None:
            return outcomes
    return _run_careful(conn, jobs, stats, record)


def _run_plain(conn: sqlite3.Connection, jobs: Sequence[Job], stats: BatchStats | None,
               record: Record | None) -> list[Outcome] | None:
    """The whole batch in one transaction without savepoints; None (and nothing written)
    when anything fails."""
    begin = "BEGIN IMMEDIATE" if any(job.write for job in jobs) else "BEGIN"
    values = []
    try:
        conn.execute(begin)
    except (SerializationConflict, CommitUnknown):
        raise
    except sqlite3.Error as e:
        # nothing ran; the careful way would wait at the same BEGIN (busy, the write turn) once per job
        rollback(conn)
        return [Outcome(False, unavailable(job.name, e)) for job in jobs]
    try:
        for job in jobs:
            values.append(job.fn(conn))
        outcomes = [Outcome(True, value) for value in values]
        if record is not None:
            record(conn, outcomes)
        _commit(conn, stats)
    except (SerializationConflict, CommitUnknown):
        raise
    except Exception:
        rollback(conn)
        return None
    if stats is not None:
        stats.ran(len(jobs))
    return outcomes


def _run_careful(conn: sqlite3.Connection, jobs: Sequence[Job], stats: BatchStats | None,
                 record: Record | None = None) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(jobs)
    begin = "BEGIN IMMEDIATE" if any(job.write for job in jobs) else "BEGIN"
    pending: list[int] = []   # jobs done inside the transaction still open

    def lose_pending(error: BaseException) -> None:
        # the transaction is gone, and with it the work of every job done in it so far
        for k in pending:
            outcomes[k] = Outcome(False, unavailable(jobs[k].name, error))
        pending.clear()

    for i, job in enumerate(jobs):
        try:
            if not conn.in_transaction:
                conn.execute(begin)
            conn.execute("SAVEPOINT job")
        except SerializationConflict:
            raise
        except sqlite3.Error as e:
            rollback(conn)
            lose_pending(e)
            outcomes[i] = Outcome(False, unavailable(job.name, e))
            continue
        try:
            value = job.fn(conn)
            conn.execute("RELEASE job")
        except SerializationConflict:
            raise   # the whole transaction is lost: run_batch runs the batch again
        except Exception as e:
            outcomes[i] = Outcome(False, translate(job, e))
            if not conn.in_transaction:
                lose_pending(e)   # SQLite rolled the whole transaction back (disk full, I/O error)
                continue
            try:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
            except sqlite3.Error as e2:
                rollback(conn)
                lose_pending(e2)
            continue
        outcomes[i] = Outcome(True, value)
        pending.append(i)

    if conn.in_transaction:
        try:
            if record is not None:
                record(conn, [o for o in outcomes if o is not None])
            _commit(conn, stats)
        except (SerializationConflict, CommitUnknown):
            raise
        except Exception as e:
            rollback(conn)
            lose_pending(e)
    if stats is not None:
        stats.ran(len(jobs))
    return [o for o in outcomes if o is not None]


def run_batch_or_fail(conn: sqlite3.Connection, jobs: Sequence[Job], stats: BatchStats | None,
                      report_bug: Callable[[], None], record: Record | None = None) -> list[Outcome]:
    """``run_batch``; a bug escaping it (not a job's) is reported from inside the ``except``
    (so a traceback can be logged), rolled back, and fails the batch, not the writer."""
    try:
        return run_batch(conn, jobs, stats, record)
    except Exception as e:
        report_bug()
        rollback(conn)
        return [Outcome(False, unavailable(job.name, e)) for job in jobs]
