"""Failed-login lockout for the 93 and the telnet login.

Failures are counted per (address, account), per address and per account, each against
its own limit, in an ``AttemptStore`` (attempts.py): the gateway's database, so a lock
survives a restart and ``sipgateway unlock`` lifts it on a running gateway.  A device
that keeps failing locks only itself (its address and that account); a flood of
failures from many addresses locks the account, but only at a much higher count, so
that nobody can lock every kiosk out with a dozen wrong passwords.  Checking a login
is one quick read; only failures (and a success after failures) write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.attempts import (
    LOGIN,
    LOGIN_ACCOUNT,
    LOGIN_ADDRESS,
    MAX_KEYS,
    AttemptStore,
    Key,
    Limit,
    Record,
    counted,
    matches,
)

DEFAULT_MAX_FAILURES = 10       # per (address, account)
DEFAULT_MAX_PER_ADDRESS = 30    # per address, whatever accounts it tries
DEFAULT_MAX_PER_ACCOUNT = 100   # per account, from all addresses together
DEFAULT_LOCK_SECONDS = 3600.0   # the counting window and the length of a lock

log = Logger()

_WHAT = {LOGIN: "address and account", LOGIN_ADDRESS: "address", LOGIN_ACCOUNT: "account"}


@dataclass(frozen=True)
class LoginCheck:
    """What the store said before a login was tried."""

    #: the record that refuses the login now, or None
    locked: Record | None
    records: dict[Key, Record] = field(default_factory=dict)


class Lockout:
    def __init__(self, clock: IReactorTime, store: AttemptStore | None = None, *,
                 max_failures: int = DEFAULT_MAX_FAILURES, max_per_address: int = DEFAULT_MAX_PER_ADDRESS,
                 max_per_account: int = DEFAULT_MAX_PER_ACCOUNT,
                 lock_seconds: float = DEFAULT_LOCK_SECONDS) -> None:
        self.clock = clock
        self.store: AttemptStore = store if store is not None else MemoryAttempts()
        self.max_failures = max_failures
        self.max_per_address = max_per_address
        self.max_per_account = max_per_account
        self.lock_seconds = lock_seconds
        #: locks imposed since start (the admin listener's /metrics)
        self.locks = 0

    def _limits(self, address: str, account: str) -> list[Limit]:
        """The keys a login counts against; a limit of 0 turns its key off."""
        if self.lock_seconds <= 0:
            return []
        window = self.lock_seconds
        wanted = ((Key(LOGIN, address, account), self.max_failures),
                  (Key(LOGIN_ADDRESS, address), self.max_per_address),
                  (Key(LOGIN_ACCOUNT, account), self.max_per_account))
        return [Limit(key, n, window, self.lock_seconds) for key, n in wanted if n > 0]

    def check(self, address: str, account: str) -> Deferred:
        """Fires with a ``LoginCheck``: may a login from ``address`` for ``account`` be tried now?"""
        limits = self._limits(address, account)
        if not limits:
            return succeed(LoginCheck(None))

        def judged(records: dict[Key, Record]) -> LoginCheck:
            now = self.clock.seconds()
            locked = [r for r in records.values() if r.locked(now)]
            return LoginCheck(max(locked, key=lambda r: r.locked_until) if locked else None, records)

        return self.store.read([limit.key for limit in limits]).addCallback(judged)

    def failed(self, address: str, account: str) -> Deferred:
        """Count a failed login; fires (with None) once it is counted.  A store that fails
        is logged: the login was refused anyway."""
        limits = self._limits(address, account)
        if not limits:
            return succeed(None)
        d = self.store.fail(limits, self.clock.seconds(), address)
        return d.addCallbacks(self._log_locks, _store_failed, errbackArgs=("counting a failed login",))

    def succeeded(self, address: str, account: str, check: LoginCheck) -> Deferred:
        """A login worked: forget the failures of this address with this account (only
        these: a success must not wipe out what an attacker piled up elsewhere)."""
        pair = Key(LOGIN, address, account)
        if pair not in check.records:
            return succeed(None)  # nothing to forget: no write
        return self.store.reset([pair]).addErrback(_store_failed, "clearing failed logins")

    def _log_locks(self, locked: Sequence[Record]) -> None:
        self.locks += len(locked)
        for record in locked:
            key = record.key
            log.warn("login locked out for {what} {who} after {n} failed logins (last from {source}) "
                     "for {seconds:.0f} s; 'sipgateway unlock {subject}' lifts it",
                     what=_WHAT.get(key.scope, key.scope), who=key.describe(), n=record.failures,
                     source=record.last_from, seconds=record.locked_until - self.clock.seconds(),
                     subject=key.subject)


def _store_failed(failure: Failure, doing: str) -> None:
    log.failure("lockout store failed while {doing}", failure, doing=doing)


class MemoryAttempts:
    """An ``AttemptStore`` in this process's memory (tests, and an ACS without a database),
    bounded to ``max_keys``."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self.max_keys = max_keys
        self._records: dict[Key, Record] = {}

    def clean(self, keys: Sequence[Key]) -> bool:
        return not any(key in self._records for key in keys)

    def read(self, keys: Sequence[Key]) -> Deferred:
        return succeed({key: self._records[key] for key in keys if key in self._records})

    def fail(self, limits: Sequence[Limit], now: float, source: str) -> Deferred:
        locked = []
        for limit in limits:
            if limit.key not in self._records and len(self._records) >= self.max_keys:
                self._prune(now)
            record, locks = counted(self._records.get(limit.key), limit, now, source)
            self._records[limit.key] = record
            if locks:
                locked.append(record)
        return succeed(locked)

    def reset(self, keys: Sequence[Key]) -> Deferred:
        for key in keys:
            self._records.pop(key, None)
        return succeed(None)

    def unlock(self, subject: str) -> Deferred:
        removed = [r for r in self._records.values() if matches(r, subject)]
        for record in removed:
            del self._records[record.key]
        return succeed(removed)

    def records(self) -> Deferred:
        return succeed(list(self._records.values()))

    def _prune(self, now: float) -> None:
        records = self._records
        for key in [k for k, r in records.items() if r.expires_at <= now]:
            del records[key]
        if len(records) >= self.max_keys:  # still full of live keys: forget those expiring soonest
            for record in sorted(records.values(), key=lambda r: r.expires_at)[: len(records) // 10 + 1]:
                del records[record.key]
