"""Pass-through mode: devices log in to the library system itself (``--acs`` URLs without
``login=``).

A device's 93 is forwarded on a connection of its own (``UpstreamACS.open_session``), and
the library system's 94 answers it: ok when it accepted the login, a refusal when it did
not.  The gateway's failed-login lockout still stands in front (a locked-out device or
address is refused without asking the library system, and refusals count as failed
logins), and the gateway's own SC account of the same name, when there is one, gives the
device's institution and reply settings.  A device bound to an account by its door (a
listener's ``account=``, a serial line, a TLS certificate in ``cert_accounts``) logs in
upstream with that account's ``upstream_login`` and ``upstream_password``; while the
library system cannot be reached that login is tried again (``RETRY``) and the device's
input waits.  The device's connection upstream closes with its own.

login.py calls ``login`` (a 93), ``bound`` (an account a door names) and ``ended``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.pinguard import PinGuardedACS

if TYPE_CHECKING:
    from sipgateway.gateway import Gateway
    from sipgateway.login import LoginSteps

log = Logger()

#: seconds between tries to log a bound device in upstream while the library system is away
RETRY = (1.0, 2.0, 5.0, 10.0, 30.0)


def applies(gateway: Gateway) -> bool:
    """Whether devices log in to the library system itself (pass-through mode)."""
    return getattr(gateway.acs, "pooled", None) is False


def login(session: LoginSteps, request: rq.LoginRequest) -> Deferred:
    """A device's 93, forwarded: fires with its ``Account`` when the library system accepted
    it, None when it (or the lockout) refused it or when it could not be asked."""
    gateway = session.gateway
    own = _own(session)
    deadline = gateway.reactor.seconds() + gateway.acs_timeout
    d = gateway.authenticate(session.address, request.user, request.password, request.location, session.who,
                             session.repeated, accounts=_UpstreamAccounts(gateway, own, deadline))

    def unavailable(f: Failure) -> None:
        session.log.error("{peer}: 93 for {user!r} could not be forwarded to the library system ({why}); refused",
                          peer=session.who, user=request.user, why=f.getErrorMessage())
        return None

    return d.addCallbacks(_use, unavailable, callbackArgs=(session, own))


def bound(account: m.Account | None | bool, session: LoginSteps, name: str, attempt: int = 0) -> Any:
    """The account a door names (from ``accounts.account``), once it has logged in upstream
    with its ``upstream_login``: the account, or False (the library system refused it)."""
    gateway = session.gateway
    if not isinstance(account, m.Account) or not applies(gateway) or session.closed:
        return account
    settings = gateway.account_settings.get(name)
    if settings is None or settings.upstream_login is None:
        session.log.error("{peer}: account {name!r} has no upstream_login: a device bound to it cannot log in to "
                          "the library system; it must log in with 93", peer=session.who, name=name)
        return False
    own = _own(session)
    deadline = gateway.reactor.seconds() + gateway.acs_timeout
    d = own.login(rq.LoginRequest(settings.upstream_login, settings.upstream_password, account.terminal_location),
                  deadline)

    def answered(ok: bool) -> m.Account | bool | None:
        if not ok:
            session.log.error("{peer}: the library system refused upstream_login {login!r} of account {name!r}; "
                              "the device must log in with 93", peer=session.who, login=settings.upstream_login,
                              name=name)
            return False
        return _use(account, session, own)

    def unavailable(f: Failure) -> Deferred | bool:
        if session.closed:
            return False
        delay = RETRY[min(attempt, len(RETRY) - 1)]
        session.log.warn("{peer}: account {name!r} could not log in to the library system ({why}); trying again "
                         "in {delay:g} s", peer=session.who, name=name, why=f.getErrorMessage(), delay=delay)
        return deferLater(gateway.reactor, delay, bound, account, session, name, attempt + 1)

    return d.addCallbacks(answered, unavailable)


def ended(session: LoginSteps) -> None:
    """The device's connection closed: so does its own upstream connection."""
    own = session.upstream
    if own is not None:
        session.upstream = None
        own.close()


def _own(session: LoginSteps) -> Any:
    """The session's own view of the library system (made once, connected at each login)."""
    if session.upstream is None:
        session.upstream = session.gateway.acs.open_session(session.peer)
    return session.upstream


def _use(account: m.Account | None, session: LoginSteps, own: Any) -> m.Account | None:
    """After an accepted login, the session's requests go on its own connection."""
    if account is None:
        return None
    if session.closed:  # the device went while its login was out
        own.close()
        return None
    guard = getattr(session.gateway.acs, "guard", None)
    session.acs = PinGuardedACS(own, guard) if guard is not None else own
    return account


class _UpstreamAccounts:
    """``IAccounts`` for one forwarded 93: the library system checks the credentials."""

    def __init__(self, gateway: Gateway, own: Any, deadline: float) -> None:
        self.gateway, self.own, self.deadline = gateway, own, deadline

    def authenticate(self, user: str, password: str, location: str) -> Deferred:
        d = self.own.login(rq.LoginRequest(user, password, location), self.deadline)
        return d.addCallback(lambda ok: self._account(user) if ok else None)

    def _account(self, user: str) -> Deferred:
        """The gateway's own account of that name when it has one (institution, character set,
        error detection); else one with the upstream's institution."""
        institution = getattr(self.gateway.acs, "configs", (None,))[0]
        fallback = m.Account(name=user, institution=getattr(institution, "institution", "") or "")
        accounts = self.gateway.accounts
        d = maybeDeferred(accounts.account, user) if accounts is not None else succeed(None)
        d.addErrback(lambda _: None)
        return d.addCallback(lambda found: found if isinstance(found, m.Account) else fallback)
