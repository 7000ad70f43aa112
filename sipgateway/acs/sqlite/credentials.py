"""Hashed SC passwords and patron PINs, and a cache of successful verifications.

Hashes are PBKDF2-HMAC-SHA256 with a per-row salt, stored as
``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``.  A successful verification is
remembered under an HMAC of (kind, who, secret, stored hash) with a key made fresh for
each process, so ten thousand devices logging in with the same account cost one PBKDF2
run, a changed password misses the cache, and no plain secret is kept in memory.
Verifications of the same secret running at the same time share one run.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

from sipgateway.acs.sqlite.errors import forbid_slow_work

ALGORITHM = "pbkdf2_sha256"
#: modest on purpose: a login on a cold cache costs a few milliseconds of the database process
DEFAULT_ITERATIONS = 20_000
SALT_BYTES = 16


def hash_secret(secret: str, iterations: int = DEFAULT_ITERATIONS) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, iterations)
    return f"{ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


def check_secret(secret: str, stored: str) -> bool:
    """True when ``secret`` matches ``stored``; a malformed stored value never matches."""
    try:
        algorithm, iterations, salt, digest = stored.split("$")
        if algorithm != ALGORITHM:
            return False
        rounds = int(iterations)
        if not 1 <= rounds <= 10_000_000:
            return False
        expected = bytes.fromhex(digest)
        computed = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), bytes.fromhex(salt), rounds)
    except (ValueError, TypeError, UnicodeEncodeError):
        return False
    return hmac.compare_digest(computed, expected)


class _Flight:
    """One hash being computed; identical verifications wait for its outcome."""

    __slots__ = ("done", "ok")

    def __init__(self) -> None:
        self.done = False
        self.ok = False


class VerifiedSecrets:
    """Bounded LRU set of (kind, who, secret, stored hash) combinations known to be correct,
    and single flight for the hashes being computed.

    Only successes are kept: a wrong password costs a full PBKDF2 run (and the lockout
    counts it).  Concurrent identical verifications share one run (single flight): the
    second waits for the first one's outcome, a "no" included, and nothing but a "yes"
    outlives the run.  Thread-safe, so that any thread may verify.  The database process
    gets the gateway's key and hands back what it verified (``drain``), so the gateway's
    own quick reads hit the cache too (``learn``).
    """

    def __init__(self, size: int = 8192, key: bytes | None = None, record: bool = False,
                 check: Callable[[str, str], bool] = check_secret) -> None:
        self.key = key if key is not None else os.urandom(32)
        self._size = size
        self._check = check
        self._known: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        #: signalled whenever a flight lands or gets a waiter
        self._changed = threading.Condition(self._lock)
        self._flying: dict[bytes, _Flight] = {}
        #: verifications made here since the last ``drain`` (only when recording)
        self._learned: list[bytes] | None = [] if record else None
        self.hits = 0
        self.misses = 0
        #: PBKDF2 runs made, verifications that waited for another one's run, and those waiting now
        self.computed = 0
        self.shared = 0
        self.waiting = 0

    def _token(self, kind: str, who: str, secret: str, stored: str) -> bytes:
        # keyed BLAKE2b (a MAC by design) over the parts, each prefixed with its length in
        # characters (so no two tuples give the same text): one format, one encode, one hash,
        # which matters because every cached PIN check on the hot path computes one
        data = f"{len(kind)}:{kind}{len(who)}:{who}{len(stored)}:{stored}{len(secret)}:{secret}"
        return hashlib.blake2b(data.encode("utf-8", "surrogatepass"), key=self.key, digest_size=32).digest()

    def fingerprint(self, kind: str, who: str, secret: str | None) -> bytes | None:
        """An in-memory stand-in for a secret (cache keys): an HMAC under this process's key."""
        return None if secret is None else self._token(kind, who, secret, "")

    def verify(self, kind: str, who: str, secret: str, stored: str | None) -> bool:
        if not stored:
            return False
        token = self._token(kind, who, secret, stored)
        with self._lock:
            if token in self._known:
                self._known.move_to_end(token)
                self.hits += 1
                return True
            self.misses += 1
        forbid_slow_work()  # not in the reactor thread: hashing (or waiting for a hash) takes milliseconds
        with self._lock:
            if token in self._known:  # verified while we got here
                return True
            flight = self._flying.get(token)
            if flight is not None:
                self.waiting += 1
                self.shared += 1
                self._changed.notify_all()
                self._changed.wait_for(lambda: flight.done)
                self.waiting -= 1
                return flight.ok
            flight = self._flying[token] = _Flight()
            self.computed += 1
        ok = False
        try:
            ok = self._check(secret, stored)
        finally:
            with self._lock:
                flight.ok, flight.done = ok, True
                del self._flying[token]
                if ok:
                    self._remember(token)
                    if self._learned is not None:
                        self._learned.append(token)
                self._changed.notify_all()
        return ok

    def learn(self, tokens) -> None:
        """Remember verifications made elsewhere under the same key."""
        with self._lock:
            for token in tokens:
                self._remember(token)

    def _remember(self, token: bytes) -> None:
        self._known[token] = None
        self._known.move_to_end(token)
        while len(self._known) > self._size:
            self._known.popitem(last=False)

    def drain(self) -> list[bytes]:
        """The tokens verified here since the last call (recording instances only)."""
        with self._lock:
            if not self._learned:
                return []
            learned, self._learned = self._learned, []
        return learned
