"""The SIP2 session: one per connection, whatever the door.

States (``State``, states.py): a new session is AWAITING_LOGIN (only a 93 is served) or, when its
door names the account (a serial line's ``account=``, a TLS certificate), BINDING while
that account is looked up.  A login makes it READY; a request in progress makes it BUSY;
CLOSED ends it.  Input that arrives while BINDING or BUSY waits in one queue and is served
in arrival order, so replies leave in request order however the ACS schedules its answers.
An ACS answer is delivered only to the request in flight that asked for it: after a close
or a timeout there is none, so a late answer is dropped by construction.

Doors hand the session lines (``line_received``: replies are written with the terminator)
or parsed messages (``message_received``: the reply comes back as a Message); both go
through the same login, lockout, ordering, timeouts and replay.  What each request code
means is the request table's business (``sipgateway.exchange``); how a session logs in is
login.py's, how its replies leave replies.py's.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.acs import model as m
from sipgateway.audit import AUDIT_CODES, outcome
from sipgateway.exchange import EXCHANGES, BadRequest, Exchange, Reply, ReplyContext
from sipgateway.exchange.status import LOGIN
from sipgateway.gateway import Gateway
from sipgateway.login import LoginSteps
from sipgateway.logmask import excerpt, mask
from sipgateway.repeatlog import RepeatedLines
from sipgateway.replies import Received, ReplyWriter, request_bytes
from sipgateway.settings import ErrorDetection, ListenerSettings
from sipgateway.sip2 import ChecksumError, Message, SIP2Error, parse
from sipgateway.states import WAITING, State
from sipgateway.timers import ConnectionTimers

#: requests waiting behind one in progress (or a binding); a real SC sends one at a time
MAX_PENDING = 16

NOT_LOGGED_IN = "Please log in first (93)"
ACS_FAILED = "The library system could not complete this request; please try again or ask staff"
ACS_TIMEOUT = "The library system did not answer in time; please try again or ask staff"


class _Flight:
    """The request in progress: what it was, where its reply goes, and its timer."""

    __slots__ = ("received", "msg", "exchange", "reply_to", "timer", "started")

    def __init__(self, received: Received, msg: Message, exchange: Exchange, reply_to: Deferred | None,
                 started: float) -> None:
        self.received, self.msg, self.exchange, self.reply_to = received, msg, exchange, reply_to
        self.timer: Any = None
        self.started = started


class Session(LoginSteps):
    log = Logger()

    def __init__(self, gateway: Gateway, settings: ListenerSettings, write: Callable[[bytes], None],
                 lose_connection: Callable[[], None], peer: str, *, address: str | None = None) -> None:
        self.gateway = gateway
        self.settings = settings
        self.acs = gateway.acs
        self._lose_connection = lose_connection
        self.peer = peer
        #: the client's address alone: failed logins are counted per address across listeners
        self.address = address or peer
        self.state = State.AWAITING_LOGIN
        self.account: m.Account | None = None
        self.bound_account: m.Account | None = None
        self.terminal: m.Terminal | None = None
        #: how replies leave: the listener's character set, error detection and terminator
        #: until a login, then the account's where the listener sets none
        self.out = ReplyWriter(write, settings.encoding, settings.error_detection, settings.terminator)
        self._queue: deque[tuple[Received, Deferred | None]] = deque()
        self._flight: _Flight | None = None
        self._location = ""  # the CP of the 93 in flight
        #: the last line served and what it parsed into: (line, Message, Exchange, model request)
        self._recent: tuple[bytes, Message, Exchange, Any] | None = None
        self._ctx: ReplyContext | None = None  # the last reply context, and the (AO, language) it was for
        self._ctx_for: tuple[str | None, str] = (None, "")
        self._clock = gateway.reactor
        #: log lines the client can cause again and again, rate-limited (the doors' too)
        self.repeated = RepeatedLines(self._clock)
        #: the backend answers by each call's deadline: no timer here (IACS.answers_by_deadline)
        self._backend_deadline = bool(getattr(self.acs, "answers_by_deadline", False))
        #: what the session has served: requests, the last one's code and when (for /sessions)
        self.served, self.last_code, self.last_at = 0, "", 0.0
        #: when it logged in (the reactor's clock), None before
        self.since: float | None = None
        gateway.sessions.add(self)
        self.timers = ConnectionTimers(self._clock, settings.idle_timeout, settings.login_timeout,
                                       self._idle_timed_out, self._login_timed_out)
        self.set_deadline(None)  # the listener's deadline until a login (login.py)

    # --- input ------------------------------------------------------------------------------

    def line_received(self, line: bytes) -> None:
        """A line door's request; its reply is written with the terminator."""
        self._receive(line, None)

    def message_received(self, msg: Message) -> Deferred:
        """A message door's request (already parsed); fires with the reply as a Message."""
        reply_to: Deferred = Deferred()
        self._receive(msg, reply_to)
        return reply_to

    def _receive(self, received: Received, reply_to: Deferred | None) -> None:
        if self.state is State.CLOSED:
            if reply_to is not None:
                reply_to.errback(ConnectionError("the session is closed"))
            return
        self.timers.touch()
        if self.state in WAITING:
            if len(self._queue) >= MAX_PENDING:
                self.log.warn("{peer}: more than {n} requests queued without waiting for replies; closing",
                              peer=self.who, n=MAX_PENDING)
                self.close()
                if reply_to is not None:
                    reply_to.errback(ConnectionError("too many requests queued"))
                return
            self._queue.append((received, reply_to))
            return
        self._serve(received, reply_to)

    def connection_lost(self) -> None:
        self.gateway.sessions.discard(self)
        self.state = State.CLOSED
        self._flight = None  # a late ACS answer finds no request to answer
        queued, self._queue = self._queue, deque()
        for _, reply_to in queued:
            if reply_to is not None:
                reply_to.errback(ConnectionError("the session is closed"))
        self.repeated.close()
        self.timers.stop()
        self._connection_ended()

    def close(self) -> None:
        if self.state is not State.CLOSED:
            self.connection_lost()
            self._lose_connection()

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    @property
    def who(self) -> str:
        return f"{self.peer} ({self.account.name})" if self.account else self.peer

    # --- timers (ConnectionTimers calls these) ----------------------------------------------

    def _idle_timed_out(self) -> None:
        self.log.info("{peer}: idle for {s:.0f} s; closing", peer=self.who, s=self.timers.idle_timeout)
        self.close()

    def _login_timed_out(self) -> None:
        if self.account is None:
            self.log.info("{peer}: not logged in after {s:.0f} s; closing", peer=self.who,
                          s=self.settings.login_timeout)
            self.close()

    # --- one request ------------------------------------------------------------------------

    def _serve(self, received: Received, reply_to: Deferred | None) -> None:
        if type(received) is bytes:
            received = received.strip(b" \t\0")
            if not received:
                return
            resend = received[:2] == b"97"
        else:
            resend = received.code == "97"
        if resend:
            if not self.out.resend(received, reply_to):
                self.repeated.log(self.log.info, "97 before any reply", self.who,
                                  "97 before any reply was sent; answered 96")
            self._served("97", "replayed")
            return
        history = self.out.history
        if history.replayable is not None and received == history.replayable:
            code = request_bytes(received)[:2].decode("ascii", "replace")
            self.repeated.log(self.log.info, "repeated request", self.who,
                              "repeated {code} request answered from the last reply, not run again", code=code)
            self.out.deliver(history.last_reply, reply_to)
            self._served(code, "replayed")
            return
        recent = self._recent
        if recent is not None and received == recent[0]:
            # the same line again (a device polls): parsing it again would give the same
            _, msg, exchange, request = recent
            if self.gateway.trace:
                self.log.debug("{peer} -> {line}", peer=self.who, line=mask(received))
        else:
            msg = self._parse(received)
            if isinstance(msg, str):
                self._bad(received, reply_to, msg)
                return
            exchange = EXCHANGES[msg.code]
            if self.gateway.trace:
                self.log.debug("{peer} -> {line}", peer=self.who, line=mask(request_bytes(received)))
            if self.account is None and exchange is not LOGIN:
                self.repeated.log(self.log.warn, "request before login", self.who,
                                  "{code} before a successful login (93); refused", code=msg.code)
                self._send(received, reply_to, exchange, msg,
                           exchange.failure(msg, self._context(msg), NOT_LOGGED_IN))
                self._served(msg.code, "refused")
                return
            try:
                request = exchange.parse(msg)
            except BadRequest as e:
                self._send(received, reply_to, exchange, msg, exchange.failure(msg, self._context(msg), e.screen))
                self._served(msg.code, "refused")
                return
            if type(received) is bytes:
                # its parse depends only on the bytes, the character set and the error detection
                # policy, which change only at a login, where this is forgotten
                self._recent = (received, msg, exchange, request)
        flight = self._flight = _Flight(received, msg, exchange, reply_to, self._clock.seconds())
        self.state = State.BUSY
        try:
            if exchange is LOGIN:
                d = self._login(request)
            else:
                terminal = self.terminal
                if self._backend_deadline:
                    # the terminal of the request in progress carries its deadline to the backend;
                    # a copy per request costs, so one serves while its deadline is no earlier
                    deadline = self._clock.seconds() + self.answer_within  # (login.py, deadlines.py)
                    if terminal.deadline is None or terminal.deadline < deadline:
                        terminal = self.terminal = terminal.until(deadline + self.deadline_slack)
                d = getattr(self.acs, exchange.method)(terminal, request)
        except Exception:  # a bug: answer, log once, keep serving
            self._failed(Failure(), flight)
            return
        if d.called and not isinstance(d.result, Deferred):
            result = d.result  # a fast local backend answered at once: no timer, no callback chain
            if isinstance(result, Failure):
                d.addErrback(lambda _: None)  # answered and logged below
                self._failed(result, flight)
            else:
                self._answered(result, flight)
            return
        if not self._backend_deadline:
            flight.timer = self._clock.callLater(self.answer_within, self._timed_out, flight)
        d.addCallbacks(self._answered, self._failed, callbackArgs=(flight,), errbackArgs=(flight,))

    def _parse(self, received: Received) -> Message | str:
        """The request as a Message the session can serve, or why it cannot (it gets 96)."""
        if isinstance(received, Message):
            msg = received
        else:
            try:
                msg = parse(received, self.out.encoding)
            except SIP2Error as e:
                return f"bad checksum: {e}" if isinstance(e, ChecksumError) else str(e)
        sequence = msg.fields.get("AY")
        if sequence is not None and not (isinstance(sequence, str) and sequence.isdigit() and sequence.isascii()):
            return f"sequence number AY{sequence!r} is not a number"  # AY10 is fine
        if self.out.error_detection is ErrorDetection.REQUIRED and "AZ" not in msg.fields and sequence is None:
            return "checksum required on this account/listener but the request has no AY/AZ"
        if msg.code not in EXCHANGES:
            return f"message code {msg.code!r} is not a request this gateway serves"
        return msg

    def _land(self, flight: _Flight) -> bool:
        """Whether ``flight`` is still the request in progress; it stops being it here."""
        if flight is not self._flight:
            return False  # answered already (timed out), or the session closed
        self._flight = None
        if flight.timer is not None and flight.timer.active():
            flight.timer.cancel()
        return True

    def _answered(self, result: object, flight: _Flight) -> None:
        if flight is not self._flight:
            return  # answered already (timed out), or the session closed
        self._flight = None  # _land, inlined: this is every reply's path
        if flight.timer is not None and flight.timer.active():
            flight.timer.cancel()
        msg, exchange = flight.msg, flight.exchange
        if exchange is LOGIN:
            result = self._login_answered(result)
        ctx = self._context(msg)
        if exchange.memo:  # keyed on what the reply's bytes depend on but AY: the builder's arguments, ED
            key = (exchange.code, id(result), ctx, self.out.wants_ed(msg))
            data = self.out.sequenced(msg, self.gateway.memo.get(key, result) or self.gateway.memo.put(
                key, result, self._format(self.out.unsequenced(msg), self._build(exchange, result, ctx, msg))))
            if self.gateway.trace:
                self.log.debug("{peer} <- {line}", peer=self.who, line=mask(data))
            self.out.send(data, flight.received, flight.reply_to, False)
            self._served(msg.code, "ok", flight.started)
        else:
            reply = self._build(exchange, result, ctx, msg)
            self._send(flight.received, flight.reply_to, exchange, msg, reply)
            self._served(msg.code, outcome(reply) if exchange.side_effect or exchange is LOGIN else "ok",
                         flight.started)
        self._next()

    def _build(self, exchange: Exchange, result: object, ctx: ReplyContext, msg: Message) -> Reply:
        try:
            return exchange.build(result, ctx)
        except Exception:
            self.log.failure("{peer}: could not build the {code} reply; failure reply sent instead",
                             peer=self.who, code=exchange.reply)
            return exchange.failure(msg, ctx, ACS_FAILED)

    def _failed(self, failure: Failure, flight: _Flight) -> None:
        if not self._land(flight):
            return
        if failure.check(m.ACSTimeout):  # the backend's deadline passed: nothing was applied
            self.log.error("{peer}: ACS did not answer {code} in time; failure reply sent (nothing applied)",
                           peer=self.who, code=flight.msg.code)
            screen = ACS_TIMEOUT
        else:
            self.log.failure("{peer}: ACS failed on {code} request", failure, peer=self.who, code=flight.msg.code)
            screen = ACS_FAILED
        self._refuse(flight, screen)

    def _timed_out(self, flight: _Flight) -> None:
        flight.timer = None
        if not self._land(flight):
            return
        self.log.error("{peer}: ACS did not answer {code} within {s:g} s; failure reply sent",
                       peer=self.who, code=flight.msg.code, s=round(self.answer_within, 3))
        self._refuse(flight, ACS_TIMEOUT)

    def _refuse(self, flight: _Flight, screen: str) -> None:
        msg, exchange = flight.msg, flight.exchange
        self._send(flight.received, flight.reply_to, exchange, msg, exchange.failure(msg, self._context(msg), screen),
                   audit_failed=True)
        self._served(msg.code, "failed", flight.started)
        self._next()

    def _served(self, code: str, outcome: str, started: float | None = None) -> None:
        now = self._clock.seconds()
        self.served += 1
        self.last_code, self.last_at = code, now
        for observer in self.gateway.observers:
            observer.served(self, code, outcome, 0.0 if started is None else now - started)

    def _next(self) -> None:
        if self.state is State.BUSY:
            self.state = State.READY if self.account is not None else State.AWAITING_LOGIN
        if self._queue:
            self._drain()

    def _drain(self) -> None:
        while self._queue and self.state not in WAITING and self.state is not State.CLOSED:
            received, reply_to = self._queue.popleft()
            self._serve(received, reply_to)

    # --- replies ----------------------------------------------------------------------------

    def _context(self, msg: Message) -> ReplyContext:
        # one context serves every reply of the same second, AO and language (a device polls):
        # built once, it is also hashed once as part of the reply memo's keys
        now, ao, language = self.gateway.now(), msg.get("AO"), msg.fixed.get("language", "000")
        ctx = self._ctx
        if ctx is None or ctx.now is not now or self._ctx_for != (ao, language):
            ctx = self._ctx = ReplyContext.answering(msg, self.account, self.terminal, now, self.out.encoding,
                                                     self.gateway.licences)
            self._ctx_for = (ao, language)
        return ctx

    def _format(self, msg: Message, reply: Reply) -> bytes:
        try:
            return self.out.format(msg, reply)
        except SIP2Error:
            self.log.failure("{peer}: could not format the {code} reply; failure reply sent instead",
                             peer=self.who, code=reply[0])
        return self.out.format_or_96(msg, EXCHANGES[msg.code].failure(msg, self._context(msg), ACS_FAILED))

    def _send(self, received: Received, reply_to: Deferred | None, exchange: Exchange, msg: Message, reply: Reply,
              *, audit_failed: bool = False) -> None:
        data = self._format(msg, reply)
        if self.gateway.trace:
            self.log.debug("{peer} <- {line}", peer=self.who, line=mask(data))
        self.out.send(data, received, reply_to, exchange.side_effect)
        if msg.code in AUDIT_CODES and self.terminal is not None:
            self.gateway.audit.transaction(self.who, self.terminal, msg, None if audit_failed else reply, self)

    def _bad(self, received: Received, reply_to: Deferred | None, reason: str) -> None:
        """Answer 96: nothing is executed; the SC is expected to resend."""
        self.repeated.log(self.log.warn, "unusable request", self.who, "unusable request ({reason}): {line}",
                          reason=reason, line=excerpt(request_bytes(received)))
        give_up = self.out.bad(received, reply_to)
        self._served(request_bytes(received)[:2].decode("ascii", "replace"), "bad")
        if give_up:
            self.log.warn("{peer}: the same unusable request {n} times in a row; closing", peer=self.who,
                          n=self.out.history.bad_count)
            self.close()
