"""Usage figures: how many requests each branch and device made, kept in the gateway's
database per day, institution, listener, SC account, terminal location, request code and
outcome (``sipgateway report usage`` reads them).

A gateway observer (``served``, see gateway.py) counts each request answered in a dict in
memory: a tuple and a dict update on the request path, nothing else.  Every
``FLUSH_INTERVAL`` seconds, when the dict holds ``MAX_FIGURES`` different figures, and
when the gateway stops, the counts go to the database as one write (``store``, the
embedded backend's ``record_usage``): the database process adds them up in the same
group commit as the circulation writes.  A write that fails was not applied (the
database process answers so), so its counts are kept for the next one; memory stays
bounded by ``MAX_FIGURES``, and requests that find it full are counted as lost and logged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as day_start

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.sip2 import MESSAGES

#: seconds between writes of the figures to the database
FLUSH_INTERVAL = 10.0
#: different figures kept in memory at most (about 200 bytes each)
MAX_FIGURES = 10_000
#: days of figures the database keeps: older days are dropped as new ones are written
KEEP_DAYS = 1100
#: a terminal location (CP) is cut to this many characters
MAX_TERMINAL = 64
#: what a request that is not a known request code is counted as (a 96 for noise)
OTHER_CODE = "??"
_CODES = frozenset(code for code, spec in MESSAGES.items() if spec.direction == "request")

#: (day, institution, listener, account, terminal, code, outcome)
Key = tuple[str, str, str, str, str, str, str]
Store = Callable[[tuple, str], Deferred]


class UsageFigures(Service):
    """The gateway observer that counts requests, and the service that writes the counts."""

    log = Logger()

    def __init__(self, reactor, store: Store, *, interval: float = FLUSH_INTERVAL, max_figures: int = MAX_FIGURES,
                 keep_days: int = KEEP_DAYS) -> None:
        self.reactor = reactor
        self.store = store
        self.interval = interval
        self.max_figures = max_figures
        self.keep_days = keep_days
        self.counts: dict[Key, int] = {}
        #: requests not counted because ``counts`` was full while a write was under way
        self.lost = 0
        self._writing: Deferred | None = None
        self._failing = False
        self._day = ""
        self._day_from = self._day_until = 0.0
        self._loop: LoopingCall | None = None

    # --- the request path -------------------------------------------------------------------

    def served(self, session, code: str, outcome: str, seconds: float) -> None:
        now = session.last_at
        if not self._day_from <= now < self._day_until:
            self._new_day(now)
        t = session.terminal
        if code not in _CODES:
            code = OTHER_CODE
        if t is None:
            key = (self._day, "", session.settings.name, "", "", code, outcome)
        else:
            key = (self._day, t.institution, session.settings.name, t.account, t.location, code, outcome)
        counts = self.counts
        n = counts.get(key)
        if n is not None:
            counts[key] = n + 1
        elif len(counts) < self.max_figures:
            counts[key] = 1
        else:
            self._full(key)

    def _new_day(self, now: float) -> None:
        today = datetime.fromtimestamp(now).date()
        self._day = today.isoformat()
        self._day_from = datetime.combine(today, day_start()).timestamp()
        self._day_until = datetime.combine(today + timedelta(days=1), day_start()).timestamp()

    def _full(self, key: Key) -> None:
        if self._writing is None:
            self.flush()
            self.counts[key] = 1
        else:
            self.lost += 1

    # --- writing ------------------------------------------------------------------------------

    def keep_from(self) -> str:
        """The first day the database keeps."""
        today = datetime.fromtimestamp(self.reactor.seconds()).date()
        return (today - timedelta(days=self.keep_days)).isoformat()

    def flush(self) -> Deferred:
        """Write the counts so far (one database write); fires when written or given up on."""
        if self._writing is not None:  # the counts since go in a write of their own after it
            after: Deferred = Deferred()

            def again(_: object) -> None:
                self.flush().chainDeferred(after)

            self._writing.addBoth(again)
            return after
        if not self.counts:
            return succeed(None)
        counts, self.counts = self.counts, {}
        lost, self.lost = self.lost, 0
        if lost:
            self.log.warn("usage figures: {n} requests were not counted: more than {max} different figures "
                          "within {s:.0f} s", n=lost, max=self.max_figures, s=self.interval)
        d = self._writing = maybeDeferred(self.store, rows(counts), self.keep_from())
        d.addCallbacks(self._written, self._not_written, errbackArgs=(counts,))  # may fire now
        return d

    def _written(self, _: object) -> None:
        self._writing = None
        if self._failing:
            self._failing = False
            self.log.info("usage figures: written to the database again")

    def _not_written(self, failure: Failure, counts: dict[Key, int]) -> None:
        """Not applied: the counts are kept, as far as there is room, for the next write."""
        self._writing = None
        if not self._failing:
            self._failing = True
            self.log.warn("usage figures: cannot write them to the database ({why}); kept to try again",
                          why=failure.getErrorMessage())
        mine = self.counts
        for key, n in counts.items():
            if key in mine:
                mine[key] += n
            elif len(mine) < self.max_figures:
                mine[key] = n
            else:
                self.lost += n

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        super().startService()
        self._loop = LoopingCall(self.flush)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def stopService(self) -> Deferred:  # noqa: N802 - Twisted's name
        """The last counts are written before the database process stops (this service
        stops before the backend: it was added after it)."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self.flush()


def rows(counts: dict[Key, int]) -> tuple[tuple, ...]:
    """The counts as database rows, terminal locations cut to ``MAX_TERMINAL`` (added up)."""
    merged: dict[Key, int] = {}
    for key, n in counts.items():
        if len(key[4]) > MAX_TERMINAL:
            key = (*key[:4], key[4][:MAX_TERMINAL], *key[5:])
        merged[key] = merged.get(key, 0) + n
    return tuple((*key, n) for key, n in merged.items())


def usage_figures(backend: object, reactor) -> UsageFigures | None:
    """The usage counter of a backend that keeps a database (``usage_store``), else None."""
    store = getattr(backend, "usage_store", None)
    return None if store is None else UsageFigures(reactor, store)

