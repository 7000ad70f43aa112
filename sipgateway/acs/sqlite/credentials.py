"""Hashed SC passwords and patron PINs, and a cache of successful verifications.

Hashes are PBKDF2-HMAC-SHA256 with a per-row salt, stored as
``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``.  A successful verification is
remembered under an HMAC of (kind, who, secret, stored hash) with a key made fresh for
each process, so ten thousand devices logging in with the same account cost one PBKDF2
run, a changed password misses the cache, and no plain secret is kept in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections import OrderedDict

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


class VerifiedSecrets:
    """Bounded LRU set of (kind, who, secret, stored hash) combinations known to be correct.

    Only successes are cached: a wrong password always costs a full PBKDF2 run (and the
    session's lockout counts it).  Thread-safe (the in-memory database's thread and
    start-up code may both use it).  The database process gets the gateway's key and hands back what it
    verified (``drain``), so the gateway's own quick reads hit the cache too (``learn``).
    """

    def __init__(self, size: int = 8192, key: bytes | None = None, record: bool = False) -> None:
        self.key = key if key is not None else os.urandom(32)
        self._size = size
        self._known: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        #: verifications made here since the last ``drain`` (only when recording)
        self._learned: list[bytes] | None = [] if record else None
        self.hits = 0
        self.misses = 0

    def _token(self, kind: str, who: str, secret: str, stored: str) -> bytes:
        # keyed BLAKE2b (a MAC by design) over length-prefixed parts: one C call per request,
        # which matters because every cached PIN check on the hot path computes one
        data = b"".join(len(b).to_bytes(4, "big") + b for b in
                        (p.encode("utf-8", "surrogatepass") for p in (kind, who, stored, secret)))
        return hashlib.blake2b(data, key=self.key, digest_size=32).digest()

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
        forbid_slow_work()  # not in the reactor thread: hashing takes milliseconds
        if not check_secret(secret, stored):
            return False
        self.learn((token,))
        if self._learned is not None:
            self._learned.append(token)
        return True

    def learn(self, tokens) -> None:
        """Remember verifications made elsewhere under the same key."""
        with self._lock:
            for token in tokens:
                self._known[token] = None
                self._known.move_to_end(token)
            while len(self._known) > self._size:
                self._known.popitem(last=False)

    def drain(self) -> list[bytes]:
        """The tokens verified here since the last call (recording instances only)."""
        if not self._learned:
            return []
        learned, self._learned = self._learned, []
        return learned
