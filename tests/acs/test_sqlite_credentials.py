"""Hashed secrets and the cache of successful verifications."""

from __future__ import annotations

from sipgateway.acs.sqlite.credentials import VerifiedSecrets, check_secret, hash_secret
from tests.acs.conftest import Library, fired


def test_hash_is_salted_and_checks() -> None:
    a, b = hash_secret("1234", 1000), hash_secret("1234", 1000)
    assert a != b and a.startswith("pbkdf2_sha256$1000$") and "1234" not in a.split("$", 2)[2]
    assert check_secret("1234", a) and check_secret("1234", b)
    assert not check_secret("1235", a) and not check_secret("", a)


def test_malformed_stored_values_never_match() -> None:
    for stored in ("", "plain", "md5$1$aa$bb", "pbkdf2_sha256$x$aa$bb", "pbkdf2_sha256$0$aa$bb",
                   "pbkdf2_sha256$1000$zz$bb", "pbkdf2_sha256$1000$aa"):
        assert not check_secret("1234", stored), stored


def test_cache_remembers_successes_only() -> None:
    cache = VerifiedSecrets()
    stored = hash_secret("pass1", 1000)
    assert cache.verify("sc", "sc1", "pass1", stored) and cache.misses == 1
    for _ in range(100):
        assert cache.verify("sc", "sc1", "pass1", stored)
    assert cache.hits == 100 and cache.misses == 1
    assert not cache.verify("sc", "sc1", "wrong", stored)
    assert not cache.verify("sc", "sc1", "wrong", stored)
    assert cache.misses == 3  # failures are never cached
    assert not cache.verify("sc", "sc1", "pass1", hash_secret("other", 1000))  # a changed password misses
    assert not cache.verify("sc", "sc1", "pass1", None)


def test_cache_entries_are_bound_to_kind_and_name() -> None:
    cache = VerifiedSecrets()
    stored = hash_secret("1234", 1000)
    assert cache.verify("patron", "100001", "1234", stored)
    hits = cache.hits
    assert cache.verify("patron", "100002", "1234", stored) and cache.hits == hits  # a separate entry


def test_cache_is_bounded() -> None:
    cache = VerifiedSecrets(size=3)
    stored = {n: hash_secret(str(n), 1000) for n in range(5)}
    for n in range(5):
        cache.verify("p", str(n), str(n), stored[n])
    assert len(cache._known) == 3
    hits = cache.hits
    cache.verify("p", "0", "0", stored[0])   # evicted: verified again, not a hit
    assert cache.hits == hits


def test_ten_thousand_logins_cost_one_hash(lib: Library) -> None:
    secrets = lib.acs.ctx.secrets
    misses = secrets.misses
    for _ in range(10_000):
        assert fired(lib.acs.authenticate("sc1", "pass1", "MAIN")) is not None
    assert secrets.misses - misses == 1
