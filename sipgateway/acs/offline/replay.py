"""Replaying the offline journal to the library system once it is back.

One entry at a time, in the order of acceptance, with what SIP2 provides for transactions
done offline: no-block ``Y`` (the SC already told the patron yes), the original transaction
date (and, for a checkin, the return date), and for a checkout the due date the device was
given, in ``nb_due_date`` (SIP2 11, fixed fields).  Each entry is marked ``sent`` (committed)
before it is written to the library system and ``done`` or ``conflict`` with the library
system's answer after.

Exactly once: an entry found ``sent`` (the gateway died between sending and storing the
answer, or the answer never came) is not sent again blindly.  The library system is asked
first: for a checkout, the patron's charged items (63 with the charged list); for a checkin,
the item (17).  Found applied: ``done``.  Found not applied: back to ``pending`` and sent
again.  Cannot tell (the charged list is cut short by the library system): ``conflict``
with a note, for staff to check, never sent twice.

Sharing the library system with devices: replay holds one request at a time (one pooled
connection at most) and waits ``pause`` seconds between entries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.offline.journal import CHECKOUT, CONFLICT, DONE, SENT, Entry
from sipgateway.acs.upstream.backend import UpstreamUnavailable
from sipgateway.acs.upstream.errors import NotSent, OutcomeUnknown
from sipgateway.acs.upstream.wire import show
from sipgateway.exchange import EXCHANGES, Exchange, RequestContext
from sipgateway.sip2 import Message

log = Logger()

Send = Callable[[str, Mapping[str, str], Mapping[str, object], "float | None"], Deferred]

#: seconds between two replayed entries (devices come first)
DEFAULT_PAUSE = 0.1
#: seconds before trying again after the library system could not be reached or asked
DEFAULT_RETRY = 30.0
#: seconds a replayed request may take
REQUEST_SECONDS = 30.0
#: the charged list asked for when resolving a checkout (SIP2 63 BP/BQ)
CHARGED_LIST_END = 9999
_STILL_OUT = (m.CirculationStatus.CHARGED, m.CirculationStatus.CHARGED_NOT_RECALLABLE, m.CirculationStatus.RECALLED)


def when(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(int(seconds))


def replay_request(entry: Entry) -> tuple[Exchange, Any]:
    """The SIP2 request that replays ``entry``: no-block, dated when it was accepted."""
    at = when(entry.accepted_at)
    if entry.kind == CHECKOUT:
        return EXCHANGES["11"], rq.CheckoutRequest(patron_id=entry.patron_id, item_id=entry.item_id, no_block=True,
                                                   nb_due_date=when(entry.due_at), transaction_date=at)
    return EXCHANGES["09"], rq.CheckinRequest(item_id=entry.item_id, return_date=at, no_block=True,
                                              current_location=entry.location, transaction_date=at)


def describe(msg: Message) -> str:
    """The library system's answer as stored with an entry: the message as it came, without
    AY/AZ, CO, AD and AC masked, non-printable characters escaped (``wire.show``)."""
    parts = [msg.code, *msg.fixed.values()]
    for tag, value in msg.fields.items():
        if tag not in ("AY", "AZ"):
            parts += [f"{tag}{v}|" for v in (value if isinstance(value, list) else [value])]
    return show("".join(parts).encode("utf-8", "replace"))


class Replayer:
    """Replays while ``healthy()``; ``kick()`` when the library system may be back."""

    def __init__(self, journal: Any, send: Send, clock: Any, healthy: Callable[[], bool], *,
                 institution: str = "", location: str = "", pause: float = DEFAULT_PAUSE,
                 retry: float = DEFAULT_RETRY, on_closed: Callable[[Entry], None] = lambda entry: None) -> None:
        self.journal = journal
        self.send = send
        self.clock = clock
        self.healthy = healthy
        self.institution, self.location = institution, location
        self.pause, self.retry = pause, retry
        self.on_closed = on_closed
        self.running = False
        self._busy = False
        self._timer: IDelayedCall | None = None

    def start(self) -> None:
        self.running = True
        self.kick()

    def stop(self) -> None:
        self.running = False
        self._cancel()

    def kick(self) -> None:
        """Replay the next entry now, unless one is in progress or the library system is down."""
        if not self.running or self._busy:
            return
        self._cancel()
        if not self.healthy():
            self._later(self.retry)
            return
        self._busy = True
        d = self.journal.next_open()
        d.addCallback(self._step)
        d.addErrback(self._broken)

    # --- one entry ----------------------------------------------------------------------

    def _step(self, entry: Entry | None) -> Deferred | None:
        if entry is None:
            self._busy = False
            return None
        if entry.state == SENT:
            return self._resolve(entry)
        d = self.journal.mark_sent(entry.id, self.clock.seconds())
        d.addCallback(lambda _: self._send(entry))
        return d

    def _send(self, entry: Entry) -> Deferred:
        exchange, request = replay_request(entry)
        d = self._ask(exchange, entry, request)
        d.addCallbacks(self._answered, self._unanswered, callbackArgs=(entry, exchange),
                       errbackArgs=(entry, "not sent"))
        return d

    def _ask(self, exchange: Exchange, entry: Entry, request: Any) -> Deferred:
        ctx = RequestContext(institution=self.institution or entry.institution, now=when(self.clock.seconds()),
                             location=self.location or entry.location)
        code, fixed, fields = exchange.request_message(request, ctx)
        return self.send(code, fixed, fields, self.clock.seconds() + REQUEST_SECONDS)

    def _answered(self, msg: Message, entry: Entry, exchange: Exchange) -> Deferred:
        result = exchange.read(msg)
        state = DONE if result.ok else CONFLICT
        return self._finish(entry, state, describe(msg), "")

    def _finish(self, entry: Entry, state: str, reply: str, note: str) -> Deferred:
        if state == CONFLICT:
            log.warn("offline: entry {id} ({kind} of item {item} accepted offline) is a conflict: the library "
                     "system answered {reply}{note}; kept for 'sipgateway offline report'", id=entry.id,
                     kind=entry.kind, item=entry.item_id, reply=reply, note=f" ({note})" if note else "")
        d = self.journal.finish(entry.id, state, self.clock.seconds(), reply, note)
        d.addCallback(lambda _: self._closed(entry))
        return d

    def _closed(self, entry: Entry) -> None:
        self.on_closed(entry)
        self._busy = False
        self._later(self.pause)

    def _unanswered(self, f: Failure, entry: Entry, doing: str) -> Deferred | None:
        if f.check(NotSent, UpstreamUnavailable):  # never left the gateway: it is still only ours
            log.info("offline: entry {id} {doing} ({why}); trying again later", id=entry.id, doing=doing,
                     why=f.getErrorMessage())
            d = self.journal.mark_pending(entry.id, self.clock.seconds(), f"not sent: {f.getErrorMessage()}")
            d.addCallback(lambda _: self._wait())
            return d
        if f.check(OutcomeUnknown):  # stays sent: asked about before it is sent again
            log.warn("offline: entry {id} sent, no answer ({why}); the library system will be asked about it",
                     id=entry.id, why=f.getErrorMessage())
        else:
            log.failure("offline: replay of entry {id} failed", f, id=entry.id)
        self._wait()
        return None

    def _wait(self) -> None:
        self._busy = False
        self._later(self.retry)

    # --- an entry whose fate is unknown -------------------------------------------------

    def _resolve(self, entry: Entry) -> Deferred:
        if entry.kind == CHECKOUT:
            request: Any = rq.PatronInformationRequest(patron_id=entry.patron_id, item_list=m.ItemList.CHARGED,
                                                       start=1, end=CHARGED_LIST_END)
            exchange = EXCHANGES["63"]
        else:
            request, exchange = rq.ItemInformationRequest(item_id=entry.item_id), EXCHANGES["17"]
        d = self._ask(exchange, entry, request)
        d.addCallbacks(self._resolved, self._unresolved, callbackArgs=(entry, exchange), errbackArgs=(entry,))
        return d

    def _resolved(self, msg: Message, entry: Entry, exchange: Exchange) -> Deferred:
        answer = exchange.read(msg)
        seen = describe(msg)
        if entry.kind == CHECKOUT:
            if entry.item_id in answer.items:
                return self._finish(entry, DONE, seen, "found on loan to the patron after an unknown outcome")
            if len(answer.items) < answer.charged_count:
                return self._finish(entry, CONFLICT, seen, "unknown outcome and the charged list is incomplete: "
                                    "check by hand whether the checkout was applied")
            applied = False
        else:
            applied = answer.circulation_status not in _STILL_OUT
            if applied:
                return self._finish(entry, DONE, seen, "found checked in after an unknown outcome")
        log.info("offline: entry {id} was not applied by the library system; sending it again", id=entry.id)
        d = self.journal.mark_pending(entry.id, self.clock.seconds(), "not applied after an unknown outcome")
        d.addCallback(lambda _: self._again())
        return d

    def _again(self) -> None:
        self._busy = False
        self.kick()

    def _unresolved(self, f: Failure, entry: Entry) -> None:
        log.warn("offline: cannot ask the library system about entry {id} ({why}); trying again later", id=entry.id,
                 why=f.getErrorMessage())
        self._wait()

    # --- timing -------------------------------------------------------------------------

    def _broken(self, f: Failure) -> None:
        log.failure("offline: the journal could not be read or written; replay tries again later", f)
        self._wait()

    def _later(self, seconds: float) -> None:
        if self.running and self._timer is None:
            self._timer = self.clock.callLater(seconds, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.kick()

    def _cancel(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
