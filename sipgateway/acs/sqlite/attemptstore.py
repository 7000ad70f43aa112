"""``SQLiteAttempts``: the gateway's ``AttemptStore`` (sipgateway/attempts.py) in the
embedded database.  A read is a quick read (in the reactor thread, on the reading
connection); a failure is a write of the database process (attempts.py holds the SQL)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed

from sipgateway.acs.sqlite.attempts import fail_job, read_job, records_job, reset_job, unlock_job
from sipgateway.acs.sqlite.context import Call
from sipgateway.attempts import Key, Limit, Record


class SQLiteAttempts:
    """The ``AttemptStore`` of the embedded database, run by its ACS's runner.

    Nearly every login and PIN check finds no record, so the keys a read found without one
    are remembered for ``clean_ttl`` seconds and not read again: a failure counted here
    forgets them at once, ``unlock`` only ever removes records, and a failure counted by
    another process sharing the database is seen here within ``clean_ttl`` (at once by the
    other worker processes of the same gateway: ``shared``, sipgateway/workers/generation.py)."""

    shared = None

    def __init__(self, acs: Any, clean_ttl: float = 1.0, clean_size: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.runner = acs.runner
        self.ctx = acs.ctx
        self.clean_ttl = clean_ttl
        self.clean_size = clean_size
        self.clock = clock
        self._clean: dict[Key, float] = {}   # key -> until when it is known to have no record

    def _submit(self, name: str, fn: Any, args: tuple, write: bool) -> Deferred:
        return self.runner.submit(name, Call(fn, args, None, self.ctx.clock(), self.ctx), write)

    def clean(self, keys: Sequence[Key]) -> bool:
        now = self.clock()
        known = self._clean
        if self.shared is not None and self.shared.changed():
            known.clear()
        for key in keys:
            if known.get(key, 0.0) <= now:
                return False
        return True

    def read(self, keys: Sequence[Key]) -> Deferred:
        now = self.clock()
        if self.clean(keys):
            return succeed({})
        return self._submit("read failed attempts", read_job, (tuple(keys),), False).addCallback(
            self._found, keys, now + self.clean_ttl)

    def _found(self, records: dict[Key, Record], keys: Sequence[Key], until: float) -> dict[Key, Record]:
        if len(self._clean) >= self.clean_size:
            self._clean.clear()  # bounded; refilled by the next reads
        for key in keys:
            if key not in records:
                self._clean[key] = until
        return records

    def _forget(self, result: Any, keys: Sequence[Key]) -> Any:
        for key in keys:
            self._clean.pop(key, None)
        if self.shared is not None:
            self.shared.bump()
        return result

    def fail(self, limits: Sequence[Limit], now: float, source: str) -> Deferred:
        keys = [limit.key for limit in limits]
        self._forget(None, keys)
        # and again when written: a read answered meanwhile ran before the write
        return self._submit("count a failed attempt", fail_job, (tuple(limits), now, source), True).addBoth(
            self._forget, keys)

    def reset(self, keys: Sequence[Key]) -> Deferred:
        return self._submit("clear failed attempts", reset_job, (tuple(keys),), True)

    def unlock(self, subject: str) -> Deferred:
        return self._submit("unlock", unlock_job, (subject,), True)

    def records(self) -> Deferred:
        return self._submit("list failed attempts", records_job, (), False)
