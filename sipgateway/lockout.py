"""Failed-login lockout: after too many failures from one address or for one account,
further tries are refused for a while (answered as a failed login)."""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

DEFAULT_MAX_FAILURES = 10
DEFAULT_LOCK_SECONDS = 3600.0
_MAX_TRACKED = 100_000  # bound the tables against a scan from many addresses


@dataclass
class _Record:
    failures: int = 0
    locked_until: float = 0.0


@dataclass
class Lockout:
    clock: IReactorTime
    max_failures: int = DEFAULT_MAX_FAILURES
    lock_seconds: float = DEFAULT_LOCK_SECONDS
    _by_address: dict[str, _Record] = field(default_factory=dict)
    _by_account: dict[str, _Record] = field(default_factory=dict)
    log = Logger()

    def allowed(self, address: str, account: str) -> bool:
        """May a login from ``address`` for ``account`` be tried now?"""
        if self.max_failures <= 0:
            return True
        now = self.clock.seconds()
        for table, key in ((self._by_address, address), (self._by_account, account)):
            record = table.get(key)
            if record is not None and record.locked_until > now:
                return False
        return True

    def failed(self, address: str, account: str) -> None:
        if self.max_failures <= 0:
            return
        now = self.clock.seconds()
        for table, key, what in ((self._by_address, address, "address"), (self._by_account, account, "account")):
            if key not in table and len(table) >= _MAX_TRACKED:
                self._prune(table, now)
            record = table.setdefault(key, _Record())
            if record.locked_until and record.locked_until <= now:
                record.failures = 0
                record.locked_until = 0.0
            record.failures += 1
            if record.failures >= self.max_failures and record.locked_until <= now:
                record.locked_until = now + self.lock_seconds
                self.log.warn(
                    "login locked out for {what} {key!r} after {n} failed logins (last from {address}) "
                    "for {seconds:.0f} s",
                    what=what, key=key, n=record.failures, address=address, seconds=self.lock_seconds,
                )

    def succeeded(self, address: str, account: str) -> None:
        self._by_address.pop(address, None)
        self._by_account.pop(account, None)

    @staticmethod
    def _prune(table: dict[str, _Record], now: float) -> None:
        for key in [k for k, r in table.items() if r.locked_until <= now]:
            del table[key]
        if len(table) >= _MAX_TRACKED:  # still full of live locks: forget the oldest half
            for key in list(table)[: len(table) // 2]:
                del table[key]
