"""Failed secret checks counted per key, and the locks they lead to: the store interface.

The login lockout (lockout.py) and the PIN guard (pinguard.py) keep their counters in an
``AttemptStore``.  The gateway's store is its database (the embedded one's is
``sipgateway/acs/sqlite/attempts.py``), so a lock survives a restart, ``sipgateway
unlock`` clears it on a running gateway, and gateway processes sharing one database count
together.  ``lockout.MemoryAttempts`` keeps the same state in this process only (unit
tests, and an ACS without a database of its own).

A key counts failures in a window that starts with its first failure; the failure that
reaches the key's limit locks it for ``lock_seconds``.  Times are Unix seconds.  No
Twisted at import time: the database process imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

#: the scopes a key belongs to
LOGIN = "login"                  # one address trying one SC account: (address, account)
LOGIN_ADDRESS = "login-address"  # one address, whatever account it tries
LOGIN_ACCOUNT = "login-account"  # one SC account, from any address
PIN_PATRON = "pin-patron"        # one patron's PIN, from any terminal
PIN_TERMINAL = "pin-terminal"    # wrong PINs from one terminal: (address, account)
SCOPES = (LOGIN, LOGIN_ADDRESS, LOGIN_ACCOUNT, PIN_PATRON, PIN_TERMINAL)

#: the most keys a store keeps; past it the keys that expire soonest are forgotten
MAX_KEYS = 100_000


class Key(NamedTuple):
    # a tuple: built and hashed on every login and PIN check
    scope: str
    subject: str           # an address, an account or a patron id
    subject2: str = ""     # the account of an (address, account) pair

    def describe(self) -> str:
        return f"{self.subject} ({self.subject2})" if self.subject2 else self.subject


class Limit(NamedTuple):
    """What one failure of ``key`` counts against: ``max_failures`` (0: counted, never
    locked) in ``window`` seconds lock it for ``lock_seconds``."""

    key: Key
    max_failures: int
    window: float
    lock_seconds: float


@dataclass(frozen=True)
class Record:
    key: Key
    failures: int
    window_start: float
    locked_until: float = 0.0
    last_from: str = ""    # where the last failure came from (an address, or address and account)
    expires_at: float = 0.0  # when the store may forget it

    def locked(self, now: float) -> bool:
        return self.locked_until > now


def counted(old: Record | None, limit: Limit, now: float, source: str) -> tuple[Record, bool]:
    """The record after one more failure of ``limit.key``, and whether that failure locked it."""
    if old is None or (old.window_start + limit.window <= now and old.locked_until <= now):
        failures, start, locked_until = 1, now, 0.0
    else:
        failures, start, locked_until = old.failures + 1, old.window_start, old.locked_until
    locks = 0 < limit.max_failures <= failures and locked_until <= now
    if locks:
        locked_until = now + limit.lock_seconds
    record = Record(limit.key, failures, start, locked_until, source,
                    expires_at=max(start + limit.window, locked_until))
    return record, locks


def patron_subject(patron_id: str) -> str:
    """The key of a patron id: devices and people vary case and pad with spaces."""
    return patron_id.strip().casefold()


def matches(record: Record, subject: str) -> bool:
    """Whether ``sipgateway unlock SUBJECT`` clears ``record``."""
    key = record.key
    return subject in (key.subject, key.subject2) or (key.scope == PIN_PATRON
                                                      and key.subject == patron_subject(subject))


class AttemptStore(Protocol):
    """Where the counters live.  Every method returns a Deferred; ``read`` is on the path
    of every login and PIN check, so it must be a quick read."""

    def clean(self, keys: Sequence[Key]) -> bool:
        """True when none of the keys has a record, as far as this process knows without
        asking the database (False when unsure): the fast path of every check."""

    def read(self, keys: Sequence[Key]) -> Deferred:
        """Fires with ``dict[Key, Record]`` of those keys that have a record."""

    def fail(self, limits: Sequence[Limit], now: float, source: str) -> Deferred:
        """Count one failure of each key; fires with the ``Record``\\ s this failure locked."""

    def reset(self, keys: Sequence[Key]) -> Deferred:
        """Forget the keys (a success)."""

    def unlock(self, subject: str) -> Deferred:
        """Forget every key naming ``subject``; fires with the ``Record``\\ s removed."""

    def records(self) -> Deferred:
        """Fires with every ``Record`` kept."""
