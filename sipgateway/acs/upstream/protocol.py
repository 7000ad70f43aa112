"""The client side of ONE connection to a library system's SIP2 server.

SIP2 has no request ids: a reply belongs to the request before it. So one request is in
flight at a time, and anything that breaks the pairing puts the connection out of step,
after which it is closed rather than trusted:

* a line that does not parse, or a reply whose code is not the one due (or whose AY is not
  the one sent): the request fails with ``BadReply`` and the connection is closed. Under a
  profile whose server writes a plain error line where the reply was due (FOLIO), that
  line counts as the reply and the connection stays open;
* no reply in time: the request fails with ``ReplyTimeout``. The connection then only
  waits (``drain`` seconds) for the late reply, which is logged, handed to the error's
  ``late_reply`` (so that a write's real outcome can still be learned) and dropped; then
  the connection is closed either way. Reusing it earlier would pair the late reply with
  the next request, which may even have the same reply code (two checkins);
* a line when nothing was asked: logged, and the connection is closed.

A reply with a checksum that does not match is asked for again once with a 97; a 96 (the
server could not read our request, so it did nothing) makes us send the request once more,
but never after a 97 (then the request may have been applied).

``send`` takes an optional ``deadline`` (clock seconds): a request whose deadline has
passed is not sent (``DeadlinePassed``); one that is sent waits at most until the deadline
or the per-request timeout, whichever comes first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IReactorTime
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipgateway.acs.upstream.errors import (
    BadReply,
    ConnectionLost,
    DeadlinePassed,
    NotEncodable,
    ReplyTimeout,
    Unavailable,
)
from sipgateway.acs.upstream.wire import (
    MAX_REPLY,
    Shown,
    WireSettings,
    decode_reply,
    decoded_replies,
    encoded_requests,
    resend_request,
    show,
)
from sipgateway.sip2 import MESSAGES, ChecksumError, Message, SIP2Error
from sipgateway.transports.directwrite import direct_write, no_delay
from sipgateway.transports.framing import LineSplitter

log = Logger()

#: the longest wait for a late reply after a timeout, before the connection is closed
MAX_DRAIN = 60.0


@dataclass(eq=False)
class _Pending:
    code: str
    expect: str
    data: bytes
    sequence: str | None
    done: Deferred
    timer: IDelayedCall | None = None
    asked_again: bool = False   # a 97 was sent for this reply
    sent_again: bool = False    # the request was resent after a 96
    late: Deferred | None = None  # after a timeout: fires with the late reply or None


@implementer(IHandshakeListener)
class UpstreamProtocol(Protocol):
    """One upstream connection. ``server`` ("host:port") names it in logs and errors."""

    def __init__(self, settings: WireSettings, clock: IReactorTime, server: str, timeout: float) -> None:
        self.settings = settings
        self.clock = clock
        self.server = server
        self.timeout = timeout
        self.drain = min(max(timeout, 5.0), MAX_DRAIN)
        self.closed: Deferred[None] = Deferred()
        #: fires when the TLS handshake is complete (never, on a plain connection)
        self.handshake: Deferred[None] = Deferred()
        self.lost_reason: Failure | None = None
        self._splitter = LineSplitter(MAX_REPLY)
        self._replies = decoded_replies(settings)
        self._encoded = encoded_requests(settings)
        self._pending: _Pending | None = None
        self._draining: _Pending | None = None
        self._closing = False
        self._connected = False
        self._sequence = 0

    # -- state ------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Connected, in step and not closing (it may be busy)."""
        return self._connected and not self._closing and self._draining is None

    @property
    def idle(self) -> bool:
        """Usable and with no request in flight: ``send`` may be called."""
        return self.usable and self._pending is None

    def close(self) -> None:
        """Close the connection; a request in flight fails with ``ConnectionLost``."""
        self._closing = True
        if self.transport is not None and self._connected:
            self.transport.loseConnection()

    # -- sending ----------------------------------------------------------------------------

    def send(self, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
             deadline: float | None = None) -> Deferred[Message]:
        """Send one request; the Deferred fires with its reply (normalised per profile)."""
        now = self.clock.seconds()
        if deadline is not None and deadline <= now:
            return _failed(DeadlinePassed(f"{code} not sent: its deadline passed", server=self.server, code=code))
        if not self.idle:
            why = "busy with another request" if self.usable else "connection closed or out of step"
            return _failed(Unavailable(f"{code} not sent: {why}", server=self.server, code=code))
        spec = MESSAGES.get(code)
        if spec is None or spec.direction != "request" or spec.reply is None:
            return _failed(NotEncodable(f"{code!r} is not a request SIP2 answers", server=self.server, code=code))
        sequence = None
        if self.settings.error_detection:
            sequence = str(self._sequence)
            self._sequence = (self._sequence + 1) % 10
        try:
            data = self._encoded.request(code, fixed, fields, sequence)  # remembered (wire.EncodedRequests)
        except SIP2Error as e:  # a request the model built but SIP2 cannot carry (secrets never in e)
            return _failed(NotEncodable(f"{code} not sent: {e}", server=self.server, code=code))
        pending = _Pending(code=code, expect=spec.reply, data=data, sequence=sequence, done=Deferred())
        delay = self.timeout if deadline is None else min(self.timeout, deadline - now)
        pending.timer = self.clock.callLater(delay, self._timed_out, pending)
        self._pending = pending
        if self.settings.trace:
            log.debug("upstream {server} <- {line}", server=self.server, line=Shown(data))
        self._write(data)
        return pending.done

    # -- receiving --------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        lines = self._splitter.feed(data)
        if lines is None:
            self._out_of_step(f"a reply longer than {MAX_REPLY} bytes", data[:SHOW_BYTES])
            return
        for line in lines:
            if self._closing:
                return
            self._line(line)

    def _line(self, line: bytes) -> None:
        pending = self._pending
        if pending is None:
            if self._draining is not None:
                self._late(self._draining, line)
            else:
                log.warn("upstream {server}: a line came when no reply was due; closing the connection: {line}",
                         server=self.server, line=show(line))
                self.close()
            return
        if self.settings.trace:
            log.debug("upstream {server} -> {line}", server=self.server, line=Shown(line))
        try:
            msg, sequence = self._replies.decode(line)
        except ChecksumError:
            if not pending.asked_again:
                pending.asked_again = True
                log.info("upstream {server}: checksum of the reply to {code} does not match; asking again (97)",
                         server=self.server, code=pending.code)
                self.transport.write(resend_request(self.settings))
                return
            self._bad(pending, line, "the reply's checksum does not match, twice", in_step=False)
            return
        except SIP2Error as e:
            self._bad(pending, line, f"not a SIP2 reply ({e.reason})",
                      in_step=self.settings.profile.error_line_in_step)
            return
        if msg.code == "96" and not pending.sent_again and not pending.asked_again:
            # the server could not read the request, so it did not act on it: sending it again
            # is safe. (A 96 answering our 97 is not that: the request may have been applied.)
            pending.sent_again = True
            log.info("upstream {server} could not read our {code} (96); sending it again",
                     server=self.server, code=pending.code)
            self.transport.write(pending.data)
            return
        if msg.code != pending.expect:
            self._bad(pending, line, f"a {msg.code} came where a {pending.expect} was due", in_step=False)
            return
        if pending.sequence is not None and sequence is not None and sequence != pending.sequence:
            self._bad(pending, line, f"reply has sequence number {sequence}, request had {pending.sequence}",
                      in_step=False)
            return
        self._finish(pending)
        pending.done.callback(msg)

    def _bad(self, pending: _Pending, line: bytes, why: str, *, in_step: bool) -> None:
        shown = show(line)
        error = BadReply(f"{why} in answer to {pending.code}: {shown}", server=self.server, code=pending.code,
                         line=shown)
        if in_step:
            log.warn("upstream {server}: {error}", server=self.server, error=why + ": " + shown)
            self._finish(pending)
        else:
            log.warn("upstream {server}: {error}; closing the connection (out of step)", server=self.server,
                     error=why + ": " + shown)
            self._finish(pending)
            self.close()
        pending.done.errback(error)

    def _finish(self, pending: _Pending) -> None:
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        self._pending = None

    def _timed_out(self, pending: _Pending) -> None:
        pending.timer = None
        self._pending = None
        pending.late = Deferred()
        self._draining = pending
        pending.timer = self.clock.callLater(self.drain, self._drained, pending)
        log.warn("upstream {server}: no reply to {code} in time; waiting {drain:g} s for it, then closing",
                 server=self.server, code=pending.code, drain=self.drain)
        pending.done.errback(ReplyTimeout(f"no reply to {pending.code} in time", server=self.server,
                                          code=pending.code, late_reply=pending.late))

    def _late(self, pending: _Pending, line: bytes) -> None:
        try:
            msg: Message | None = decode_reply(line, self.settings)
        except SIP2Error:
            msg = None
        if msg is not None and msg.code != pending.expect:
            msg = None
        log.warn("upstream {server}: late reply to {code} dropped: {line}", server=self.server, code=pending.code,
                 line=show(line))
        self._end_drain(pending, msg)
        self.close()

    def _drained(self, pending: _Pending) -> None:
        pending.timer = None
        log.warn("upstream {server}: still no reply to {code}; closing the connection", server=self.server,
                 code=pending.code)
        self._end_drain(pending, None)
        self.close()

    def _end_drain(self, pending: _Pending, msg: Message | None) -> None:
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        late, pending.late = pending.late, None
        if late is not None:
            late.callback(msg)

    def _out_of_step(self, why: str, excerpt: bytes) -> None:
        log.warn("upstream {server}: {why}; closing the connection: {line}", server=self.server, why=why,
                 line=show(excerpt))
        pending = self._pending
        if pending is not None:
            self._finish(pending)
            self.close()
            pending.done.errback(BadReply(f"{why} in answer to {pending.code}", server=self.server,
                                          code=pending.code, line=show(excerpt)))
        else:
            self.close()

    # -- connection events ------------------------------------------------------------------

    def connectionMade(self) -> None:
        self._connected = True
        self._write = direct_write(self.transport)  # a request goes out at once (directwrite.py)
        no_delay(self.transport)  # a request is never held behind a delayed ACK (directwrite.py)

    def handshakeCompleted(self) -> None:
        if not self.handshake.called:
            self.handshake.callback(None)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._connected = False
        self._closing = True
        self.lost_reason = reason
        pending, self._pending = self._pending, None
        if pending is not None:
            self._finish(pending)
            why = tls_failure(reason) or "the connection closed"
            pending.done.errback(ConnectionLost(f"{why} while waiting for the reply to {pending.code}",
                                                server=self.server, code=pending.code))
        draining, self._draining = self._draining, None
        if draining is not None:
            self._end_drain(draining, None)
        if not self.closed.called:
            self.closed.callback(None)


#: how much of an over-long line is shown
SHOW_BYTES = 200


def tls_failure(reason: Failure | None) -> str | None:
    """"TLS failed: <why>" when ``reason`` is a TLS error (OpenSSL's, or service-identity's
    host name check), else None."""
    if reason is None:
        return None
    if reason.check(VerificationError) is not None:
        return f"TLS failed: the server's certificate does not name this host ({reason.value})"
    if reason.check(SSL.Error) is None:
        return None
    args = reason.value.args
    if args and isinstance(args[0], list) and args[0]:
        return "TLS failed: " + "; ".join(str(part[-1]) for part in args[0])
    return f"TLS failed: {reason.value}"


def _failed(error: Exception) -> Deferred:
    d: Deferred = Deferred()
    d.errback(error)
    return d
