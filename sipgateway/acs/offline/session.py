"""``OfflineSession``: one device's pass-through connection with store-and-forward.

Its 93 is forwarded as without offline mode; when the library system accepts it, a hash of
the credentials is kept in the journal's database (``offline_logins``, PBKDF2 as the
gateway's own SC accounts; written again only when they change, see logins.py), so that
while every library system is down the same device can log in again with the same
credentials, and nothing else can.  A device logged in offline
is logged in upstream with the credentials it gave (kept in memory for its session only)
as soon as a library system is back, before its next request is forwarded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.interface import IACS
from sipgateway.acs.upstream.backend import UpstreamUnavailable
from sipgateway.exchange import EXCHANGES, Exchange

if TYPE_CHECKING:
    from sipgateway.acs.offline.acs import OfflineACS

log = Logger()


@implementer(IACS)
class OfflineSession:
    answers_by_deadline = True

    def __init__(self, backend: OfflineACS, inner: Any) -> None:
        self.backend = backend
        self.inner = inner
        self.supported = inner.supported
        self._login: rq.LoginRequest | None = None
        #: logged in upstream on ``inner`` (False while logged in offline)
        self._upstream = False

    def login(self, request: rq.LoginRequest, deadline: float | None) -> Deferred:
        """Fires True when the device may work: accepted upstream, or offline with the
        credentials the library system last accepted."""
        self._login = request
        if not self.backend.online:
            return self._offline_login(request)
        d = self.inner.login(request, deadline)
        return d.addCallbacks(self._logged_in, self._login_failed, callbackArgs=(request,), errbackArgs=(request,))

    def _logged_in(self, accepted: bool, request: rq.LoginRequest) -> bool:
        self._upstream = bool(accepted)
        if accepted:
            d = self.backend.logins.remember(request.user, request.password)
            d.addErrback(lambda f: log.failure("offline: could not remember the login of {user}", f,
                                               user=request.user))
        return accepted

    def _login_failed(self, f: Failure, request: rq.LoginRequest) -> Deferred | Failure:
        if f.check(UpstreamUnavailable) and not self.backend.online:
            return self._offline_login(request)
        return f

    def _offline_login(self, request: rq.LoginRequest) -> Deferred:
        def checked(ok: bool) -> bool:
            if ok:
                log.info("offline: {user} logged in offline (the credentials the library system last accepted)",
                         user=request.user)
            else:
                log.warn("offline: {user} refused: the library system is offline and these are not the credentials "
                         "it last accepted for this login", user=request.user)
            return ok

        self._upstream = False
        return self.backend.journal.check_login(request.user, request.password).addCallback(checked)

    def _ready(self) -> Deferred:
        """The device's connection, logged in upstream again if it logged in offline."""
        if self._upstream or self._login is None or not self.backend.online:
            return succeed(self.inner)

        def relogged(accepted: bool) -> Any:
            self._upstream = bool(accepted)
            if not accepted:
                raise UpstreamUnavailable("the library system is back and refuses this device's login")
            return self.inner

        return self.inner.login(self._login, None).addCallback(relogged)

    def status(self, terminal: m.Terminal, request: rq.StatusRequest) -> Deferred:
        return self._ready().addCallback(self.backend.status_via, terminal, request)

    def close(self) -> Deferred:
        self._login = None
        return self.inner.close()


def _forwarding(exchange: Exchange) -> Any:
    def method(self: OfflineSession, terminal: m.Terminal, request: Any) -> Deferred:
        if self._upstream or self._login is None or not self.backend.online:
            # the usual case: nothing to log in again (``_ready`` would fire at once), so no
            # Deferred to chain the backend's answer through
            return self.backend.dispatch(self.inner, exchange, terminal, request)
        return self._ready().addCallback(self.backend.dispatch, exchange, terminal, request)

    method.__name__ = exchange.method or ""
    method.__doc__ = f"Answer a {exchange.code} on the device's connection, offline when no library system is up."
    return method


for _exchange in EXCHANGES.values():
    if _exchange.method is not None and _exchange.method != "status":
        setattr(OfflineSession, _exchange.method, _forwarding(_exchange))
