"""The offline journal's figures for the admin listener's ``/metrics``: whether the gateway
answers offline now, and how many journal entries wait to be replayed (pending), were sent
with their outcome being resolved (sent), or conflict (answered "no" on replay: see
``sipgateway offline report``).

The counts come from one ``SELECT ... GROUP BY state`` per scrape on a read-only connection
of their own (WAL: it neither waits for the journal's writes nor holds them up), so they are
right even after ``sipgateway offline export --mark-done`` changed the file from another
process; the request path pays nothing for them.

On PostgreSQL that read is a connection and a round trip to a server that may be slow or
gone, so it never runs in the reactor thread (an unreachable server would hold every device
for the connect timeout): each scrape starts one read in a thread, unless one is under way,
and reports the figures of the last read that finished (none before the first, and none
after a read failed).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

from prometheus_client.core import GaugeMetricFamily, Metric
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.acs.offline.journal import CONFLICT, PENDING, SENT
from sipgateway.acs.postgresql import is_url

log = Logger()

#: the journal states a scrape reports (done entries are history: see the report)
REPORTED = (PENDING, SENT, CONFLICT)
#: seconds a scrape waits for a lock on the journal's file (WAL readers rarely meet one)
READ_TIMEOUT = 0.25


def journal_counts(path: str) -> dict[str, int]:
    """Entries of the journal in the database at ``path`` by state (``REPORTED`` only)."""
    if is_url(path):
        from sipgateway.acs.sqlite.schema import connect

        conn = connect(path)
    else:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=READ_TIMEOUT)
    try:
        found = dict(conn.execute("SELECT state, count(*) FROM offline_journal WHERE state IN (?, ?, ?) "
                                  "GROUP BY state", REPORTED).fetchall())
    finally:
        conn.close()
    return {state: found.get(state, 0) for state in REPORTED}


class OfflineCollector:
    def __init__(self, online: Callable[[], bool], path: str,
                 in_thread: Callable[..., Deferred] = deferToThread) -> None:
        self.online = online
        # as the journal opened it: at start-up, in the directory then
        self.path = path if is_url(path) else os.path.abspath(path)
        #: PostgreSQL: runs ``journal_counts`` off the reactor thread
        self._in_thread = in_thread if is_url(path) else None
        #: PostgreSQL: the last read's counts, and whether a read is under way
        self._last: dict[str, int] | None = None
        self._reading = False

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("sipgateway_offline", "1 while no library system server is in service and the "
                                "gateway answers offline (accounts with offline = accept record checkouts and "
                                "returns in the journal), else 0", value=int(not self.online()))
        try:
            counts = self._counts()
        except sqlite3.Error as e:  # the scrape still answers; the journal's figures are left out
            self._cannot_read(e)
            return
        if counts is None:
            return
        entries = GaugeMetricFamily("sipgateway_offline_journal_entries", "Offline journal entries by state: pending "
                                    "(waiting to be replayed), sent (outcome being resolved), conflict (refused on "
                                    "replay: see sipgateway offline report)", labels=("state",))
        for state in REPORTED:
            entries.add_metric((state,), counts[state])
        yield entries

    def _counts(self) -> dict[str, int] | None:
        if self._in_thread is None:
            return journal_counts(self.path)
        if not self._reading:
            self._reading = True
            self._in_thread(journal_counts, self.path).addCallbacks(self._read, self._not_read)
        return self._last

    def _read(self, counts: dict[str, int]) -> None:
        self._reading, self._last = False, counts

    def _not_read(self, failure: Failure) -> None:
        self._reading, self._last = False, None
        error: Any = failure.value
        if not isinstance(error, sqlite3.Error):
            log.failure("offline: reading the journal's figures failed", failure)
            return
        self._cannot_read(error)

    def _cannot_read(self, error: sqlite3.Error) -> None:
        log.warn("offline: the journal's figures cannot be read from {path}: {error}", path=self.path, error=error)
