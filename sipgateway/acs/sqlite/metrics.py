"""The database process's figures for the admin listener's ``/metrics``: how many jobs each
transaction took (group commit) and how long each COMMIT took.  The database process counts
them (``BatchStats``, batch.py) and sends them with every answer; this reads the latest when
scraped, so the request path pays nothing for them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import Metric

from sipgateway.acs.sqlite.batch import COMMIT_BUCKETS, SIZE_BUCKETS
from sipgateway.admin.metrics import histogram


class DatabaseCollector:
    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        stats = self.runner.stats  # replaced by every answer: read it now
        yield histogram("sipgateway_db_batch_jobs", "Jobs (calls) per transaction of the database process "
                        "(group commit); counts start again when it is restarted", SIZE_BUCKETS, stats.sizes,
                        stats.jobs)
        yield histogram("sipgateway_db_commit_seconds", "Seconds each COMMIT of the database process took (the "
                        "write to disk); counts start again when it is restarted", COMMIT_BUCKETS,
                        stats.commit_times, stats.commit_seconds)
