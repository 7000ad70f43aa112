"""Health of upstream servers: a circuit breaker per server, a failover group over them.

``CircuitBreaker``: ``threshold`` failures in a row (connections that fail, logins refused,
timeouts, dropped connections, bad replies, as ``UpstreamPool.on_outcome`` reports them)
open it; a reply closes the count. While it is open no request is sent to that server;
every ``probe_interval`` seconds ``probe`` is called (a 99) until one is answered, which
closes it. Each transition is logged once.

``FailoverGroup``: the servers in the configured order; a request goes to the first one
whose breaker is closed. A request that was not sent (no connection, full queue), or a
read whose outcome is unknown, is tried on the next one while its deadline allows; a write
whose outcome is unknown is never sent to a second server (it may have been applied by
the first). ``healthy`` (any breaker closed) is what a 98 reports as on-line status.

Observers (``on_change``) are plain callables, for the logs; the admin listener reads the
breakers' state when it is asked (health.py, metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.acs.upstream.errors import (
    DeadlinePassed,
    NotEncodable,
    NotSent,
    OutcomeUnknown,
    Unavailable,
)
from sipgateway.exchange import SIDE_EFFECT_CODES
from sipgateway.sip2 import Message

log = Logger()

DEFAULT_THRESHOLD = 5
DEFAULT_PROBE_INTERVAL = 5.0

Send = Callable[[str, Mapping[str, str], Mapping[str, object], "float | None"], Deferred]


class CircuitBreaker:
    """One server's breaker. ``probe()`` gives a Deferred[bool] (True: the server answered)."""

    def __init__(self, name: str, clock: IReactorTime, probe: Callable[[], Deferred], *,
                 threshold: int = DEFAULT_THRESHOLD, probe_interval: float = DEFAULT_PROBE_INTERVAL) -> None:
        if threshold < 1 or probe_interval <= 0:
            raise ValueError("a breaker needs threshold >= 1 and probe_interval > 0")
        self.name = name
        self.clock = clock
        self.probe = probe
        self.threshold = threshold
        self.probe_interval = probe_interval
        #: called with (name, closed, reason) on every transition
        self.on_change: list[Callable[[str, bool, str], None]] = []
        self.failures = 0
        self.last_failure = ""
        #: times it opened since start-up (``sipgateway_upstream_breaker_open_total``)
        self.opened = 0
        self._open = False
        self._timer: IDelayedCall | None = None
        self._probing = False
        self._stopped = False

    @property
    def closed(self) -> bool:
        """Requests may be sent."""
        return not self._open

    def allow(self) -> bool:
        return not self._open

    def record(self, ok: bool, reason: str = "") -> None:
        """One outcome (the signature of ``UpstreamPool.on_outcome``)."""
        if self._open:
            return  # only a probe closes an open breaker
        if ok:
            self.failures = 0
            return
        self.failures += 1
        self.last_failure = reason
        if self.failures >= self.threshold:
            self._trip(f"{self.failures} failures in a row, the last: {reason}")

    def stop(self) -> None:
        """No more probes."""
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _trip(self, reason: str) -> None:
        self._open = True
        self.opened += 1
        log.warn("upstream {name}: out of service ({reason}); probing it every {every:g} s", name=self.name,
                 reason=reason, every=self.probe_interval)
        self._notify(False, reason)
        self._schedule()

    def _schedule(self) -> None:
        if not self._stopped and self._open and self._timer is None:
            self._timer = self.clock.callLater(self.probe_interval, self._probe)

    def _probe(self) -> None:
        self._timer = None
        if self._probing or not self._open or self._stopped:
            return
        self._probing = True
        d = self.probe()
        d.addErrback(lambda f: False)  # a probe that breaks is a probe that failed
        d.addCallback(self._probed)

    def _probed(self, answered: bool) -> None:
        self._probing = False
        if not self._open or self._stopped:
            return
        if answered:
            self._open = False
            self.failures = 0
            log.info("upstream {name}: back in service (answered a probe)", name=self.name)
            self._notify(True, "answered a probe")
        else:
            self._schedule()

    def _notify(self, closed: bool, reason: str) -> None:
        for observer in list(self.on_change):
            observer(self.name, closed, reason)


@dataclass
class Member:
    """One server of a failover group: its breaker and how to send it a request
    (``UpstreamPool.request`` in pooled mode)."""

    name: str
    breaker: CircuitBreaker
    send: Send


class FailoverGroup:
    """Servers in failover order."""

    def __init__(self, members: Sequence[Member], clock: IReactorTime) -> None:
        if not members:
            raise ValueError("a failover group needs at least one member")
        self.members = tuple(members)
        self.clock = clock
        #: called with the new value of ``healthy`` when it changes
        self.on_change: list[Callable[[bool], None]] = []
        self._healthy = self.healthy
        for member in self.members:
            member.breaker.on_change.append(self._member_changed)

    @property
    def healthy(self) -> bool:
        """At least one server is in service."""
        return any(m.breaker.closed for m in self.members)

    def first_healthy(self) -> Member | None:
        for member in self.members:
            if member.breaker.allow():
                return member
        return None

    def request(self, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
                deadline: float | None = None) -> Deferred[Message]:
        """Send to the first server in service, then to the next ones while that is safe."""
        return self._try(0, code, fixed, fields, deadline, None)

    def _try(self, start: int, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
             deadline: float | None, previous: Failure | None) -> Deferred[Message]:
        for index in range(start, len(self.members)):
            member = self.members[index]
            if not member.breaker.allow():
                continue
            if deadline is not None and deadline <= self.clock.seconds():
                break
            d = member.send(code, fixed, fields, deadline)
            return d.addErrback(self._failed, index, code, fixed, fields, deadline)
        if previous is not None:
            return _fail(previous)
        if deadline is not None and deadline <= self.clock.seconds():
            return _fail(DeadlinePassed(f"{code} not sent: its deadline passed", code=code))
        names = ", ".join(m.name for m in self.members)
        return _fail(Unavailable(f"{code} not sent: every upstream is out of service ({names})", code=code))

    def _failed(self, f: Failure, index: int, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
                deadline: float | None) -> Deferred[Message] | Failure:
        if f.check(DeadlinePassed, NotEncodable):
            return f
        if f.check(NotSent) or (f.check(OutcomeUnknown) and code not in SIDE_EFFECT_CODES):
            return self._try(index + 1, code, fixed, fields, deadline, f)
        return f

    def _member_changed(self, name: str, closed: bool, reason: str) -> None:
        healthy = self.healthy
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if healthy:
            log.info("upstream: {name} is in service again", name=name)
        else:
            log.warn("upstream: every upstream is out of service; devices get failure replies")
        for observer in list(self.on_change):
            observer(healthy)


def _fail(error: Exception | Failure) -> Deferred:
    d: Deferred = Deferred()
    d.errback(error)
    return d
