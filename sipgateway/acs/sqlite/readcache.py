"""A short-lived cache of read answers (patron status and information, item information).

Self-checks ask the same questions again and again (a patron's record on every screen, an
item's status before each checkout); the answers change only when a transaction is written,
or with the passing of time (fines, overdue flags).  So answers are kept for ``ttl`` seconds
at most, and every write empties the cache.  Only reads answered in the reactor thread are
stored: their answer is certainly current when stored (a read that ran in the database
thread might be older than a write delivered in the same batch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

DEFAULT_TTL = 1.0
DEFAULT_SIZE = 20_000


class ReadCache:
    #: in a worker process (--workers): the writes of every worker, so that another worker's
    #: write empties this cache as our own do (sipgateway/workers/generation.py)
    shared = None

    def __init__(self, ttl: float = DEFAULT_TTL, size: int = DEFAULT_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._entries: dict[Hashable, tuple[float, object]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> object | None:
        if self.shared is not None and self.shared.changed():
            self._entries.clear()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self.clock():
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, key: Hashable, value: object) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.size:
            self._entries.clear()  # bounded; refilled by the next reads
        self._entries[key] = (self.clock() + self.ttl, value)

    def clear(self, _: object = None) -> object:
        """Drop everything; usable as a Deferred callback (passes the result through)."""
        self._entries.clear()
        if self.shared is not None:
            self.shared.bump()
        return _

    def __len__(self) -> int:
        return len(self._entries)
