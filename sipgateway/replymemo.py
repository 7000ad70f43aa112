"""Formatted replies remembered for the rest of the current second.

A reply is a pure function of the ACS's answer, the request's AO/language/AY, the
session's account and settings, and the date to the second.  Backends that cache their
read answers (the SQLite ACS does) hand back the same answer object for the same
question, so a status poll or a repeated item lookup within a second can skip building
and formatting the reply again.  Only answers to requests without side effects are kept.
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
        # the key holds the answer's id(); the answer itself proves the id was not reused
        return entry[1] if entry is not None and entry[0] is answer else None

    def put(self, key: Hashable, answer: object, data: bytes) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[key] = (answer, data)
