"""What every listener shares: the SC accounts, the ACS, the clock, the lockout table and
the limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sipgateway.acs.interface import IACS, IAccounts
from sipgateway.acs.model import Account
from sipgateway.audit import Audit
from sipgateway.lockout import Lockout, LoginCheck
from sipgateway.repeatlog import RepeatedLines
from sipgateway.replymemo import ReplyMemo
from sipgateway.settings import AccountSettings

DEFAULT_ACS_TIMEOUT = 30.0  # seconds before an unanswered ACS call gets a failure reply


@dataclass
class Gateway:
    #: circulation: every request but the login
    acs: IACS
    reactor: IReactorTime
    #: who may log in (93, telnet, an account a door names); None: the ACS, which then must
    #: provide IAccounts too (the embedded library system does; a forwarding backend does not)
    accounts: IAccounts | None = None
    #: None here means a default Lockout on the same clock (set in __post_init__)
    lockout: Lockout | None = None
    acs_timeout: float = DEFAULT_ACS_TIMEOUT
    #: log every request and reply (masked); off by default because it costs on the hot path
    trace: bool = False
    #: SC account -> idle timeout in seconds, overriding the listener's after login
    idle_timeouts: dict[str, float] = field(default_factory=dict)
    #: SC account -> its settings from the config (reply terminator, checked_in_ok)
    account_settings: dict[str, AccountSettings] = field(default_factory=dict)
    #: how audit lines write the patron: mask, hash (keyed with audit_key) or full
    audit_patron: str = "mask"
    audit_key: str = field(default="", repr=False)
    #: OCLC Wise SIP2+ licences every 98 reports in GG ([gateway] licences)
    licences: tuple[str, ...] = ()
    #: told of every request answered: ``served(session, code, outcome, seconds)`` with outcome
    #: ok, refused (the reply says not done), failed (the ACS broke or did not answer), bad (96)
    #: or replayed (a 97, or a repeated request answered from the last reply); metrics, usage
    observers: list = field(default_factory=list)
    #: the sessions alive now (their doors' connections are open)
    sessions: set = field(default_factory=set)
    log: Logger = field(default_factory=Logger)

    def __post_init__(self) -> None:
        if self.accounts is None:
            if not IAccounts.providedBy(self.acs):
                raise TypeError(f"{self.acs!r} keeps no SC accounts (IAccounts): give the gateway accounts=")
            self.accounts = self.acs
        if self.lockout is None:
            self.lockout = Lockout(self.reactor)
        self._second = -1
        self._now = datetime.fromtimestamp(0)
        self.memo = ReplyMemo(self.reactor)
        #: the audit line of each transaction with side effects
        self.audit = Audit(self.reactor, self.audit_patron, self.audit_key)

    def authenticate(self, address: str, user: str, password: str, location: str, who: str,
                     repeated: RepeatedLines | None = None, accounts: IAccounts | None = None) -> Deferred:
        """Check SC credentials (93 or a telnet login) under the failed-login lockout.
        Fires with the ``Account``, or None when refused (wrong, unknown or locked out).
        ``repeated``: the connection's, when it can send any number of 93s; ``accounts``:
        who checks them, when not the gateway's own (a library system, in pass-through mode)."""
        lockout, accounts = self.lockout, accounts or self.accounts
        assert lockout is not None and accounts is not None  # set in __post_init__

        def try_it(check: LoginCheck) -> Deferred | None:
            if check.locked is not None:
                _warn(self.log, repeated, "login locked out", who,
                      "login for {user!r} refused: locked out ({what}) after too many failures; "
                      "'sipgateway unlock {subject}' lifts it", user=user, what=check.locked.key.describe(),
                      subject=check.locked.key.subject)
                return None
            return maybeDeferred(accounts.authenticate, user, password, location).addCallback(checked, check)

        def checked(account: Account | None, check: LoginCheck) -> Deferred | Account:
            if account is None:
                _warn(self.log, repeated, "login failed", who, "login failed for account {user!r}", user=user)
                return lockout.failed(address, user)  # the reply waits until the failure is counted
            lockout.succeeded(address, user, check)
            return account

        return lockout.check(address, user).addCallback(try_it)

    def now(self) -> datetime:
        """The local time to the second: SIP2 dates have no finer resolution, and one
        datetime per second lets the date text be cached."""
        second = int(self.reactor.seconds())
        if second != self._second:
            self._second = second
            self._now = datetime.fromtimestamp(second)
        return self._now


def _warn(log: Logger, repeated: RepeatedLines | None, kind: str, who: str, format: str, **fields: object) -> None:
    if repeated is None:
        log.warn("{peer}: " + format, peer=who, **fields)
    else:
        repeated.log(log.warn, kind, who, format, **fields)
