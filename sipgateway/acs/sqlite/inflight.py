"""The calls the database process has not answered yet: their Deferreds, the order they go
out in, and what happens at their deadlines.

At a call's deadline: a call not yet sent fails and is never sent; a read already sent
fails (its late answer is dropped); a write already sent is held, "late", until the child
answers it or dies (its reply then says what really happened).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from sipgateway.acs.sqlite.context import Call
from sipgateway.acs.sqlite.deadlines import Deadlines
from sipgateway.acs.sqlite.errors import deadline_passed, unavailable
from sipgateway.acs.sqlite.frames import JobSpec

log = Logger()


class Flight:
    """A call until it is answered; ``job`` is what goes to the child, None once sent."""

    __slots__ = ("name", "d", "write", "deadline", "job", "late")

    def __init__(self, name: str, d: Deferred, write: bool, deadline: float | None, job: JobSpec | None) -> None:
        self.name = name
        self.d = d
        self.write = write
        self.deadline = deadline
        self.job = job
        self.late = False    # sent, and its deadline has passed


class InFlight:
    def __init__(self, reactor, expired: Callable[[], None]) -> None:
        self.reactor = reactor
        self.pending: dict[int, Flight] = {}
        self.outgoing: list[int] = []   # numbers of the calls not sent yet, in order
        #: calls sent whose deadline passed before the child answered them
        self.late: set[int] = set()
        self._numbers = itertools.count(1)
        self._deadlines = Deadlines(reactor, self._expire, self.pending.__contains__)
        self._expired = expired         # told after deadlines passed

    def add(self, name: str, call: Call, write: bool) -> Deferred:
        number = next(self._numbers)
        d = Deferred()
        deadline = call.deadline
        self.pending[number] = Flight(name, d, write, deadline, JobSpec.of(number, name, write, call))
        self.outgoing.append(number)
        if deadline is not None:
            self._deadlines.add(deadline, number, len(self.pending))
        return d

    def to_send(self) -> list[JobSpec]:
        """The jobs of the calls not sent yet, now counted as sent."""
        numbers, self.outgoing = self.outgoing, []
        pending = self.pending
        jobs = []
        for number in numbers:
            flight = pending.get(number)
            if flight is not None and flight.job is not None:  # not failed at its deadline meanwhile
                jobs.append(flight.job)
                flight.job = None
        return jobs

    def settle(self, number: int, ok: bool, value: object) -> None:
        late = self.late
        if late:
            late.discard(number)
        flight = self.pending.pop(number, None)
        if flight is None:
            return   # failed at its deadline already: the late answer is dropped
        if flight.late:
            log.warn("database process: {name} answered {s:.1f} s after its deadline: {what}; its reply was held "
                     "until now", name=flight.name, s=self.reactor.seconds() - flight.deadline,
                     what="committed" if ok else "not applied")
        if ok:
            flight.d.callback(value)
        else:
            flight.d.errback(value)

    def fail_unsendable(self, number: int, error: Exception) -> str:
        flight = self.pending.pop(number)
        flight.d.errback(unavailable(flight.name, error))
        return flight.name

    def _expire(self, numbers: list[int]) -> None:
        pending = self.pending
        reads = writes = 0
        for number in numbers:
            flight = pending.get(number)
            if flight is None or flight.late:
                continue
            if flight.job is not None:
                del pending[number]
                flight.d.errback(deadline_passed(flight.name, "before it was sent to the database process"))
                continue
            flight.late = True
            self.late.add(number)
            if flight.write:
                writes += 1
            else:
                reads += 1
                del pending[number]
                flight.d.errback(deadline_passed(flight.name, "while the database process had it"))
        if reads or writes:
            log.warn("database process: {n} calls past their deadline; {reads} reads failed, {writes} writes "
                     "wait for their outcome (their replies say what happened)", n=reads + writes, reads=reads,
                     writes=writes)
            self._expired()

    def held(self) -> int:
        """Writes sent, past their deadline, waiting for their outcome."""
        return sum(1 for n in self.late if n in self.pending)

    def take_sent_writes(self) -> dict[int, Flight]:
        """The writes the child was given (after its death: the database knows their outcome)."""
        writes = {n: f for n, f in self.pending.items() if f.write and f.job is None}
        for number in writes:
            del self.pending[number]
        return writes

    def fail_all(self, why: str) -> int:
        """Fail every call (not applied); how many there were."""
        self.outgoing = []
        self.late.clear()
        flights = list(self.pending.values())
        self.pending.clear()
        for flight in flights:
            flight.d.errback(unavailable(flight.name, why))
        return len(flights)

    def stop(self) -> None:
        self._deadlines.stop()
