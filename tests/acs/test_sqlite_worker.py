"""The database process's batch loop, run in this process on a pipe: jobs past their
deadline are not run, each batch that writes records its answer in the database (and old
records are pruned), a batch that only reads records nothing, and a database file that is
no longer at its path is neither written nor read."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import SQLiteACS, attempts, items, loans, outcomes
from sipgateway.acs.sqlite.errors import DeadlinePassed
from sipgateway.acs.sqlite.frames import Answer, FrameReader, JobSpec, Setup
from sipgateway.acs.sqlite.worker import Worker
from sipgateway.attempts import PIN_PATRON, Key, Limit
from tests.acs.conftest import FAST, MAIN

TOKEN = "0123456789abcdef"


class Pipe:
    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        self.frames = FrameReader()

    def answer(self) -> Answer:
        (frame,) = self.frames.feed(os.read(self.read_fd, 1 << 20))
        assert isinstance(frame, Answer)
        return frame


@pytest.fixture
def pipe() -> Iterator[Pipe]:
    p = Pipe()
    yield p
    os.close(p.read_fd)
    os.close(p.write_fd)


@pytest.fixture
def worker(tmp_path: Path, pipe: Pipe) -> Iterator[Worker]:
    path = str(tmp_path / "lib.sqlite3")
    acs = SQLiteACS.synchronous(path, hash_iterations=FAST)
    acs.seed_demo()
    acs.close()
    setup = Setup(path=path, currency="USD", rules=acs.ctx.rules, hash_iterations=FAST, cache_size=16,
                  secrets_key=b"k" * 32, max_batch=64, token=TOKEN)
    w = Worker(setup, -1, pipe.write_fd)
    yield w
    w.close()


def job(number: int, fn, args: tuple, write: bool = True, deadline: float | None = None) -> JobSpec:
    return JobSpec(number, fn.__name__, write, fn, args, MAIN, datetime.now(), deadline)


def checkout(number: int, item: str, deadline: float | None = None) -> JobSpec:
    return job(number, loans.checkout, (rq.CheckoutRequest(patron_id="100001", item_id=item),), deadline=deadline)


def records(w: Worker) -> list[tuple]:
    return [tuple(r) for r in w.conn.execute("SELECT runner, first, last FROM call_outcomes ORDER BY id")]


def open_loans(w: Worker) -> set[str]:
    return {r[0] for r in w.conn.execute("SELECT i.barcode FROM loans l JOIN items i ON i.id = l.item_id "
                                         "WHERE l.returned_at IS NULL")}


def test_a_job_past_its_deadline_is_not_run_and_the_others_of_its_batch_are(worker: Worker, pipe: Pipe) -> None:
    worker._run([checkout(1, "200001", deadline=time.time() - 1), checkout(2, "200002", deadline=time.time() + 30)])
    answer = pipe.answer()
    (number, error), = answer.failed
    assert number == 1 and isinstance(error, DeadlinePassed) and isinstance(error, m.ACSTimeout)
    assert [n for n, _ in outcomes.decode(answer.done)] == [2]
    assert open_loans(worker) == {"200002"}


def test_a_batch_that_writes_records_its_answer_in_its_transaction(worker: Worker, pipe: Pipe) -> None:
    worker._run([checkout(5, "200001"), checkout(6, "no-such-item"), checkout(7, "200002")])
    answer = pipe.answer()
    assert records(worker) == [(TOKEN, 5, 7)]
    stored = outcomes.committed(worker.conn, TOKEN, {5, 6, 7})
    assert stored == dict(outcomes.decode(answer.done))     # the very values answered
    assert stored[5].ok and stored[7].ok and not stored[6].ok  # a refusal is a value too


def test_a_batch_that_only_reads_records_nothing(worker: Worker, pipe: Pipe) -> None:
    worker._run([job(1, items.information, ("200001",), write=False)])
    assert pipe.answer().failed == [] and records(worker) == []


def test_old_records_are_pruned_by_a_later_batch(worker: Worker, pipe: Pipe) -> None:
    outcomes.record(worker.conn, "an-old-gateway", 1, 9, time.time() - outcomes.RETENTION - 1, b"")
    worker._pruned = time.monotonic() - outcomes.PRUNE_EVERY
    worker._run([checkout(1, "200001")])
    pipe.answer()
    assert records(worker) == [(TOKEN, 1, 1)]


def test_a_deleted_database_file_is_neither_written_nor_read(worker: Worker, pipe: Pipe) -> None:
    os.unlink(worker.setup.path)
    worker._run([checkout(1, "200001"), job(2, items.information, ("200001",), write=False)])
    answer = pipe.answer()
    assert answer.file_problem == "was deleted" and outcomes.decode(answer.done) == []
    assert [n for n, _ in answer.failed] == [1, 2]
    assert all("was deleted; nothing was changed" in str(e) for _, e in answer.failed)
    assert open_loans(worker) == set()


def test_the_record_of_a_batch_with_a_counted_failure_can_be_read_back(worker: Worker, pipe: Pipe) -> None:
    """A wrong PIN counted in the same batch as a checkout: after a crash the gateway must
    read the batch's record to learn that the checkout committed (it read nothing, and
    answered the committed checkout with a failure, when a failure count was not an ACS value)."""
    limit = Limit(Key(PIN_PATRON, "100001"), 1, 60.0, 600.0)   # this failure locks: its record is the value
    worker._run([checkout(1, "200001"), job(2, attempts.fail_job, ((limit,), 1000.0, "10.0.0.1"))])
    answer = pipe.answer()
    stored = outcomes.committed(worker.conn, TOKEN, {1, 2})
    assert stored == dict(outcomes.decode(answer.done))
    assert stored[1].ok and [(r.key, r.failures, r.locked_until) for r in stored[2]] == [(limit.key, 1, 1600.0)]
