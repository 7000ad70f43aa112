"""What the embedded library system tells the admin listener: whether it can serve now (a
one-line reason when not: ``/readyz``, ``sipgateway_acs_up``) and the database process's
batch sizes and commit times (``/metrics``), counted in the process and read for free."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred

from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import SQLiteACS, health
from sipgateway.acs.sqlite.batch import COMMIT_BUCKETS, SIZE_BUCKETS, BatchStats
from sipgateway.acs.sqlite.metrics import DatabaseCollector
from tests.acs.childpipe import Children
from tests.acs.conftest import FAST, MAIN, served, stop


@pytest.fixture
def acs(tmp_path: Path, children: Children) -> Iterator[SQLiteACS]:
    library = served(tmp_path / "lib.sqlite3", children)
    yield library
    stop(library, children)


def checkout(acs: SQLiteACS, item: str) -> Deferred:
    return acs.checkout(MAIN, rq.CheckoutRequest(patron_id="100001", item_id=item, patron_pin="1234"))


def test_batch_sizes_and_commit_times_are_counted_by_bucket() -> None:
    stats = BatchStats()
    for jobs in (1, 1, 3, 512, 600):
        stats.ran(jobs)
    stats.committed(0.0003)
    stats.committed(0.004)
    stats.committed(9.0)
    assert stats.sizes == [2, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1]          # 1, 1 | 3 in (2, 4] | 512 | above
    assert len(stats.sizes) == len(SIZE_BUCKETS) + 1
    assert stats.commit_times == [1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert len(stats.commit_times) == len(COMMIT_BUCKETS) + 1
    assert (stats.batches, stats.jobs, stats.largest, stats.commits) == (5, 1117, 600, 3)
    assert stats.commit_seconds == pytest.approx(9.0043)


def test_the_database_process_reports_its_batches_and_commits(acs: SQLiteACS, children: Children) -> None:
    ds = [checkout(acs, item) for item in ("200001", "200002", "1565921879", "0440242746", "660")]
    children.pump_until(lambda: all(d.called for d in ds))
    stats = acs.runner.stats
    assert stats.sizes[SIZE_BUCKETS.index(8)] == 1 and sum(stats.sizes) == stats.batches == 1
    assert sum(stats.commit_times) == stats.commits == 1 and stats.commit_seconds > 0
    families = {f.name: f for f in DatabaseCollector(acs.runner).collect()}
    batches = {(s.name, s.labels.get("le")): s.value for s in families["sipgateway_db_batch_jobs"].samples}
    assert batches[("sipgateway_db_batch_jobs_bucket", "4.0")] == 0
    assert batches[("sipgateway_db_batch_jobs_bucket", "8.0")] == 1
    assert batches[("sipgateway_db_batch_jobs_bucket", "+Inf")] == 1
    assert batches[("sipgateway_db_batch_jobs_count", None)] == 1
    assert batches[("sipgateway_db_batch_jobs_sum", None)] == 5
    commits = {s.name: s.value for s in families["sipgateway_db_commit_seconds"].samples}
    assert commits["sipgateway_db_commit_seconds_count"] == 1
    assert commits["sipgateway_db_commit_seconds_sum"] == stats.commit_seconds


def test_ready_while_it_serves_then_the_reason_when_its_file_is_deleted(acs: SQLiteACS, children: Children) -> None:
    assert health.problem(acs) is None
    Path(acs.path).unlink()
    assert health.problem(acs) == f"the database file {acs.path} is missing"      # before the process knows
    d = checkout(acs, "200001")
    children.pump_until(lambda: d.called)
    d.addErrback(lambda _: None)
    assert health.problem(acs) == f"the database file {acs.path} was deleted"


def test_not_ready_before_it_starts_and_after_it_stopped(tmp_path: Path, children: Children) -> None:
    acs = SQLiteACS(str(tmp_path / "lib.sqlite3"), children.clock, hash_iterations=FAST, spawn=children)
    acs.seed_demo()
    assert health.problem(acs) == "the database process is not running"
    acs.start()
    children.pump_until(lambda: acs.runner.ready, "start-up")
    assert health.problem(acs) is None
    stop(acs, children)
    assert health.problem(acs) == "the database process is not running"


def test_a_file_it_may_not_write_or_a_full_file_system_is_the_reason(acs: SQLiteACS,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # as root every file is writable, so the permission check is taken from os.access here
    monkeypatch.setattr(health.os, "access", lambda path, mode, **kw: not (path == acs.path and mode == os.W_OK))
    assert health.problem(acs) == f"the database file {acs.path} is not writable by uid {os.geteuid()}"
    monkeypatch.undo()
    monkeypatch.setattr(health, "MIN_FREE_BYTES", 1 << 62)
    assert health.problem(acs).startswith(f"the file system of {acs.path} is full (")
