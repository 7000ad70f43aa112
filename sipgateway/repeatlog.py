"""Log lines a client can cause again and again, rate-limited per connection.

A client that pipelines 100,000 requests without reading its replies, or sends garbage in
a loop, must not be able to fill the disk with one line per request. Each connection has
one ``RepeatedLines``; for each kind of line, the first occurrence is logged in full, later
ones are counted, and at most one summary line per ``REPEAT_INTERVAL`` seconds gives the
count (and the latest occurrence); closing the connection logs what was still counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import formatEvent

#: after the first line of a kind about one connection, at most one summary line per this
#: many seconds
REPEAT_INTERVAL = 60.0

#: a bound log method: ``Logger.warn``, ``Logger.info``, ...
Emit = Callable[..., None]


class RepeatedLines:
    """The log lines of one connection that a client can repeat, by kind."""

    __slots__ = ("_clock", "_interval", "_kinds")

    def __init__(self, clock: IReactorTime, interval: float = REPEAT_INTERVAL) -> None:
        self._clock = clock
        self._interval = interval
        #: kind -> [when its last line was logged, occurrences counted since, and the latest's
        #: emit, peer and (format, fields)]
        self._kinds: dict[str, list[Any]] | None = None  # most connections never need one

    def log(self, emit: Emit, kind: str, peer: str, format: str, **fields: Any) -> None:
        """``emit("{peer}: " + format, **fields)``, unless a line of this ``kind`` was logged
        less than the interval ago: then it is counted, and summed up later."""
        now = self._clock.seconds()
        kinds = self._kinds
        if kinds is None:
            kinds = self._kinds = {}
        state = kinds.get(kind)
        if state is None:
            kinds[kind] = [now, 0, emit, peer, None]
            emit("{peer}: " + format, peer=peer, **fields)
            return
        state[1] += 1
        state[2], state[3], state[4] = emit, peer, (format, fields)
        if now - state[0] >= self._interval:
            self._summary(kind, state, f"in the last {now - state[0]:.0f} s")
            state[0], state[1] = now, 0

    def close(self) -> None:
        """Log what is still counted (the connection is closing)."""
        for kind, state in (self._kinds or {}).items():
            if state[1]:
                self._summary(kind, state, "before the connection closed")
        self._kinds = None

    @staticmethod
    def _summary(kind: str, state: list[Any], when: str) -> None:
        _, count, emit, peer, (format, fields) = state
        latest = formatEvent({"log_format": format, **fields})
        emit("{peer}: {kind}: {n} more {when}, counted, not logged one by one; the latest: {latest}",
             peer=peer, kind=kind, n=count, when=when, latest=latest)
