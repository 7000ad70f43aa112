"""The failed-login lockout: keyed on (address, account), on the address, and on the account
at a much higher count; kept in a store (memory here, the database in
tests/acs/test_sqlite_attempts.py); logged once when a lock starts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure

from sipgateway.acs import model as m
from sipgateway.attempts import LOGIN, LOGIN_ACCOUNT, LOGIN_ADDRESS, Key, Limit, counted
from sipgateway.gateway import Gateway
from sipgateway.lockout import Lockout, MemoryAttempts
from tests.fakes import FakeACS

T0 = 1704449700.0


def result(d: Deferred):
    out: list = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []
    observer = lambda event: lines.append(formatEvent(event))  # noqa: E731
    globalLogPublisher.addObserver(observer)
    yield lines
    globalLogPublisher.removeObserver(observer)


class World:
    def __init__(self, **limits) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.acs = FakeACS()
        self.lockout = Lockout(self.clock, **limits)
        self.gateway = Gateway(acs=self.acs, reactor=self.clock, lockout=self.lockout)

    def login(self, address: str, user: str = "sc1", password: str = "pass1") -> m.Account | None:
        return result(self.gateway.authenticate(address, user, password, "", address))

    def checked(self) -> int:
        return len([c for c in self.acs.calls if c[0] == "authenticate"])


def test_a_dozen_wrong_passwords_lock_out_that_device_only() -> None:
    w = World()
    for _ in range(12):
        assert w.login("10.0.0.1", password="wrong") is None
    assert w.checked() == 10                       # the last two were refused unchecked
    assert w.login("10.0.0.1") is None             # locked: the right password too
    assert w.login("10.0.0.2") is not None         # every other device logs in
    assert w.login("10.0.0.1", user="ascii", password="pw") is not None  # and this one with another account


def test_an_address_trying_many_accounts_is_locked_out() -> None:
    w = World(max_failures=10, max_per_address=30)
    for n in range(30):
        assert w.login("10.0.0.9", user=f"guess{n}", password="x") is None
    assert w.login("10.0.0.9") is None
    assert w.login("10.0.0.8") is not None


def test_the_account_is_locked_for_everyone_only_at_its_own_much_higher_count() -> None:
    w = World(max_failures=10, max_per_address=30, max_per_account=100)
    for n in range(99):
        assert w.login(f"10.1.{n // 250}.{n % 250}", password="wrong") is None
    assert w.login("10.9.9.9") is not None         # 99 failures from many addresses: not yet
    assert w.login("10.1.1.1", password="wrong") is None
    assert w.login("10.9.9.9") is None             # the 100th locks the account
    w.clock.advance(3600)
    assert w.login("10.9.9.9") is not None         # for lockout_seconds


def test_a_lock_ends_and_the_count_starts_again() -> None:
    w = World(max_failures=3, max_per_address=0, max_per_account=0, lock_seconds=60)
    for _ in range(3):
        w.login("a", password="wrong")
    assert w.login("a") is None
    w.clock.advance(61)
    w.login("a", password="wrong")                 # one failure after the lock: counted afresh
    assert w.login("a") is not None


def test_failures_outside_the_window_are_not_added_up() -> None:
    w = World(max_failures=3, max_per_address=0, max_per_account=0, lock_seconds=60)
    w.login("a", password="wrong")
    w.login("a", password="wrong")
    w.clock.advance(61)
    w.login("a", password="wrong")
    w.login("a", password="wrong")
    assert w.login("a") is not None


def test_a_success_clears_the_device_count_but_not_the_address_or_account_counts() -> None:
    w = World(max_failures=3, max_per_address=5, max_per_account=100)
    w.login("a", password="wrong")
    w.login("a", password="wrong")
    assert w.login("a") is not None
    records = {r.key.scope: r for r in result(w.lockout.store.records())}
    assert set(records) == {LOGIN_ADDRESS, LOGIN_ACCOUNT}   # the pair's count is gone
    w.login("a", password="wrong")
    w.login("a", password="wrong")
    assert w.login("a") is not None                # 2 since the success: under 3
    w.login("a", password="wrong")
    assert w.login("a", user="ascii", password="pw") is None  # the address reached 5 in all


def test_a_success_after_no_failure_writes_nothing() -> None:
    w = World()
    writes: list[str] = []
    store = w.lockout.store
    original_reset = store.reset
    store.reset = lambda keys: (writes.append("reset"), original_reset(keys))[1]  # type: ignore[method-assign]
    for _ in range(5):
        assert w.login("a") is not None
    assert writes == [] and result(store.records()) == []


def test_limits_of_zero_turn_the_lockout_off() -> None:
    w = World(max_failures=0, max_per_address=0, max_per_account=0)
    for _ in range(50):
        w.login("a", password="wrong")
    assert w.login("a") is not None
    assert result(w.lockout.store.records()) == []


def test_the_lock_is_logged_once_naming_the_key_and_how_to_lift_it(logged: list[str]) -> None:
    w = World(max_failures=3, max_per_address=0, max_per_account=0)
    for _ in range(6):
        w.login("10.0.0.1", password="s3cret")
    locks = [line for line in logged if "login locked out" in line]
    assert locks == ["login locked out for address and account 10.0.0.1 (sc1) after 3 failed logins "
                     "(last from 10.0.0.1) for 3600 s; 'sipgateway unlock 10.0.0.1' lifts it"]
    refused = [line for line in logged if "refused: locked out" in line]
    assert len(refused) == 3 and "sipgateway unlock 10.0.0.1" in refused[0]
    assert not any("s3cret" in line for line in logged)


def test_a_broken_store_refuses_the_login_with_a_failure() -> None:
    w = World()

    class Broken(MemoryAttempts):
        def read(self, keys):
            from twisted.internet.defer import fail
            return fail(RuntimeError("database gone"))

    w.lockout.store = Broken()
    with pytest.raises(RuntimeError):
        w.login("a")
    assert w.checked() == 0


def test_counted_starts_a_window_locks_at_the_limit_and_says_so_once() -> None:
    limit = Limit(Key(LOGIN, "a", "sc1"), 3, window=60, lock_seconds=600)
    r1, locks1 = counted(None, limit, 100.0, "a")
    r2, locks2 = counted(r1, limit, 110.0, "a")
    r3, locks3 = counted(r2, limit, 120.0, "a")
    assert (r3.failures, r3.window_start, r3.locked_until, r3.expires_at) == (3, 100.0, 720.0, 720.0)
    assert (locks1, locks2, locks3) == (False, False, True)
    r4, locks4 = counted(r3, limit, 130.0, "a")
    assert not locks4 and r4.locked_until == 720.0  # already locked: not locked again
    assert counted(r4, limit, 721.0, "a")[0].failures == 1
    assert limit.key.describe() == "a (sc1)" and Key(LOGIN_ACCOUNT, "sc1").describe() == "sc1"


def test_the_memory_store_is_bounded() -> None:
    store = MemoryAttempts(max_keys=100)
    for n in range(1000):
        store.fail([Limit(Key(LOGIN_ADDRESS, f"10.0.{n // 256}.{n % 256}"), 10, 60, 60)], T0 + n, "x")
    assert len(result(store.records())) <= 100
