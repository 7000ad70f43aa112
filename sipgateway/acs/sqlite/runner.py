"""Where database work runs, behind one interface: ``Runner``.

The gateway's runner is ``dbprocess.ProcessRunner``: a database process commits the calls
in batches (group commit), quick reads run in the reactor thread (``InlineReader``).
``SyncRunner`` runs each call at once in the calling thread and returns fired Deferreds
(``SQLiteACS.synchronous``: the rule tests and tools); it sends every call and its answer
through the very frames the database process reads and writes (frames.py), so an argument
or a value that does not pickle, or comes back different, fails there as it would in
production.  ``Direct`` is the start-up connection of both, for ``run_sync``: migrations,
checks and account set-up run before the reactor and never cross the pipe.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed

from sipgateway.acs.sqlite import outcomes
from sipgateway.acs.sqlite.batch import (
    MAX_BATCH,
    BatchStats,
    Job,
    JobFunction,
    Outcome,
    rollback,
    run_batch,
    translate,
)
from sipgateway.acs.sqlite.context import Call, Context
from sipgateway.acs.sqlite.errors import MoveToWorker, inline, unavailable
from sipgateway.acs.sqlite.frames import Answer, FrameReader, JobSpec, encode, encode_answer
from sipgateway.acs.sqlite.schema import connect

__all__ = ["INLINE_BUDGET", "MAX_BATCH", "BatchStats", "Direct", "InlineReader", "Job", "Outcome", "Runner",
           "SyncRunner", "run_batch"]

#: how long a read may hold the reactor thread before it is moved to the database process
INLINE_BUDGET = 0.002


class Runner(Protocol):
    """What ``SQLiteACS`` and its attempt store need of whatever runs their database work."""

    #: the batches run so far (the bench reports them)
    stats: BatchStats

    @property
    def answers_by_deadline(self) -> bool:
        """Every call is answered by its ``Call.deadline`` (see ``IACS.answers_by_deadline``)."""

    @property
    def failing(self) -> bool:
        """The database cannot serve now (closed, down, not answering): 98 says offline."""

    def start(self) -> None:
        """Begin serving calls (from ``startService``: after twistd has daemonized)."""

    def submit(self, name: str, call: Call, write: bool = True) -> Deferred:
        """Run ``call`` as one transaction: its value once committed, or a failure (not applied)."""

    def run_sync(self, name: str, fn: JobFunction, write: bool = True, raw: bool = False) -> Any:
        """Run ``fn(conn)`` in the calling thread and wait for its commit (start-up and tools);
        ``raw``: outside any transaction (migrations manage their own)."""

    def close(self) -> Deferred:
        """Finish what was given, then stop; fires when stopped."""


class Direct:
    """One connection in the calling thread for the start-up jobs: every job is its own
    transaction, and its function need not pickle (it never leaves this process)."""

    def __init__(self, path: str) -> None:
        self.conn = connect(path)
        self.stats = BatchStats()
        self.closed = False

    def run_sync(self, name: str, fn: JobFunction, write: bool = True, raw: bool = False) -> Any:
        if self.closed:
            raise unavailable(name, "closed")
        if raw:
            return fn(self.conn)
        return run_batch(self.conn, [Job(name, fn, write)], self.stats)[0].result()

    def close_connection(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.close()


def _received(data: bytes) -> Any:
    """``data`` as the other end of the pipe reads it: one frame."""
    (frame,) = FrameReader().feed(data)
    return frame


class SyncRunner(Direct):
    """Runs every call at once, in the calling thread, as its own transaction, after a round
    trip through the frames of the database process: the call goes out as a ``JobSpec`` and
    its value comes back in an ``Answer``, encoded and decoded as there.  No deadline is
    applied: the answer is there before any could pass."""

    answers_by_deadline = False

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._numbers = itertools.count(1)

    @property
    def failing(self) -> bool:
        return self.closed

    def start(self) -> None:
        """Nothing to start: calls run in the caller."""

    def submit(self, name: str, call: Call, write: bool = True) -> Deferred:
        if self.closed:
            return fail(unavailable(name, "closed"))
        assert call.ctx is not None, "a Call needs a Context to run"
        number = next(self._numbers)
        try:
            (spec,) = _received(encode([JobSpec.of(number, name, write, call)]))
        except Exception as e:  # never sent: the call alone fails, as ProcessRunner's does
            return fail(unavailable(name, e))
        answer = _received(encode_answer(self._run(spec, call.ctx)))
        if answer.failed:
            return fail(answer.failed[0][1])
        # a write's value is also what a gateway reads back after its database process died
        # (outcomes.py): it must decode with the reader that admits ACS model values only
        decode = outcomes.decode_recorded if write else outcomes.decode
        try:
            ((_, value),) = decode(answer.done)
        except Exception as e:
            return fail(e)
        return succeed(value)

    def _run(self, spec: JobSpec, ctx: Context) -> Answer:
        """What the database process does with a batch of one job (worker.py)."""
        job = Job(spec.name, Call(spec.fn, spec.args, spec.terminal, spec.now, ctx), spec.write)
        done: list[bytes] = []

        def record(conn: sqlite3.Connection, results: Sequence[Outcome]) -> None:
            # the value is encoded inside the transaction: one that cannot be is not committed
            done[:] = [outcomes.encode([(spec.number, o.value) for o in results if o.ok])]

        (outcome,) = run_batch(self.conn, [job], self.stats, record)
        if not outcome.ok:
            return Answer(outcomes.encode([]), [(spec.number, outcome.value)], stats=self.stats)
        return Answer(done[0], stats=self.stats)

    def close(self) -> Deferred:
        self.close_connection()
        return succeed(None)


class InlineReader:
    """Reads run at once in the reactor thread, on a connection of their own (WAL lets them
    read while the writer writes), as long as they are quick.  A read that takes longer than
    ``budget`` is interrupted by SQLite's progress handler, and a read that would hash a
    password raises ``MoveToWorker``; both are rolled back and handed to the database
    process, so a slow query never holds the other connections up for more than ``budget``."""

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
