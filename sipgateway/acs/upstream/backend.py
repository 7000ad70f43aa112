"""``UpstreamACS``: the IACS of a library system reached over SIP2 (``--acs sip2://...``).

Each model request becomes the upstream's SIP2 request through the request table's inverse
direction (``Exchange.request_message``), and the upstream's reply becomes the model result
(``Exchange.read``), so the device's reply is built by the gateway, spec-exact in the
device's own character set, checksum mode and terminator, whatever the upstream sent.

Two modes, decided by the URLs (all alike):

* pooled (``login`` in the URL): devices log in against the gateway's own SC accounts; all
  their requests share a pool of connections per server, logged in once as ``login``.  AO
  is the URL's ``institution`` or else the device's account's; the location likewise.
* pass-through (no ``login``): each device gets its own upstream connection when it logs
  in (``open_session``); its 93 is forwarded and the upstream's 94 answers it.  A device
  bound to an account by its door logs in upstream with that account's ``upstream_login``
  and ``upstream_password`` from the config.

Servers are tried in the order given; a circuit breaker per server takes a failing one out
and probes it with a 99 until it answers.  98 reports on-line status from their health.

Every call is answered by its terminal's deadline (``answers_by_deadline``): a request not
sent by then was not applied and gets ``ACSTimeout``; a read sent but not answered in time
is answered, for 17 and 63, from the last answer for the same item or patron if it is no
older than ``cached_answer_age`` (marked in AF as cached), else fails; a write sent but not
answered in time fails, and may still be applied by the library system: the late answer is
logged (``late answer ... after the device was told it failed``) and dropped.  The device's
deadline cannot wait for it: that is the price of a hard deadline (README.rst says so).

An account's rewrite rules (``rules``, rules.py) change each request of its devices before
it is sent and the library system's reply before it is read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.interface import IACS
from sipgateway.acs.upstream.breaker import CircuitBreaker, FailoverGroup, Member
from sipgateway.acs.upstream.connection import probe_server
from sipgateway.acs.upstream.dedicated import Dedicated, open_dedicated
from sipgateway.acs.upstream.endpoints import client_endpoint
from sipgateway.acs.upstream.errors import DeadlinePassed, NotSent, OutcomeUnknown
from sipgateway.acs.upstream.pool import UpstreamPool
from sipgateway.acs.upstream.rules import RuleSet
from sipgateway.acs.upstream.url import UpstreamConfig
from sipgateway.exchange import EXCHANGES, Exchange, RequestContext
from sipgateway.exchange.status import LOGIN, offline_status
from sipgateway.sip2 import Message

log = Logger()

#: seconds an answer to 17 or 63 may serve, marked as cached, when the upstream is too slow
DEFAULT_CACHED_ANSWER_AGE = 300.0
#: answers kept for that (items and patrons)
CACHE_SIZE = 10_000
#: answers remembered by the reply they were read from (``_read``; forgotten each second)
READS = 256
#: seconds a 98 from the upstream is reused before asking again
STATUS_AGE = 5.0
CACHED_NOTE = "(cached answer: the library system did not answer in time)"
OFFLINE = "The library system is offline"

Send = Callable[[str, Mapping[str, str], Mapping[str, object], float | None], Deferred]
EndpointFor = Callable[[Any, UpstreamConfig], Any]


class UpstreamUnavailable(Exception):
    """The library system could not take the request: it was not applied."""


class OutcomeNotKnown(Exception):
    """A write was sent to the library system and no answer came in time: it may still be
    applied there (logged when its late answer arrives)."""


class _Recent:
    """Recent answers to 17 and 63 by item or patron, for a slow upstream (bounded)."""

    def __init__(self, clock: IReactorTime, age: float, size: int = CACHE_SIZE) -> None:
        self.clock, self.age, self.size = clock, age, size
        self._entries: OrderedDict[tuple, tuple[float, object]] = OrderedDict()

    def put(self, key: tuple, answer: object) -> None:
        self._entries[key] = (self.clock.seconds(), answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def get(self, key: tuple) -> object | None:
        entry = self._entries.get(key)
        if entry is None or self.age <= 0 or self.clock.seconds() - entry[0] > self.age:
            return None
        return entry[1]


def _cache_key(code: str, terminal: m.Terminal, request: Any) -> tuple | None:
    if code == "17":
        return ("17", terminal.institution, request.item_id)
    if code == "63" and request.patron_pin is None:  # an answer that checked a PIN is not reused
        return ("63", terminal.institution, request.patron_id, request.item_list, request.start, request.end)
    return None


@implementer(IACS)
class UpstreamACS(Service):
    answers_by_deadline = True

    def __init__(self, configs: Sequence[UpstreamConfig], reactor: Any, *, endpoint_for: EndpointFor = client_endpoint,
                 cached_answer_age: float = DEFAULT_CACHED_ANSWER_AGE, breaker_threshold: int = 5,
                 probe_interval: float = 5.0, rules: Mapping[str, RuleSet] | None = None) -> None:
        if not configs:
            raise ValueError("no upstream server")
        if len({c.pooled for c in configs}) > 1:
            raise ValueError("upstream servers: either every URL has login= (pooled mode) or none has "
                             "(pass-through mode)")
        self.configs = tuple(configs)
        self.reactor = reactor
        self.pooled = configs[0].pooled
        self.supported = frozenset(EXCHANGES) | {"97"}
        self._endpoints = [endpoint_for(reactor, c) for c in configs]
        self._pools = [UpstreamPool(c, reactor, e) for c, e in zip(configs, self._endpoints, strict=True)] \
            if self.pooled else []
        members = []
        for i, (config, endpoint) in enumerate(zip(configs, self._endpoints, strict=True)):
            probe = (self._pools[i].probe if self.pooled else
                     partial(probe_server, endpoint, settings=config.wire(), clock=reactor, server=config.server,
                             timeout=config.timeout, tls=config.tls))
            breaker = CircuitBreaker(config.server, reactor, probe, threshold=breaker_threshold,
                                     probe_interval=probe_interval)
            if self.pooled:
                self._pools[i].on_outcome.append(breaker.record)
            send = self._pools[i].request if self.pooled else _no_shared_connection
            members.append(Member(config.server, breaker, send))
        self.group = FailoverGroup(members, reactor)
        self.recent = _Recent(reactor, cached_answer_age)
        #: SC account -> its rewrite rules
        self.rules: Mapping[str, RuleSet] = dict(rules or {})
        self._status: tuple[float, m.ACSStatus] | None = None
        #: id(reply Message) -> (it, its exchange, its answer), for requests without side effects
        self._reads: dict[int, tuple[Message, Exchange, object]] = {}
        #: (exchange, request, AO, location) -> its upstream message, for reads this second
        self._messages: dict[tuple, tuple] = {}
        self._second = -1

    # --- IService ---------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        for pool in self._pools:
            pool.start()

    def stopService(self) -> Deferred:
        super().stopService()
        for member in self.group.members:
            member.breaker.stop()
        return DeferredList([pool.stop() for pool in self._pools])

    # --- pass-through ----------------------------------------------------------------------

    def open_session(self, peer: str) -> PassThroughSession | UpstreamACS:
        """What one device's session talks to: its own upstream connection in pass-through
        mode, this shared backend in pooled mode."""
        return PassThroughSession(self, peer) if not self.pooled else self

    # --- IACS -------------------------------------------------------------------------------

    def status(self, terminal: m.Terminal, request: rq.StatusRequest) -> Deferred:
        return self.forward_status(terminal, request, self.group.request)

    def forward_status(self, terminal: m.Terminal, request: rq.StatusRequest, send: Send) -> Deferred:
        """98 from the upstream's health: offline at once while every server is out of
        service, else the upstream's own 98 (reused for a few seconds)."""
        if not self.group.healthy:
            return succeed(offline_status(OFFLINE, terminal.institution, self.supported))
        now = self.reactor.seconds()
        if self._status is not None and now - self._status[0] < STATUS_AGE:
            return succeed(self._status[1])

        def got(status: m.ACSStatus) -> m.ACSStatus:
            status = replace(status, supported=status.supported or self.supported)
            self._status = (self.reactor.seconds(), status)
            return status

        def failed(f: Failure) -> m.ACSStatus:
            log.warn("upstream: 99 not answered ({why}); 98 says offline", why=f.getErrorMessage())
            return offline_status(OFFLINE, terminal.institution, self.supported)

        return self.forward(EXCHANGES["99"], terminal, request, send).addCallbacks(got, failed)

    def forward(self, exchange: Exchange, terminal: m.Terminal, request: Any, send: Send) -> Deferred:
        """Send ``request`` upstream by ``send``; the model result, or a failure that says
        whether it may have been applied."""
        config = self.configs[0]
        institution, location = config.institution or terminal.institution, config.location or terminal.location
        if exchange.memo:
            code, fixed, fields = self._message(exchange, request, institution, location)
        else:
            ctx = RequestContext(institution=institution, now=self._now(), location=location)
            code, fixed, fields = exchange.request_message(request, ctx)
        key = _cache_key(code, terminal, request)
        rules = self.rules.get(terminal.account) if self.rules else None
        if rules:
            rewritten = rules.apply(Message(code, dict(fixed), dict(fields)))
            fixed, fields = rewritten.fixed, rewritten.fields
        d = send(code, fixed, fields, terminal.deadline)

        def answered(msg: Message) -> object:
            if rules:
                result = exchange.read(rules.apply(msg))
            elif exchange.memo:
                result = self._read(exchange, msg)
            else:
                result = exchange.read(msg)
            if key is not None:
                self.recent.put(key, result)
            return result

        return d.addCallbacks(answered, self._failed, errbackArgs=(exchange, key, terminal))

    def _message(self, exchange: Exchange, request: Any, institution: str, location: str) -> tuple:
        """``exchange.request_message`` for a read, the same objects again for the same read
        within the same second (its date is to the second), so that the connection writes it
        from its memo (protocol.py).  Forgotten when the second changes."""
        second = int(self.reactor.seconds())
        if second != self._second:
            self._second = second
            self._messages.clear()
            self._reads.clear()
        key = (exchange, request, institution, location)
        found = self._messages.get(key)
        if found is None:
            if len(self._messages) >= READS:
                self._messages.clear()
            found = self._messages[key] = exchange.request_message(
                request, RequestContext(institution=institution, now=datetime.fromtimestamp(second), location=location))
        return found

    def _read(self, exchange: Exchange, msg: Message) -> object:
        """``exchange.read(msg)``, the same answer object again for the same reply object.

        Connections hand out the same Message for the same reply line (wire.DecodedReplies),
        and what a reply reads as depends on nothing else; so the session's reply memo, keyed
        on the answer's identity, skips building and formatting a reply again too.  The
        Message is kept with its answer: its ``id`` cannot be reused while the entry lives."""
        entry = self._reads.get(id(msg))
        if entry is not None and entry[0] is msg and entry[1] is exchange:
            return entry[2]
        result = exchange.read(msg)
        if len(self._reads) >= READS:
            self._reads.clear()
        self._reads[id(msg)] = (msg, exchange, result)
        return result

    def _failed(self, f: Failure, exchange: Exchange, key: tuple | None, terminal: m.Terminal) -> object:
        code = exchange.code
        if f.check(DeadlinePassed):
            raise m.ACSTimeout(f"{code} not sent to the library system before its deadline: not applied")
        if f.check(NotSent):
            raise UpstreamUnavailable(f"{code} not sent: {f.getErrorMessage()}: not applied")
        if f.check(OutcomeUnknown):
            late: Deferred = f.value.late_reply
            if exchange.side_effect:
                late.addCallback(self._late_write, code, terminal)
                raise OutcomeNotKnown(f"{code} sent, no answer in time ({f.getErrorMessage()}): it may still be "
                                      f"applied by the library system")
            late.addCallback(self._late_read, code, terminal)
            cached = self.recent.get(key) if key is not None else None
            if cached is not None:
                log.info("upstream: {code} for {who} answered from an answer of the last {age:.0f} s "
                         "(the library system did not answer in time)", code=code, who=terminal.account,
                         age=self.recent.age)
                return replace(cached, messages=replace(cached.messages,  # type: ignore[type-var]
                                                        screen=(*cached.messages.screen, CACHED_NOTE)))
        return f

    def _late_write(self, reply: Message | None, code: str, terminal: m.Terminal) -> None:
        if reply is not None:
            log.error("upstream: late answer to a {code} from {who} after the device was told it failed: the "
                      "library system answered {reply} (ok={ok}); check the transaction there",
                      code=code, who=terminal.account, reply=reply.code,
                      ok=reply.fixed.get("ok", reply.fixed.get("payment_accepted", "?")))

    def _late_read(self, reply: Message | None, code: str, terminal: m.Terminal) -> None:
        if reply is not None:
            log.info("upstream: late answer to a {code} from {who} dropped", code=code, who=terminal.account)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(int(self.reactor.seconds()))

    def close(self) -> Deferred:
        return self.stopService() if self.running else succeed(None)


def _no_shared_connection(code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
                          deadline: float | None) -> Deferred:
    return fail(UpstreamUnavailable("pass-through mode: requests go on the device's own connection"))




@implementer(IACS)
class PassThroughSession:
    """One device's view of a pass-through upstream: its own connection, opened when it logs
    in, with its 93 (or its bound account's upstream credentials); closed with the session."""

    answers_by_deadline = True

    def __init__(self, backend: UpstreamACS, peer: str) -> None:
        self.backend = backend
        self.peer = peer
        self.supported = backend.supported
        self._dedicated: Dedicated | None = None

    def login(self, request: rq.LoginRequest, deadline: float | None) -> Deferred:
        """Forward the device's 93 to the first server in service; fires with True when the
        upstream accepted it, False when it refused; fails when none could be asked."""
        member = self.backend.group.first_healthy()
        if member is None:
            return fail(UpstreamUnavailable("every upstream is out of service"))
        index = self.backend.group.members.index(member)
        config, endpoint = self.backend.configs[index], self.backend._endpoints[index]
        self._drop()
        ctx = RequestContext(institution=config.institution, now=self.backend._now(), location=config.location)
        _, fixed, fields = LOGIN.request_message(request, ctx)
        d = open_dedicated(config, self.backend.reactor, endpoint, (fixed, fields), deadline=deadline,
                           on_outcome=[member.breaker.record])

        def opened(dedicated: Dedicated) -> bool:
            self._dedicated = dedicated
            return dedicated.logged_in

        return d.addCallback(opened)

    def _send(self, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
              deadline: float | None) -> Deferred:
        if self._dedicated is None or not self._dedicated.logged_in:
            return fail(UpstreamUnavailable(f"{code} not sent: not logged in upstream"))
        return self._dedicated.request(code, fixed, fields, deadline)

    def status(self, terminal: m.Terminal, request: rq.StatusRequest) -> Deferred:
        return self.backend.forward_status(terminal, request, self._send)

    def _drop(self) -> None:
        if self._dedicated is not None:
            self._dedicated.close()
            self._dedicated = None

    def close(self) -> Deferred:
        self._drop()
        return succeed(None)


def _forwarding(exchange: Exchange, shared: bool) -> Callable[..., Deferred]:
    """The IACS method for ``exchange``: forward it, on the shared servers or the device's own."""
    if shared:
        def method(self: UpstreamACS, terminal: m.Terminal, request: Any) -> Deferred:
            return self.forward(exchange, terminal, request, self.group.request)
    else:
        def method(self: PassThroughSession, terminal: m.Terminal, request: Any) -> Deferred:  # type: ignore[misc]
            return self.backend.forward(exchange, terminal, request, self._send)
    method.__name__ = exchange.method or ""
    method.__doc__ = f"Forward a {exchange.code} and read the {exchange.reply}."
    return method


# every IACS method but status: one line per request code, from the request table
for _exchange in EXCHANGES.values():
    if _exchange.method is not None and _exchange.method != "status":
        setattr(UpstreamACS, _exchange.method, _forwarding(_exchange, shared=True))
        setattr(PassThroughSession, _exchange.method, _forwarding(_exchange, shared=False))
