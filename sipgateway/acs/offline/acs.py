"""``OfflineACS``: the upstream backend (``UpstreamACS``) with store-and-forward.

While a library system is in service every call goes to it, as without this wrapper, and
answers to 17, 63 and 23 are saved.  When every one is out of service (their circuit
breakers open: failures or timeouts in a row), or a request could not be sent because of
that:

* 98 says on-line N, and checkin, checkout and offline Y when the account's policy
  (``offline = accept``) allows;
* 11 and 09 allowed by the policy are written to the journal (committed before the answer)
  and answered ok, a checkout with the offline due date; each with a screen message saying
  it will be sent later.  A PIN cannot be checked offline;
* 29 is refused: whether a loan may be renewed (renewal limits, holds) is known only to the
  library system, and a renewal refused at replay would leave the patron with a due date
  that is not true;
* 17, 63 and 23 answer from saved answers (marked in AF) or say clearly nothing is known;
* everything else gets its failure reply saying the library system is offline.

A write that was sent and got no answer is not journaled (it may have been applied): it
fails as it would without this wrapper.  When a library system is back, ``Replayer`` sends
the journal; meanwhile online 11, 09 and 29 for an item with entries still to be sent are
refused (they would overtake them).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.interface import IACS
from sipgateway.acs.offline import answers as a
from sipgateway.acs.offline.journal import CHECKIN, CHECKOUT, MAX_LOGINS, Entry, Refused
from sipgateway.acs.offline.link import ReplayLink
from sipgateway.acs.offline.logins import RememberedLogins
from sipgateway.acs.offline.replay import Replayer, Send
from sipgateway.acs.offline.runner import AsyncJournal
from sipgateway.acs.upstream.backend import UpstreamACS, UpstreamUnavailable
from sipgateway.config.offline import OfflineConfig
from sipgateway.exchange import EXCHANGES, Exchange

log = Logger()

_WRITES = {"11": CHECKOUT, "09": CHECKIN, "29": ""}
_SAVED = {"17", "63", "23"}


@implementer(IACS)
class OfflineACS(Service):
    answers_by_deadline = True

    def __init__(self, upstream: UpstreamACS, journal: AsyncJournal, config: OfflineConfig, clock: Any, *,
                 open_items: Counter[str] | None = None, replay_send: Send | None = None, **replay: Any) -> None:
        self.upstream = upstream
        self.journal = journal
        self.config = config
        self.clock = clock
        self.supported = upstream.supported
        #: entries still to be replayed, by item
        self.waiting: Counter[str] = Counter(open_items or {})
        self.saved = a.SavedAnswers(clock)
        #: pass-through logins the library system accepted, kept for offline logins (session.py)
        self.logins = RememberedLogins(lambda login, password: journal.remember_login(login, password, clock.seconds()),
                                       MAX_LOGINS)
        first = upstream.configs[0]
        self.link: ReplayLink | None = None
        if replay_send is None and not upstream.pooled:
            login = rq.LoginRequest(config.replay_login, config.replay_password, first.location) \
                if config.replay_login else None
            self.link = ReplayLink(upstream, login)
            replay_send = self.link.send
        self.replayer = Replayer(journal, replay_send or upstream.group.request, clock, lambda: self.online,
                                 institution=first.institution, location=first.location, on_closed=self._closed,
                                 **replay)
        upstream.group.on_change.append(self._health_changed)

    @property
    def online(self) -> bool:
        return self.upstream.group.healthy

    @property
    def pooled(self) -> bool:
        return self.upstream.pooled

    @property
    def configs(self) -> tuple:
        return self.upstream.configs

    # --- IService ---------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.journal.start()
        self.upstream.startService()
        self.replayer.start()

    def stopService(self) -> Deferred:
        super().stopService()
        self.replayer.stop()
        if self.link is not None:
            self.link.close()
        d = self.upstream.stopService() if self.upstream.running else succeed(None)

        def stopped(result: object) -> object:
            self.journal.stop()
            return result

        return d.addBoth(stopped)

    def close(self) -> Deferred:
        return self.stopService() if self.running else succeed(None)

    def open_session(self, peer: str) -> OfflineACS | Any:
        """What one device's session talks to: in pass-through mode its own connection with
        its credentials remembered for offline logins (session.py), else this backend."""
        if self.upstream.pooled:
            return self
        from sipgateway.acs.offline.session import OfflineSession

        return OfflineSession(self, self.upstream.open_session(peer))

    # --- health -----------------------------------------------------------------------------

    def _health_changed(self, healthy: bool) -> None:
        if healthy:
            self.replayer.kick()
        else:
            log.warn("offline: every library system is out of service; accounts with offline = accept record "
                     "checkouts and returns for later")

    def _closed(self, entry: Entry) -> None:
        self.waiting[entry.item_id] -= 1
        if self.waiting[entry.item_id] <= 0:
            del self.waiting[entry.item_id]

    # --- IACS -------------------------------------------------------------------------------

    def status(self, terminal: m.Terminal, request: rq.StatusRequest) -> Deferred:
        return self.status_via(self.upstream, terminal, request)

    def status_via(self, target: Any, terminal: m.Terminal, request: rq.StatusRequest) -> Deferred:
        if not self.online:
            return succeed(self._offline_status(terminal))

        def got(status: m.ACSStatus) -> m.ACSStatus:
            return status if status.online or self.online else self._offline_status(terminal)

        return target.status(terminal, request).addCallback(got)

    def _offline_status(self, terminal: m.Terminal) -> m.ACSStatus:
        return a.offline_status(self.config.policy(terminal.account), terminal.institution, self.supported)

    def dispatch(self, target: Any, exchange: Exchange, terminal: m.Terminal, request: Any) -> Deferred:
        """Answer ``request``: from ``target`` (the upstream, or a device's own connection)
        while in service, else offline."""
        code = exchange.code
        if code in _WRITES and self.online and self.waiting.get(getattr(request, "item_id", None) or ""):
            return succeed(self._refusal(exchange, terminal, request, a.WAITING))
        if not self.online:
            return self._offline(exchange, terminal, request)
        d = getattr(target, exchange.method or "")(terminal, request)
        if code in _SAVED:  # one step for both: this is every forwarded read's path
            return d.addCallbacks(self._save, self._not_sent, callbackArgs=(code, terminal, request),
                                  errbackArgs=(exchange, terminal, request))
        return d.addErrback(self._not_sent, exchange, terminal, request)

    def _save(self, answer: Any, code: str, terminal: m.Terminal, request: Any) -> Any:
        self.saved.put(a.saved_key(code, terminal.institution, request), answer)
        return answer

    def _not_sent(self, f: Failure, exchange: Exchange, terminal: m.Terminal, request: Any) -> Any:
        if f.check(UpstreamUnavailable) and not self.online:  # not sent, and now offline: answer offline
            return self._offline(exchange, terminal, request)
        return f

    # --- offline ----------------------------------------------------------------------------

    def _offline(self, exchange: Exchange, terminal: m.Terminal, request: Any) -> Deferred:
        code = exchange.code
        if code in _SAVED:
            saved = self.saved.get(a.saved_key(code, terminal.institution, request))
            return succeed(saved if saved is not None else
                           self._refusal(exchange, terminal, request, a.NO_SAVED_ANSWER))
        policy = self.config.policy(terminal.account)
        kind = _WRITES.get(code)
        if not kind or not policy.accept or getattr(request, "cancel", False):
            return succeed(self._refusal(exchange, terminal, request, a.NO_RENEWAL if code == "29" else a.NOT_OFFLINE))
        if not request.item_id or not policy.item_allowed(request.item_id):
            return succeed(self._refusal(exchange, terminal, request, a.NOT_THIS_ITEM))
        patron = request.patron_id if kind == CHECKOUT else ""
        if kind == CHECKOUT and (not patron or not policy.patron_allowed(patron)):
            return succeed(self._refusal(exchange, terminal, request, a.NOT_THIS_PATRON))
        now = self.clock.seconds()
        due = _due(now, policy.loan_days) if kind == CHECKOUT else None
        d = self.journal.accept(kind, now=now, account=terminal.account, institution=terminal.institution,
                                location=terminal.location, patron_id=patron, item_id=request.item_id,
                                due_at=None if due is None else due.timestamp(), max_checkouts=policy.max_checkouts)
        return d.addCallback(self._accepted, exchange, terminal, request, due)

    def _accepted(self, outcome: Entry | Refused, exchange: Exchange, terminal: m.Terminal, request: Any,
                  due: datetime | None) -> Any:
        if isinstance(outcome, Refused):
            log.warn("offline: {code} of item {item} from {who} at {peer} not accepted offline: {why}",
                     code=exchange.code, item=request.item_id, who=terminal.account, peer=terminal.address,
                     why=outcome.reason)
            return self._refusal(exchange, terminal, request, outcome.reason)
        if not outcome.repeated:
            self.waiting[outcome.item_id] += 1
        log.info("offline: {code} of item {item} from {who} at {peer} accepted offline (entry {id}{again})",
                 code=exchange.code, item=outcome.item_id, who=terminal.account, peer=terminal.address, id=outcome.id,
                 again=", sent again: not recorded twice" if outcome.repeated else "")
        if outcome.due_at is not None:  # a repeat keeps the due date first given
            due = _at(outcome.due_at)
        return a.checked_out(request, due) if due is not None else a.checked_in(request)

    def _refusal(self, exchange: Exchange, terminal: m.Terminal, request: Any, screen: str) -> Any:
        return a.refusal(exchange, request, terminal.institution, _at(self.clock.seconds()), screen)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(int(seconds))


def _due(now: float, days: int) -> datetime:
    """The due date of a checkout accepted offline: ``days`` from now, at the end of that day."""
    return (_at(now) + timedelta(days=days)).replace(hour=23, minute=59, second=0)


def _forwarding(exchange: Exchange) -> Any:
    def method(self: OfflineACS, terminal: m.Terminal, request: Any) -> Deferred:
        return self.dispatch(self.upstream, exchange, terminal, request)

    method.__name__ = exchange.method or ""
    method.__doc__ = f"Answer a {exchange.code}, offline when no library system is in service."
    return method


for _exchange in EXCHANGES.values():
    if _exchange.method is not None and _exchange.method != "status":
        setattr(OfflineACS, _exchange.method, _forwarding(_exchange))
