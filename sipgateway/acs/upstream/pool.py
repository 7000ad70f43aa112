"""Connections to ONE upstream server, shared by every request sent to it.

Pooled mode: ``size`` connections are opened at ``start`` and logged in with the
gateway's own login; each one that fails or drops is opened again after a backoff of 1,
2, 5, 10, 30, then every 60 seconds (reset by a successful login), and logs in again.
Requests go to a free connection, else wait in a bounded queue (full: ``QueueFull`` at
once) until one is free, at most until their deadline or the request timeout.

Lazy mode (a device's dedicated connection in pass-through mode): one connection, opened
by ``connect_now`` or by the first request, and opened again on demand by the next
request after it drops, with the device's own 93. A refused login is final: requests then
fail with ``LoginRefused`` without connecting again.

Failures say whether the request may have been applied (``errors``): a request whose
deadline passes while it waits, or that finds no connection, is never sent (``NotSent``).

``on_outcome`` observers are called with (True, "reply") for every reply and with
(False, reason) for every connection failure, refused login, timeout, dropped connection,
bad reply, or request that found no free connection for a whole request timeout: what a
circuit breaker counts. (A connection that opens is no news: a server
that accepts connections but never answers must still count as failing.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.acs import requests as rq
from sipgateway.acs.upstream.connection import STATUS_FIXED, UpstreamConnection, open_connection
from sipgateway.acs.upstream.errors import (
    DeadlinePassed,
    LoginRefused,
    OutcomeUnknown,
    QueueFull,
    Unavailable,
)
from sipgateway.acs.upstream.url import UpstreamConfig
from sipgateway.exchange import LOGIN, Body, RequestContext
from sipgateway.sip2 import Message

log = Logger()

#: seconds before the n-th attempt to open a connection again (the last one repeats)
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: queued requests per connection
QUEUE_PER_CONNECTION = 16
#: a connection that lived this long (seconds) ends a failure streak; one that closes sooner
#: is opened again with the next backoff step (a server that drops us right after the login)
STABLE = 60.0

Outcome = Callable[[bool, str], None]


def gateway_login(config: UpstreamConfig) -> Body:
    """The 93 of pooled mode: the URL's login, password and location."""
    assert config.login is not None
    request = rq.LoginRequest(user=config.login, password=config.password, location=config.location)
    _code, fixed, fields = LOGIN.request_message(request, RequestContext(institution=config.institution,
                                                                         now=datetime.now()))
    return fixed, fields


@dataclass(eq=False)
class _Queued:
    code: str
    fixed: Mapping[str, str]
    fields: Mapping[str, object]
    deadline: float | None
    done: Deferred = field(default_factory=Deferred)
    timer: IDelayedCall | None = None


@dataclass(eq=False)
class _Slot:
    index: int
    conn: UpstreamConnection | None = None
    opening: bool = False
    #: Deferreds waiting for the connection being opened
    waiters: list[Deferred] = field(default_factory=list)
    retry: IDelayedCall | None = None
    #: failed attempts (or short-lived connections) in a row: the index into BACKOFF
    attempts: int = 0
    opened_at: float = 0.0


class UpstreamPool:
    """Connections to one server. ``endpoint`` is where connections go (``client_endpoint``
    for a real server); ``login`` the 93 body (default: the config's own login, or none in
    pass-through mode)."""

    def __init__(self, config: UpstreamConfig, clock: IReactorTime, endpoint: IStreamClientEndpoint, *,
                 login: Body | None = None, size: int | None = None, lazy: bool = False,
                 max_queue: int | None = None) -> None:
        self.config = config
        self.clock = clock
        self.endpoint = endpoint
        self.server = config.server
        self.login = login if login is not None else (gateway_login(config) if config.pooled else None)
        self.lazy = lazy
        n = size if size is not None else (1 if lazy else config.pool)
        self.max_queue = max_queue if max_queue is not None else QUEUE_PER_CONNECTION * n
        self.on_outcome: list[Outcome] = []
        self._slots = [_Slot(i) for i in range(n)]
        self._queue: deque[_Queued] = deque()
        self._stopped = False
        self._failing = False
        self._refused: LoginRefused | None = None
        self._last_error = "not connected yet"

    # -- public -------------------------------------------------------------------------------

    @property
    def ready_connections(self) -> int:
        return sum(1 for s in self._slots if s.conn is not None and s.conn.alive)

    @property
    def refused(self) -> LoginRefused | None:
        """The refused login that ended a lazy pool, or None."""
        return self._refused

    def start(self) -> None:
        """Open the connections (pooled mode; lazy pools open on demand)."""
        if not self.lazy:
            for slot in self._slots:
                self._open(slot)

    def connect_now(self, deadline: float | None = None) -> Deferred[UpstreamConnection]:
        """Open the first connection now (lazy mode): fires with it once logged in, or
        fails with ``LoginRefused`` or ``Unavailable``."""
        slot = self._slots[0]
        if slot.conn is not None and slot.conn.alive:
            return succeed(slot.conn)
        d: Deferred = Deferred()
        slot.waiters.append(d)
        if not slot.opening:
            self._open(slot, deadline)
        return d

    def stop(self) -> Deferred:
        """Close every connection; queued requests fail with ``Unavailable``."""
        self._stopped = True
        self._fail_queue(lambda q: Unavailable(f"{q.code} not sent: the upstream client stopped",
                                               server=self.server, code=q.code))
        closing = []
        for slot in self._slots:
            if slot.retry is not None and slot.retry.active():
                slot.retry.cancel()
            if slot.conn is not None:
                closing.append(slot.conn.closed)
                slot.conn.close()
        return DeferredList(closing)

    def request(self, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
                deadline: float | None = None) -> Deferred[Message]:
        """Send one request on a free connection (or when one is free); fires with the reply."""
        now = self.clock.seconds()
        if self._refused is not None:
            return _fail(LoginRefused(f"{code} not sent: {self._refused.detail}", server=self.server,
                                      reply=self._refused.reply))
        if self._stopped:
            return _fail(Unavailable(f"{code} not sent: the upstream client stopped", server=self.server, code=code))
        if deadline is not None and deadline <= now:
            return _fail(DeadlinePassed(f"{code} not sent: its deadline passed", server=self.server, code=code))
        conn = self._free()
        if conn is not None and not self._queue:
            return self._send(conn, code, fixed, fields, deadline)
        if not self.lazy and not any(s.conn is not None or s.opening for s in self._slots):
            return _fail(Unavailable(f"{code} not sent: no connection ({self._last_error})", server=self.server,
                                     code=code))
        if len(self._queue) >= self.max_queue:
            return _fail(QueueFull(f"{code} not sent: {len(self._queue)} requests already wait for a connection",
                                   server=self.server, code=code))
        queued = _Queued(code, fixed, fields, deadline)
        wait = self.config.timeout if deadline is None else min(self.config.timeout, deadline - now)
        queued.timer = self.clock.callLater(wait, self._waited_too_long, queued)
        self._queue.append(queued)
        if self.lazy and self._slots[0].conn is None and not self._slots[0].opening:
            self._open(self._slots[0], deadline)
        return queued.done

    def probe(self, deadline: float | None = None) -> Deferred[bool]:
        """Whether the server answers a 99 now; opens a connection at once for it if none is
        up (skipping the backoff wait). Never fails."""
        if self._free() is None:
            for slot in self._slots:
                if slot.conn is None and not slot.opening:
                    if slot.retry is not None and slot.retry.active():
                        slot.retry.cancel()
                    self._open(slot, deadline)
                    break
        d = self.request("99", STATUS_FIXED, {}, deadline)
        return d.addCallbacks(lambda _: True, lambda _: False)

    # -- opening connections ----------------------------------------------------------------------

    def _open(self, slot: _Slot, deadline: float | None = None) -> None:
        slot.retry = None
        slot.opening = True
        d = open_connection(self.endpoint, settings=self.config.wire(), clock=self.clock, server=self.server,
                            timeout=self.config.timeout, login=self.login, tls=self.config.tls, deadline=deadline)
        d.addCallbacks(self._opened, self._not_opened, callbackArgs=(slot,), errbackArgs=(slot,))

    def _opened(self, conn: UpstreamConnection, slot: _Slot) -> None:
        slot.opening = False
        waiters, slot.waiters = slot.waiters, []
        if self._stopped:
            conn.close()
            for w in waiters:
                w.errback(Unavailable("the upstream client stopped", server=self.server))
            return
        if self._failing:
            log.info("upstream {server}: connected{login} again", server=self.server,
                     login=" and logged in" if self.login else "")
        self._failing = False
        slot.conn = conn
        slot.opened_at = self.clock.seconds()
        conn.on_idle = lambda _conn: self._dispatch()
        conn.closed.addCallback(lambda _: self._lost(slot, conn))
        for w in waiters:
            w.callback(conn)
        self._dispatch()

    def _not_opened(self, f: Failure, slot: _Slot) -> None:
        slot.opening = False
        waiters, slot.waiters = slot.waiters, []
        reason = getattr(f.value, "detail", f.getErrorMessage())
        self._last_error = reason
        if not self._stopped:
            self._report(False, reason)
            if f.check(LoginRefused) and self.lazy:
                self._refused = f.value
            if not self._failing:
                self._failing = True
                who = f" as {self.config.login!r}" if f.check(LoginRefused) and self.config.login else ""
                log.warn("upstream {server}: {reason}{who}; {plan}", server=self.server, reason=reason, who=who,
                         plan="giving up on this connection" if self.lazy else
                         "trying again after 1, 2, 5, 10, 30, then every 60 s")
            if not self.lazy:
                self._retry_later(slot)
            if not any(s.conn is not None or s.opening for s in self._slots):
                error = f.value
                self._fail_queue(lambda q: _not_sent(error, q.code, self.server))
        for w in waiters:
            w.errback(f.value)

    def _retry_later(self, slot: _Slot) -> None:
        delay = BACKOFF[min(slot.attempts, len(BACKOFF) - 1)]
        slot.attempts += 1
        slot.retry = self.clock.callLater(delay, self._open, slot)

    def _lost(self, slot: _Slot, conn: UpstreamConnection) -> None:
        if slot.conn is conn:
            slot.conn = None
        if self._stopped:
            return
        if self.lazy:
            if self._queue and not slot.opening and self._refused is None:
                self._open(slot, self._queue[0].deadline)
            return
        if self.clock.seconds() - slot.opened_at >= STABLE:
            slot.attempts = 0  # it served a while: a new failure streak starts
            log.info("upstream {server}: connection {n} closed; opening it again", server=self.server,
                     n=slot.index + 1)
        self._retry_later(slot)

    # -- requests -----------------------------------------------------------------------------------

    def _free(self) -> UpstreamConnection | None:
        for slot in self._slots:
            if slot.conn is not None and slot.conn.ready:
                return slot.conn
        return None

    def _send(self, conn: UpstreamConnection, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
              deadline: float | None) -> Deferred[Message]:
        return conn.request(code, fixed, fields, deadline).addCallbacks(self._replied, self._failed,
                                                                        errbackArgs=(conn,))

    def _replied(self, msg: Message) -> Message:
        self._report(True, "reply")
        return msg

    def _failed(self, f: Failure, conn: UpstreamConnection) -> Failure:
        if self._stopped:  # cut short by our own stop (a device hung up): not the server's failure
            return f
        if f.check(OutcomeUnknown, LoginRefused) or (f.check(Unavailable) and not conn.alive):
            self._report(False, getattr(f.value, "detail", f.getErrorMessage()))
        return f

    def _dispatch(self) -> None:
        while self._queue:
            conn = self._free()
            if conn is None:
                return
            queued = self._queue.popleft()
            if queued.timer is not None and queued.timer.active():
                queued.timer.cancel()
            if queued.deadline is not None and queued.deadline <= self.clock.seconds():
                queued.done.errback(DeadlinePassed(f"{queued.code} not sent: its deadline passed while it waited",
                                                   server=self.server, code=queued.code))
                continue
            self._send(conn, queued.code, queued.fixed, queued.fields, queued.deadline).chainDeferred(queued.done)

    def _waited_too_long(self, queued: _Queued) -> None:
        queued.timer = None
        try:
            self._queue.remove(queued)
        except ValueError:
            return
        if queued.deadline is not None and queued.deadline <= self.clock.seconds():
            why = "its deadline passed"
        else:  # every connection stayed busy for a whole request timeout: the server is stuck
            why = f"no connection was free within {self.config.timeout:g} s"
            self._report(False, why)
        queued.done.errback(DeadlinePassed(f"{queued.code} not sent: {why}", server=self.server, code=queued.code))

    def _fail_queue(self, error: Callable[[_Queued], Exception]) -> None:
        while self._queue:
            queued = self._queue.popleft()
            if queued.timer is not None and queued.timer.active():
                queued.timer.cancel()
            queued.done.errback(error(queued))

    def _report(self, ok: bool, reason: str) -> None:
        for observer in list(self.on_outcome):
            observer(ok, reason)


def _not_sent(error: BaseException, code: str, server: str) -> Exception:
    detail = getattr(error, "detail", str(error))
    if isinstance(error, LoginRefused):
        return LoginRefused(f"{code} not sent: {detail}", server=server, reply=error.reply)
    return Unavailable(f"{code} not sent: {detail}", server=server, code=code)


def _fail(error: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(error)
    return d
