"""Formatted replies remembered for the rest of the current second.

A reply's bytes are a pure function of its builder's arguments (the ACS's answer and the
``ReplyContext``, which holds the date to the second), the request's AY and whether the
reply carries AY/AZ: the session keys each remembered reply on all of those but AY, so
there is nothing else a stale entry could differ in.  The reply is kept as formatted
without AY and the request's AY is put in on the way out (``ReplyWriter.sequenced``): a
device counts AY through ten digits, and keying on it made ten misses of every reply each
second, all in the first milliseconds of the second.  Backends that cache their read answers (the
SQLite ACS does) hand back the same answer object for the same question, so a status poll
or a repeated item lookup within a second skips building and formatting the reply again.
The answer is keyed by identity (answers are frozen values) and kept with the entry, so its
``id`` cannot be reused while the entry lives.  Only answers to requests without side
effects are kept; everything is dropped when the second changes.
"""

from __future__ import annotations

from collections.abc import Hashable

from twisted.internet.interfaces import IReactorTime

DEFAULT_SIZE = 4096


class ReplyMemo:
    def __init__(self, clock: IReactorTime, size: int = DEFAULT_SIZE) -> None:
        self.clock = clock
        self.size = size
        self._second = -1
        self._entries: dict[Hashable, tuple[object, bytes]] = {}

    def get(self, key: Hashable, answer: object) -> bytes | None:
        second = int(self.clock.seconds())
        if second != self._second:  # the reply date changed: everything is stale
            self._second = second
            self._entries.clear()
            return None
        entry = self._entries.get(key)
        return entry[1] if entry is not None and entry[0] is answer else None

    def put(self, key: Hashable, answer: object, data: bytes) -> bytes:
        """Remember ``data``; returns it."""
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (answer, data)
        return data
