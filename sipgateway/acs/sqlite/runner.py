"""Where database work runs: one connection, jobs in batches (batch.py), one commit per batch.

The gateway's runner is ``dbprocess.ProcessRunner``: a database process runs the batches.
``ThreadedRunner`` does the same in one dedicated thread fed by a queue, for an in-memory
database, which another process cannot open: while it commits a batch, new jobs pile up
and become the next batch (group commit), and the whole batch is delivered to the reactor
with a single ``callFromThread``.  ``SyncRunner`` runs each job at once in the calling
thread and returns fired Deferreds; unit tests use it.  ``InlineReader`` runs quick
reads in the reactor thread for the first two.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

from sipgateway.acs.sqlite.batch import (
    MAX_BATCH,
    BatchStats,
    Job,
    JobFunction,
    Outcome,
    rollback,
    run_batch,
    run_batch_or_fail,
    translate,
)
from sipgateway.acs.sqlite.errors import ACSUnavailable, MoveToWorker, inline, unavailable
from sipgateway.acs.sqlite.schema import connect

__all__ = ["INLINE_BUDGET", "MAX_BATCH", "BatchStats", "InlineReader", "Job", "Outcome", "SyncRunner",
           "ThreadedRunner", "run_batch"]

log = Logger()

#: how long a read may hold the reactor thread before it is moved to the database writer
INLINE_BUDGET = 0.002


@dataclass
class _Waiter:
    """For synchronous callers (start-up code): the worker sets it after the commit."""

    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None

    def set(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.done.set()


def _fire(d: Deferred, outcome: Outcome) -> None:
    if outcome.ok:
        d.callback(outcome.value)
    else:
        d.errback(outcome.value)


class SyncRunner:
    """Runs every job at once, in the calling thread, as its own transaction."""

    def __init__(self, path: str) -> None:
        self.conn = connect(path)
        self.stats = BatchStats()
        self.closed = False

    @property
    def failing(self) -> bool:
        return self.closed

    def start(self) -> None:
        """Nothing to start: jobs run in the caller."""

    def run_sync(self, name: str, fn: JobFunction, write: bool = True, raw: bool = False) -> Any:
        if self.closed:
            raise unavailable(name, "closed")
        if raw:
            return fn(self.conn)
        return run_batch(self.conn, [Job(name, fn, write)], self.stats)[0].result()

    def submit(self, name: str, fn: JobFunction, write: bool = True) -> Deferred:
        try:
            return succeed(self.run_sync(name, fn, write))
        except Exception as e:
            return fail(e)

    def close(self) -> Deferred:
        if not self.closed:
            self.closed = True
            self.conn.close()
        return succeed(None)


_STOP = object()


class InlineReader:
    """Reads run at once in the reactor thread, on a connection of their own (WAL lets them
    read while the writer writes), as long as they are quick.  A read that takes longer than
    ``budget`` is interrupted by SQLite's progress handler, and a read that would hash a
    password raises ``MoveToWorker``; both are rolled back and handed to the writer (the
    database process or thread), so a slow query never holds the other connections up for
    more than ``budget``."""

    def __init__(self, path: str, budget: float) -> None:
        self.conn = connect(path, create=False)  # never a new empty file in place of a deleted one
        st = os.stat(path)
        #: the file opened (device, inode): the database process must have opened the same
        self.identity = (st.st_dev, st.st_ino)
        self.budget = budget
        self._deadline = 0.0
        self.moved = 0
        self.conn.set_progress_handler(self._over_budget, 1000)

    def _over_budget(self) -> int:
        return time.monotonic() > self._deadline

    def run(self, name: str, fn: JobFunction) -> Deferred | None:
        """The job's Deferred, already fired; None when it must run in the writer."""
        conn = self.conn
        self._deadline = time.monotonic() + self.budget
        inline.active = True
        try:
            conn.execute("BEGIN")
            value = fn(conn)
            conn.execute("COMMIT")
        except MoveToWorker:
            rollback(conn)
            self.moved += 1
            return None
        except sqlite3.OperationalError as e:
            rollback(conn)
            if "interrupt" in str(e):
                self.moved += 1
                return None
            return fail(unavailable(name, e))
        except Exception as e:
            rollback(conn)
            return fail(translate(Job(name, fn, False), e))
        finally:
            inline.active = False
        return succeed(value)

    def close(self) -> None:
        self.conn.close()


class ThreadedRunner:
    """One worker thread owns the connection; jobs come through a queue, results go back to
    the reactor thread in one ``callFromThread`` per batch."""

    def __init__(self, path: str, reactor, *, max_batch: int = MAX_BATCH,
                 inline_budget: float = INLINE_BUDGET) -> None:
        self.path = path
        self.reactor = reactor
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closing = False
        self._close_waiters: list[Deferred] = []
        self._finished = False
        self._open_error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sipgateway-sqlite", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._open_error is not None:
            raise self._open_error
        self._reader = InlineReader(path, inline_budget) if inline_budget > 0 and path != ":memory:" else None
        #: the last batch met a database error (locked, full, I/O); cleared by the next good one
        self._database_error = False

    # --- reactor side -------------------------------------------------------------------

    def start(self) -> None:
        """The thread started with the runner (it serves start-up calls too)."""

    def submit(self, name: str, fn: JobFunction, write: bool = True) -> Deferred:
        if self._closing:
            return fail(unavailable(name, "closed"))
        if not write and self._reader is not None:
            d = self._reader.run(name, fn)
            if d is not None:
                return d
        d = Deferred()
        self._queue.put(Job(name, fn, write, deferred=d))
        return d

    def run_sync(self, name: str, fn: JobFunction, write: bool = True, raw: bool = False) -> Any:
        """Run a job and wait for its commit, blocking the caller (start-up code only)."""
        if self._closing:
            raise unavailable(name, "closed")
        waiter = _Waiter()
        self._queue.put(Job(name, fn, write, waiter=waiter, raw=raw))
        waiter.done.wait()
        assert waiter.outcome is not None
        return waiter.outcome.result()

    def close(self) -> Deferred:
        """Finish the jobs already queued, close the connection, end the thread."""
        if self._finished:
            return succeed(None)
        d: Deferred = Deferred()
        self._close_waiters.append(d)
        if not self._closing:
            self._closing = True
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            self._queue.put(_STOP)
        return d

    @property
    def failing(self) -> bool:
        """Closed, or the database failed its last batch: 98 reports the ACS offline."""
        return self._closing or self._database_error

    def _deliver(self, fired: list[tuple[Deferred, Outcome]]) -> None:
        for d, outcome in fired:
            _fire(d, outcome)

    def _closed(self) -> None:
        self._finished = True
        waiters, self._close_waiters = self._close_waiters, []
        for d in waiters:
            d.callback(None)

    # --- worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            conn = connect(self.path)
        except BaseException as e:
            self._open_error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            self._serve(conn)
        finally:
            conn.close()
            self.reactor.callFromThread(self._closed)

    def _serve(self, conn: sqlite3.Connection) -> None:
        held: Job | None = None   # a raw job met while filling a batch: it runs right after it
        while True:
            first = held if held is not None else self._queue.get()
            held = None
            if first is _STOP:
                return
            if first.raw:
                self._run_raw(conn, first)
                continue
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP or job.raw:
                    held = job
                    break
                batch.append(job)
            self._run_batch(conn, batch)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
        outcomes = run_batch_or_fail(conn, batch, self.stats,
                                     lambda: log.failure("sqlite worker: batch of {n} jobs failed", n=len(batch)))
        self._database_error = any(not o.ok and isinstance(o.value, ACSUnavailable) for o in outcomes)
        fired = []
        for job, outcome in zip(batch, outcomes, strict=True):
            if job.waiter is not None:
                job.waiter.set(outcome)
            elif job.deferred is not None:
                fired.append((job.deferred, outcome))
        if fired:
            self.reactor.callFromThread(self._deliver, fired)

    def _run_raw(self, conn: sqlite3.Connection, job: Job) -> None:
        try:
            outcome = Outcome(True, job.fn(conn))
        except Exception as e:
            rollback(conn)
            outcome = Outcome(False, e)
        if job.waiter is not None:
            job.waiter.set(outcome)
        elif job.deferred is not None:
            self.reactor.callFromThread(self._deliver, [(job.deferred, outcome)])
