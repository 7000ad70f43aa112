"""What a device is told while the library system is offline: the 98, the answers to a
checkout or checkin accepted offline, saved answers to 17, 63 and 23, and refusals.

Every text here is a screen message (AF) a patron or staff may read.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from datetime import datetime
from typing import Any

from twisted.internet.interfaces import IReactorTime

from sipgateway.acs import model as m
from sipgateway.config.offline import OfflinePolicy
from sipgateway.exchange import Exchange, RequestContext
from sipgateway.sip2 import Message

OFFLINE = "The library system is offline"
OFFLINE_ACCEPTING = "The library system is offline: checkouts and returns are recorded and sent later"
ACCEPTED_CHECKOUT = "Offline: checked out; it will be sent to the library system later"
ACCEPTED_CHECKIN = "Offline: returned; it will be sent to the library system later"
NOT_OFFLINE = "The library system is offline: this cannot be done now; please try again later or ask staff"
NO_RENEWAL = "The library system is offline: renewals cannot be done now; please try again later"
NOT_THIS_ITEM = "The library system is offline: this item cannot be checked out or returned now; please ask staff"
NOT_THIS_PATRON = "The library system is offline: this card cannot be used now; please ask staff"
WAITING = "Offline transactions for this item are still being sent; please try again in a moment"
NO_SAVED_ANSWER = "The library system is offline: no information available now"
SAVED_NOTE = "(saved answer from {at}: the library system is offline)"

#: answers to 17, 63 and 23 kept for while the library system is offline
SAVED_ANSWERS = 10_000
#: seconds such an answer may serve, at most
SAVED_ANSWER_AGE = 86400.0


def offline_status(policy: OfflinePolicy, institution: str, supported: frozenset[str]) -> m.ACSStatus:
    """98 while every library system is down: on-line N; checkin, checkout and offline Y
    when the account's policy accepts transactions offline."""
    return m.ACSStatus(online=False, checkin_ok=policy.accept, checkout_ok=policy.accept, renewal_ok=False,
                       status_update_ok=False, offline_ok=policy.accept, timeout_period=0, institution=institution,
                       supported=supported,
                       messages=m.Messages(screen=(OFFLINE_ACCEPTING if policy.accept else OFFLINE,)))


def checked_out(request: Any, due: datetime) -> m.CirculationResult:
    return m.CirculationResult(ok=True, patron_id=request.patron_id, item_id=request.item_id, due_date=due,
                               desensitize=True, messages=m.Messages(screen=(ACCEPTED_CHECKOUT,)))


def checked_in(request: Any) -> m.CheckinResult:
    return m.CheckinResult(ok=True, item_id=request.item_id, resensitize=True,
                           messages=m.Messages(screen=(ACCEPTED_CHECKIN,)))


def refusal(exchange: Exchange, request: Any, institution: str, now: datetime, screen: str) -> Any:
    """The request's own "not done" answer (as its failure reply) with ``screen``."""
    code, fixed, fields = exchange.request_message(request, RequestContext(institution=institution, now=now))
    msg = Message(code, dict(fixed), {tag: value for tag, value in fields.items()  # type: ignore[misc]
                                      if value is not None})
    return exchange.refused(msg, screen)


def saved_key(code: str, institution: str, request: Any) -> tuple:
    if code == "17":
        return (code, institution, request.item_id)
    if code == "63":
        return (code, institution, request.patron_id, request.item_list, request.start, request.end)
    return (code, institution, request.patron_id)


class SavedAnswers:
    """Recent answers to 17, 63 and 23, bounded in number and age.  An answer kept says
    nothing about a PIN (CQ): offline, no PIN can be checked."""

    def __init__(self, clock: IReactorTime, size: int = SAVED_ANSWERS, age: float = SAVED_ANSWER_AGE) -> None:
        self.clock, self.size, self.age = clock, size, age
        self._entries: OrderedDict[tuple, tuple[float, Any]] = OrderedDict()

    def put(self, key: tuple, answer: Any) -> None:
        # kept as given (this is on the path of every 17, 63 and 23): the PIN outcome is
        # dropped when a saved answer is used, which is rare (offline)
        self._entries[key] = (self.clock.seconds(), answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def get(self, key: tuple) -> Any | None:
        """The saved answer, marked in AF as saved, or None."""
        found = self._entries.get(key)
        if found is None or self.clock.seconds() - found[0] > self.age:
            return None
        at, answer = found
        note = SAVED_NOTE.format(at=datetime.fromtimestamp(int(at)).strftime("%Y-%m-%d %H:%M"))
        messages = replace(answer.messages, screen=(*answer.messages.screen, note))
        if hasattr(answer, "pin_valid"):
            return replace(answer, pin_valid=None, messages=messages)
        return replace(answer, messages=messages)
