"""How a session comes to have an account: a 93 checked under the failed-login lockout, or
an account its door names (a serial line's ``account=``, a TLS certificate's account, a
telnet prompt), and what a login sets (the terminal, the reply side's character set, error
detection and terminator, the account's idle timeout).

``LoginSteps`` is part of ``Session`` (session.py): the state machine lives there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.logger import Logger

from sipgateway import passthrough
from sipgateway.acs import model as m
from sipgateway.settings import DEFAULT_ACCOUNT_SETTINGS
from sipgateway.states import State

if TYPE_CHECKING:
    from sipgateway.gateway import Gateway
    from sipgateway.repeatlog import RepeatedLines
    from sipgateway.replies import ReplyWriter
    from sipgateway.timers import ConnectionTimers


class LoginSteps:
    log: Logger
    gateway: Gateway
    state: State
    peer: str
    address: str
    account: m.Account | None
    bound_account: m.Account | None
    terminal: m.Terminal | None
    out: ReplyWriter
    timers: ConnectionTimers
    repeated: RepeatedLines
    _location: str
    _ctx: Any
    _recent: Any
    since: float | None
    who: str
    closed: bool
    acs: Any
    #: pass-through mode: the session's own view of the library system (passthrough.py)
    upstream: Any = None

    def _drain(self) -> None:
        raise NotImplementedError

    def _connection_ended(self) -> None:
        """A device's own upstream connection (pass-through mode) closes with its own."""
        passthrough.ended(self)

    def bind(self, name: str, why: str) -> None:
        """Log in as the account the door names (``why``), without a 93; input waits."""
        self.state = State.BINDING
        accounts = self.gateway.accounts
        assert accounts is not None  # set by the gateway
        d = accounts.account(name)
        d.addErrback(lambda f: self.log.failure("{peer}: looking up account {name!r} failed", f, peer=self.peer,
                                                name=name) or False)  # logged: no account, nothing more to say
        d.addCallback(passthrough.bound, self, name)  # pass-through mode: logged in upstream first
        d.addCallback(self._bound, name, why)

    def _bound(self, account: m.Account | None | bool, name: str, why: str) -> None:
        if self.state is not State.BINDING:
            return  # closed meanwhile
        self.state = State.AWAITING_LOGIN
        if isinstance(account, m.Account):
            self.bind_account(account)
            self.log.info("{peer}: logged in as {name!r} ({why})", peer=self.peer, name=name, why=why)
        elif account is None:
            self.log.error("{peer}: {why} names SC account {name!r}, which does not exist; the device must log "
                           "in with 93", peer=self.peer, why=why, name=name)
        self._drain()

    def bind_account(self, account: m.Account) -> None:
        """Log the terminal in without a 93 (serial line, telnet login, TLS certificate)."""
        if self.upstream is None and passthrough.applies(self.gateway):
            # a door checked the account itself (telnet): it logs in upstream first; input waits
            self.state = State.BINDING
            d = maybeDeferred(passthrough.bound, account, self, account.name)
            d.addCallback(self._bound, account.name, "a login at the door")
            return
        self.bound_account = account
        self._logged_in(account, "")

    def _login(self, request: Any) -> Deferred:
        """The account the 93 logs in as, or None (refused: wrong, unknown, locked out)."""
        if self.bound_account is not None and request.user != self.bound_account.name:
            self.repeated.log(self.log.warn, "93 for another account", self.who,
                              "93 for account {user!r} on a connection bound to {bound!r}; refused",
                              user=request.user, bound=self.bound_account.name)
            return succeed(None)
        self._location = request.location
        if passthrough.applies(self.gateway):
            return passthrough.login(self, request)  # the library system answers the 93
        return self.gateway.authenticate(self.address, request.user, request.password, request.location,
                                         self.who, self.repeated)

    def _login_answered(self, account: m.Account | None) -> bool:
        """The 93's answer, delivered to the login in flight: log in, or not."""
        if account is None:
            return False
        self._logged_in(account, self._location)
        self.log.info("{peer}: logged in as {user!r} (institution {inst!r})", peer=self.peer,
                      user=account.name, inst=account.institution)
        return True

    def _logged_in(self, account: m.Account, location: str) -> None:
        self.account = account
        self.since = self.gateway.reactor.seconds()
        self._ctx = None  # replies now speak for this account
        self._recent = None  # and requests are read in its character set
        if self.state is State.AWAITING_LOGIN:
            self.state = State.READY
        extra = self.gateway.account_settings.get(account.name, DEFAULT_ACCOUNT_SETTINGS)
        self.out.logged_in(account, extra.terminator)
        self.terminal = m.Terminal(account=account.name, institution=account.institution,
                                   location=location or account.terminal_location,
                                   checked_in_ok=extra.checked_in_ok, address=self.address)
        self.timers.logged_in(self.gateway.idle_timeouts.get(account.name))

