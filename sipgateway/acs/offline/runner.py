"""``AsyncJournal``: the journal's calls run one at a time in a thread of their own, so an
fsync or a password hash never stalls the reactor, and each Deferred fires (in the reactor
thread) after the call's transaction has committed.

The journal is touched only while the library system is down or being caught up, so one
thread is plenty; with ``run=`` a test runs the calls synchronously.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from sipgateway.acs.offline.journal import Journal

Run = Callable[..., Deferred]


def run_inline(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
    """Call now (tests, and the command line)."""
    return maybeDeferred(fn, *args, **kwargs)


class AsyncJournal:
    def __init__(self, journal: Journal, reactor: Any = None, *, run: Run | None = None) -> None:
        self.journal = journal
        self._pool: ThreadPool | None = None
        if run is None:
            self._pool = ThreadPool(1, 1, name="sipgateway-offline-journal")
            pool = self._pool

            def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
                return deferToThreadPool(reactor, pool, fn, *args, **kwargs)
        self._run = run

    def start(self) -> None:
        if self._pool is not None and not self._pool.started:
            self._pool.start()

    def stop(self) -> None:
        if self._pool is not None and self._pool.started:
            self._pool.stop()  # waits for the call in progress: its commit is not cut short
        self.journal.close()

    def __getattr__(self, name: str) -> Callable[..., Deferred]:
        method = getattr(self.journal, name)

        def call(*args: Any, **kwargs: Any) -> Deferred:
            return self._run(method, *args, **kwargs)

        return call
