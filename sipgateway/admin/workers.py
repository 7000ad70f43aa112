"""The admin listener with ``--workers N``: ``/sessions`` and ``/metrics`` of every worker,
whichever worker a request lands on.

``/sessions`` asks every worker over its peers socket (workers/peers.py) for its sessions,
each marked with the worker's process id (``"worker": PID``), and lists them together.

``/metrics`` uses prometheus_client's multiprocess mode: every worker writes its figures to
files of its own (``counter_PID.db``, ``histogram_PID.db``, ``gauge_MODE_PID.db``) in the
workers' metrics directory (PROMETHEUS_MULTIPROC_DIR), and the answer is prometheus_client's
``MultiProcessCollector`` over all of them: counters and histograms summed, each gauge
merged by its mode (GAUGE_MODES).  The figures stay plain counts in memory (the request path
pays what it pays on one process, not a lock and an mmap write per request): a worker writes
them when a scrape asks it (over the peers socket, before the files are read), so the answer
counts every request answered before the scrape.  A worker that died keeps its counters and
histograms (``merge_gone``, by the parent: folded into ``*_gone.db``, so that their sums never
go down and the files stay as many as the workers); its live gauges are dropped.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

log = Logger()

#: how the workers' values of each gauge make one (prometheus_client's multiprocess modes;
#: "live": only the workers running now)
GAUGE_MODES = {
    "sipgateway_connections": "livesum",  # every worker's connections
    "sipgateway_acs_up": "livemin",  # 0 when any worker cannot reach the library system
    "sipgateway_upstream_up": "livemin",  # a server is up when every worker has it in service
    "sipgateway_upstream_failures": "livemax",
    "sipgateway_offline": "livemax",  # 1 while any worker answers offline
    "sipgateway_offline_journal_entries": "livemax",  # one journal, read by each worker: the same count
}
#: a gauge not named above: one series per worker (a ``pid`` label), never a wrong sum
DEFAULT_GAUGE_MODE = "liveall"
#: the file-name part of the figures of workers that died
GONE = "gone"
#: the lock file read and merge take turns on (a scrape never sees a dead worker's figures twice)
LOCK = "lock"
_KEPT = ("counter", "histogram")


def file_prefix(family: Metric) -> str | None:
    """Which file of a worker ``family``'s samples go to; None: not kept across workers."""
    if family.type in _KEPT:
        return family.type
    if family.type == "gauge":
        return f"gauge_{GAUGE_MODES.get(family.name, DEFAULT_GAUGE_MODE)}"
    return None


def samples_to_write(family: Metric) -> Iterator[tuple[str, float]]:
    """(mmap key, value) of what the multiprocess files hold of ``family``: histograms as
    per-bucket counts and their sum (the collector adds the buckets up and counts them)."""
    below: dict[tuple, float] = {}
    for sample in family.samples:
        name, labels = sample.name, sample.labels
        if name.endswith("_created") or (family.type == "histogram" and name.endswith(("_count", "_gsum",
                                                                                         "_gcount"))):
            continue
        value = sample.value
        if family.type == "histogram" and name.endswith("_bucket"):
            group = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            value, below[group] = value - below.get(group, 0.0), value
        yield mmap_key(family.name, name, list(labels), list(labels.values()), family.documentation), value


def write_figures(families: Iterable[Metric], directory: str, pid: int) -> None:
    """This worker's figures as they are now, each file replaced whole (atomically)."""
    files: dict[str, list[tuple[str, float]]] = {}
    for family in families:
        prefix = file_prefix(family)
        if prefix is not None:
            files.setdefault(prefix, []).extend(samples_to_write(family))
    for prefix, values in files.items():
        _write(os.path.join(directory, f"{prefix}_{pid}.db"), values)


def _write(path: str, values: Iterable[tuple[str, float]]) -> None:
    partial = path[:-len(".db")] + ".partial"  # not *.db: the collector never reads it
    if os.path.exists(partial):
        os.remove(partial)
    written = MmapedDict(partial)
    try:
        for key, value in values:
            written.write_value(key, value, 0.0)
    finally:
        written.close()
    os.replace(partial, path)


@contextmanager
def _locked(directory: str) -> Iterator[None]:
    fd = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def merge_gone(directory: str, pid: int) -> None:
    """Worker ``pid`` died: drop its live gauges, fold its counters and histograms into the
    figures of the workers that died before it."""
    mark_process_dead(pid, directory)
    with _locked(directory):
        for kind in _KEPT:
            mine = os.path.join(directory, f"{kind}_{pid}.db")
            if not os.path.exists(mine):
                continue
            gone = os.path.join(directory, f"{kind}_{GONE}.db")
            merged = MultiProcessCollector.merge([p for p in (gone, mine) if os.path.exists(p)], accumulate=False)
            _write(gone, ((mmap_key(m.name, s.name, list(s.labels), list(s.labels.values()), m.documentation),
                           s.value) for m in merged for s in m.samples))
            os.remove(mine)


class AllWorkers:
    """What the workers' files say together, read under the lock ``merge_gone`` takes."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.files = MultiProcessCollector(None, directory)

    def collect(self) -> Iterator[Metric]:
        with _locked(self.directory):
            merged = list(self.files.collect())
        yield from merged


def share_figures(own: CollectorRegistry, peers: Any, directory: str) -> None:
    """Every worker: write its figures when another worker's scrape asks."""
    peers.answers["metrics"] = lambda: write_figures(own.collect(), directory, peers.pid)


#: makes a page from the request and every worker's answer: (content type, body)
Page = Callable[[Request, dict[int, Any]], tuple[bytes, bytes]]


class Gathered(Resource):
    """A page made from every worker's answer to ``question``."""

    isLeaf = True

    def __init__(self, peers: Any, question: str, page: Page) -> None:
        super().__init__()
        self.peers, self.question, self.page = peers, question, page

    def render_GET(self, request: Request) -> Any:  # noqa: N802 - twisted.web's name
        finished: list[object] = []
        request.notifyFinish().addBoth(finished.append)  # the client left: nothing to write to

        def answer(made: tuple[bytes, bytes]) -> None:
            if not finished:
                request.setHeader(b"content-type", made[0])
                request.write(made[1])
                request.finish()

        def broken(failure: Any) -> None:
            log.failure("admin: gathering {question!r} from the workers", failure, question=self.question)
            if not finished:
                request.setResponseCode(500)
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                request.write(b"the workers' answers could not be gathered; see the log\n")
                request.finish()

        gathering = self.peers.ask_all(self.question)
        gathering.addCallback(lambda answers: self.page(request, answers)).addCallbacks(answer, broken)
        return NOT_DONE_YET


def all_sessions(request: Request, answers: dict[int, Any]) -> tuple[bytes, bytes]:
    """``/sessions``: every worker's, each with ``"worker": PID``, sorted as on one process."""
    views = sorted((view for listed in answers.values() for view in listed),
                   key=lambda v: (v["listener"], v["peer"], v["worker"]))
    return b"application/json", json.dumps(views, indent=1).encode("utf-8") + b"\n"


def all_metrics(directory: str) -> Page:
    """``/metrics``: read once every worker has written its figures (its answer to "metrics")."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AllWorkers(directory))

    def page(request: Request, answers: dict[int, Any]) -> tuple[bytes, bytes]:
        accept = request.getHeader(b"accept")
        encoder, content_type = choose_encoder(accept.decode("latin-1") if accept else "")
        return content_type.encode("ascii"), encoder(registry)

    return page
