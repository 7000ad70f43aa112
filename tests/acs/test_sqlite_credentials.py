"""Hashed secrets and the cache of successful verifications."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from sipgateway.acs.model import Account
from sipgateway.acs.sqlite.credentials import VerifiedSecrets, check_secret, hash_secret
from tests.acs.childpipe import Children
from tests.acs.conftest import Library, fired, served, stop

WAIT = 30.0  # seconds a thread may take: only reached when something is broken


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


def verify_at_once(n: int, secret: str, stored: str) -> tuple[VerifiedSecrets, list[str], list[bool]]:
    """``n`` threads verifying ``secret`` at once; the hash is held until the other n - 1 wait
    for it.  The cache, the secrets hashed and the outcomes."""
    runs: list[str] = []

    def slow_check(secret: str, stored: str) -> bool:
        runs.append(secret)
        if len(runs) == 1:
            with cache._changed:
                assert cache._changed.wait_for(lambda: cache.waiting == n - 1, timeout=WAIT)
        return check_secret(secret, stored)

    cache = VerifiedSecrets(check=slow_check)
    outcomes: list[bool] = []
    threads = [threading.Thread(target=lambda: outcomes.append(cache.verify("sc", "sc1", secret, stored)))
               for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    return cache, runs, outcomes


@pytest.mark.parametrize(("secret", "right"), [("pass1", True), ("wrong", False)])
def test_concurrent_identical_verifications_share_one_hash(secret: str, right: bool) -> None:
    """One PBKDF2 run for eight at once, "yes" and "no" alike; only the "yes" outlives it."""
    stored = hash_secret("pass1", 1000)
    cache, runs, outcomes = verify_at_once(8, secret, stored)
    assert runs == [secret] and cache.computed == 1 and cache.shared == 7
    assert outcomes == [right] * 8
    assert cache.verify("sc", "sc1", secret, stored) is right
    assert cache.computed == (1 if right else 2)  # a "no" is not kept: the next one hashes again


def login_storm(tmp_path: Path, children: Children, password: str) -> tuple[list, int, int]:
    """500 logins with one account at once on a cold cache, through the database process:
    their answers, the jobs the process ran (only there is a password hashed: a read in the
    reactor thread that would hash moves there) and the reads that moved."""
    acs = served(tmp_path / "storm.sqlite3", children)
    answers: list = []
    for _ in range(500):
        acs.authenticate("sc1", password, "MAIN").addBoth(answers.append)
    children.pump_until(lambda: len(answers) == 500, "the logins")
    jobs, moved = acs.runner.stats.jobs, acs.runner._reader.moved
    stop(acs, children)
    return answers, jobs, moved


def test_a_login_storm_costs_one_hash(tmp_path: Path, children: Children) -> None:
    answers, jobs, moved = login_storm(tmp_path, children, "pass1")
    assert len(answers) == 500 and all(isinstance(a, Account) and a.name == "sc1" for a in answers)
    assert jobs == 1 and moved == 1


def test_a_storm_of_the_same_wrong_password_costs_one_hash(tmp_path: Path, children: Children) -> None:
    # after a password change every device tries the old one: one "no", shared
    answers, jobs, moved = login_storm(tmp_path, children, "old-password")
    assert answers == [None] * 500
    assert jobs == 1 and moved == 1


def test_fingerprints_keep_the_parts_apart() -> None:
    """The parts are length-prefixed: moving characters between them changes the token."""
    from sipgateway.acs.sqlite.credentials import VerifiedSecrets

    s = VerifiedSecrets(key=b"k" * 32)
    assert s.fingerprint("pin", "ab", "c") != s.fingerprint("pin", "a", "bc")
    assert s.fingerprint("pin", "1:2", "3") != s.fingerprint("pin", "1", "2:3")
    assert s.fingerprint("pin", "ab", "c") == VerifiedSecrets(key=b"k" * 32).fingerprint("pin", "ab", "c")
