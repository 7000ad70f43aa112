"""The deadlines of the calls in flight: one heap, one timer for the earliest.

A timer per call would cost a ``callLater`` and a ``cancel`` on every call; nearly every
call is answered long before its deadline.  So deadlines go into a heap, answered calls
are left in it (``alive`` says which numbers still count) and skipped when they surface,
and the heap is rebuilt from the live ones when it has grown far past them.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

#: the heap is rebuilt when it holds more than this many entries and 4 times the live ones
COMPACT_AT = 4096


class Deadlines:
    def __init__(self, reactor, expire: Callable[[list[int]], None], alive: Callable[[int], bool]) -> None:
        self.reactor = reactor
        self._expire = expire     # called with the numbers whose deadline has passed
        self._alive = alive
        self._heap: list[tuple[float, int]] = []
        self._call = None
        self._at = 0.0

    def add(self, deadline: float, number: int, live: int) -> None:
        """``live``: how many calls are in flight (to know when the heap is mostly dead)."""
        heap = self._heap
        heapq.heappush(heap, (deadline, number))
        if self._call is None or deadline < self._at:
            self._arm(deadline)
        if len(heap) > COMPACT_AT and len(heap) > 4 * live:
            self._heap = [entry for entry in heap if self._alive(entry[1])]
            heapq.heapify(self._heap)

    def _arm(self, at: float) -> None:
        delay = max(0.0, at - self.reactor.seconds())
        if self._call is not None:
            self._call.reset(delay)
        else:
            self._call = self.reactor.callLater(delay, self._fire)
        self._at = at

    def _fire(self) -> None:
        self._call = None
        heap, alive = self._heap, self._alive
        now = self.reactor.seconds()
        due = []
        while heap and heap[0][0] <= now:
            number = heapq.heappop(heap)[1]
            if alive(number):
                due.append(number)
        while heap and not alive(heap[0][1]):
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])
        if due:
            self._expire(due)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        self._heap = []
