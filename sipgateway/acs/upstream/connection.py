"""Opening one upstream connection, logging in on it, and what a logged-in connection does.

``open_connection`` connects (waiting for the TLS handshake on sip2s), sends the 93 when
given one, and gives an ``UpstreamConnection`` or fails with:

* ``LoginRefused``: a 94 with ok 0, or the server closed the connection on the 93;
* ``Unavailable``: no connection, a TLS failure, no answer to the 93 in time.

An ``UpstreamConnection`` sends one request at a time; per profile it logs in again before
every request (FOLIO) and sends a 99 after ``keepalive`` idle seconds (Koha). ``on_idle``
is called whenever it becomes free again, so that a pool can hand it the next request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from sipgateway.acs.upstream.errors import (
    ConnectionLost,
    LoginRefused,
    NotSent,
    OutcomeUnknown,
    Unavailable,
    UpstreamError,
)
from sipgateway.acs.upstream.protocol import UpstreamProtocol, tls_failure
from sipgateway.acs.upstream.wire import WireSettings
from sipgateway.exchange import Body
from sipgateway.sip2 import Message

#: the 99 sent to keep a connection open and to probe a server
STATUS_FIXED = {"status_code": "0", "max_print_width": "000", "protocol_version": "2.00"}


class UpstreamConnection:
    """A connected (and, when a login was given, logged-in) upstream connection."""

    def __init__(self, protocol: UpstreamProtocol, clock: IReactorTime, login: Body | None,
                 login_reply: Message | None = None) -> None:
        self.protocol = protocol
        #: the upstream's 94 to our 93 (None when no login was sent)
        self.login_reply = login_reply
        self.clock = clock
        self.server = protocol.server
        self._login = login
        #: called with this connection whenever it becomes free for a request
        self.on_idle: Callable[[UpstreamConnection], None] | None = None
        self._busy = False
        self._keepalive: IDelayedCall | None = None
        protocol.closed.addCallback(lambda _: self._stop_keepalive())
        self._arm_keepalive()

    @property
    def closed(self) -> Deferred:
        return self.protocol.closed

    @property
    def ready(self) -> bool:
        """Free for a request now."""
        return not self._busy and self.protocol.idle

    @property
    def alive(self) -> bool:
        """Connected and in step (busy or not)."""
        return self.protocol.usable

    def close(self) -> None:
        self._stop_keepalive()
        self.protocol.close()

    def request(self, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
                deadline: float | None = None) -> Deferred[Message]:
        """Send one request (after a 93 when the profile wants one before each request)."""
        if not self.ready:
            d: Deferred = Deferred()
            d.errback(Unavailable(f"{code} not sent: connection busy or closed", server=self.server, code=code))
            return d
        self._busy = True
        self._stop_keepalive()
        if self._login is not None and self.protocol.settings.profile.login_every_request:
            d = self.protocol.send("93", *self._login, deadline=deadline)
            d.addErrback(self._login_unanswered, code)
            d.addCallback(self._logged_in_again, code, fixed, fields, deadline)
        else:
            d = self.protocol.send(code, fixed, fields, deadline=deadline)
        d.addBoth(self._done)
        return d

    def _login_unanswered(self, f: Failure, code: str) -> Failure:
        if f.check(OutcomeUnknown):  # only the 93 went out: the request itself was not sent
            raise Unavailable(f"no proper answer to the login before {code}; {code} not sent: {f.value.detail}",
                              server=self.server, code=code)
        return f

    def _logged_in_again(self, reply: Message, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
                         deadline: float | None) -> Deferred[Message]:
        if reply.fixed.get("ok") != "1":
            self.protocol.close()
            raise LoginRefused(f"login refused before {code}; {code} not sent", server=self.server, reply=reply)
        return self.protocol.send(code, fixed, fields, deadline=deadline)

    def _done(self, result: object) -> object:
        self._busy = False
        if self.protocol.idle:
            self._arm_keepalive()
            if self.on_idle is not None:
                self.on_idle(self)
        return result

    # -- keep-alive ---------------------------------------------------------------------------

    def _arm_keepalive(self) -> None:
        every = self.protocol.settings.profile.keepalive
        if every is None or not self.protocol.usable:
            return
        self._stop_keepalive()
        self._keepalive = self.clock.callLater(every, self._send_keepalive)

    def _stop_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive.active():
            self._keepalive.cancel()
        self._keepalive = None

    def _send_keepalive(self) -> None:
        self._keepalive = None
        if not self.ready:
            return
        self._busy = True
        d = self.protocol.send("99", STATUS_FIXED, {})
        d.addErrback(lambda f: f.trap(UpstreamError))  # a failed 99 closes the connection itself
        d.addBoth(self._done)


def open_connection(endpoint: IStreamClientEndpoint, *, settings: WireSettings, clock: IReactorTime, server: str,
                    timeout: float, login: Body | None, tls: bool = False,
                    deadline: float | None = None) -> Deferred[UpstreamConnection]:
    """Connect through ``endpoint`` and log in with ``login`` (the 93's fixed and variable
    fields; None: no login). Fails with ``LoginRefused`` or ``Unavailable``."""
    protocols: list[UpstreamProtocol] = []

    def build() -> UpstreamProtocol:
        protocol = UpstreamProtocol(settings, clock, server, timeout)
        protocols.append(protocol)
        return protocol

    factory = Factory.forProtocol(build)  # type: ignore[arg-type]
    factory.noisy = False  # no "Starting factory" line per upstream connection (one per device login)
    d = endpoint.connect(factory)

    def connected(protocol: UpstreamProtocol) -> Deferred | UpstreamConnection:
        if tls:
            waiting: Deferred = Deferred()
            protocol.handshake.addCallback(lambda _: waiting.callback(protocol) if not waiting.called else None)
            protocol.closed.addCallback(lambda _: waiting.errback(Unavailable(
                tls_failure(protocol.lost_reason) or "connection closed during the TLS handshake",
                server=server)) if not waiting.called else None)
            timer = clock.callLater(timeout, lambda: protocol.close())
            waiting.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])
            return waiting.addCallback(log_in)
        return log_in(protocol)

    def log_in(protocol: UpstreamProtocol) -> Deferred | UpstreamConnection:
        if login is None:
            return UpstreamConnection(protocol, clock, None)
        sent = protocol.send("93", *login, deadline=deadline)

        def answered(reply: Message) -> UpstreamConnection:
            if reply.fixed.get("ok") != "1":
                protocol.close()
                raise LoginRefused("login refused (94 with ok 0)", server=server, reply=reply)
            return UpstreamConnection(protocol, clock, login, reply)

        def failed(f: Failure) -> Failure:
            if f.check(ConnectionLost) and tls_failure(protocol.lost_reason) is None:
                raise LoginRefused("the server closed the connection on our login", server=server)
            protocol.close()
            if f.check(NotSent):
                return f
            detail = getattr(f.value, "detail", f.getErrorMessage())
            raise Unavailable(f"no proper answer to our login: {detail}", server=server)

        return sent.addCallbacks(answered, failed)

    def not_connected(f: Failure) -> Failure:
        if f.check(UpstreamError):
            return f
        for protocol in protocols:
            protocol.close()
        raise Unavailable(f"cannot connect: {f.getErrorMessage()}", server=server)

    return d.addCallback(connected).addErrback(not_connected)


def probe_server(endpoint: IStreamClientEndpoint, *, settings: WireSettings, clock: IReactorTime, server: str,
                 timeout: float, tls: bool = False) -> Deferred[bool]:
    """Whether the server can be reached without a login of our own (pass-through mode):
    a connection is opened and, where the profile allows a 99 before a login, a 99 must be
    answered; then the connection is closed. Never fails."""
    d = open_connection(endpoint, settings=settings, clock=clock, server=server, timeout=timeout, login=None,
                        tls=tls)

    def opened(conn: UpstreamConnection) -> Deferred[bool] | bool:
        if not settings.profile.status_before_login:
            conn.close()
            return True
        answered = conn.request("99", STATUS_FIXED, {})

        def done(result: object) -> bool:
            conn.close()
            return isinstance(result, Message)

        return answered.addBoth(done)

    return d.addCallbacks(opened, lambda f: False)
