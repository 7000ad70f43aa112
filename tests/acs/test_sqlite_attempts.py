"""Failed logins and wrong PINs in the database: counted and locked per key, kept across a
reopen, read as a quick read in the reactor thread, pruned and capped, and lifted by
``unlock`` (which ``sipgateway unlock`` runs on its own connection)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipgateway.acs.sqlite import SQLiteACS, attempts
from sipgateway.acs.sqlite.attemptstore import SQLiteAttempts
from sipgateway.acs.sqlite.schema import connect
from sipgateway.attempts import LOGIN, LOGIN_ACCOUNT, LOGIN_ADDRESS, PIN_PATRON, PIN_TERMINAL, Key, Limit
from tests.acs.childpipe import Children
from tests.acs.conftest import FAST, fired, served, stop

T0 = 1704449700.0
PAIR = Key(LOGIN, "10.0.0.1", "sc1")
ADDRESS = Key(LOGIN_ADDRESS, "10.0.0.1")
ACCOUNT = Key(LOGIN_ACCOUNT, "sc1")


def limits(n: int = 3, window: float = 60.0) -> list[Limit]:
    return [Limit(PAIR, n, window, window), Limit(ADDRESS, 10 * n, window, window),
            Limit(ACCOUNT, 100 * n, window, window)]


@pytest.fixture
def acs(database: str):
    library = SQLiteACS.synchronous(database, hash_iterations=FAST)
    yield library
    library.close()


def test_failures_are_counted_and_lock_at_the_limit(acs: SQLiteACS) -> None:
    store = acs.attempt_store()
    assert fired(store.read([PAIR, ADDRESS])) == {}
    assert fired(store.fail(limits(), T0, "10.0.0.1")) == []
    assert fired(store.fail(limits(), T0 + 1, "10.0.0.1")) == []
    locked = fired(store.fail(limits(), T0 + 2, "10.0.0.1"))
    assert [r.key for r in locked] == [PAIR] and locked[0].locked_until == T0 + 2 + 60
    found = fired(store.read([PAIR, ADDRESS, ACCOUNT, Key(LOGIN, "10.0.0.2", "sc1")]))
    assert {k: (r.failures, r.locked(T0 + 3)) for k, r in found.items()} == {
        PAIR: (3, True), ADDRESS: (3, False), ACCOUNT: (3, False)}
    fired(store.reset([PAIR]))
    assert set(fired(store.read([PAIR, ADDRESS]))) == {ADDRESS}


def test_locks_are_kept_in_the_file_across_a_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "gw.sqlite3")
    first = SQLiteACS.synchronous(path, hash_iterations=FAST)
    for n in range(3):
        fired(first.attempt_store().fail(limits(), T0 + n, "10.0.0.1"))
    fired(first.close())
    again = SQLiteACS.synchronous(path, hash_iterations=FAST)
    assert fired(again.attempt_store().read([PAIR]))[PAIR].locked(T0 + 10)
    fired(again.close())


def test_reading_is_a_quick_read_in_the_reactor_thread_and_failing_a_write(tmp_path: Path,
                                                                           children: Children) -> None:
    acs = served(tmp_path / "gw.sqlite3", children)
    store = acs.attempt_store()
    d = store.fail(limits(1), T0, "10.0.0.1")
    assert not d.called                                 # a write: the database process commits it
    children.pump_until(lambda: d.called)
    assert [r.key for r in fired(d)] == [PAIR]
    read = store.read([PAIR, ADDRESS])                   # answered at once, here
    assert read.called and fired(read)[PAIR].locked(T0 + 1)
    assert acs.runner.stats.jobs == 1                    # only the write reached the database process
    stop(acs, children)


def test_expired_rows_are_pruned_by_later_failures(acs: SQLiteACS) -> None:
    store = acs.attempt_store()
    for n in range(50):
        fired(store.fail([Limit(Key(LOGIN_ADDRESS, f"10.0.0.{n}"), 10, 60, 60)], T0, "x"))
    fired(store.fail([Limit(Key(LOGIN_ADDRESS, "10.9.9.9"), 10, 60, 60)], T0 + 61, "x"))
    assert [r.key.subject for r in fired(store.records())] == ["10.9.9.9"]


def test_a_lock_outlives_its_counting_window_until_it_ends(acs: SQLiteACS) -> None:
    store = acs.attempt_store()
    lock = [Limit(PAIR, 1, window=60, lock_seconds=600)]
    fired(store.fail(lock, T0, "a"))
    fired(store.fail([Limit(ADDRESS, 10, 60, 60)], T0 + 300, "a"))  # prunes what has expired
    assert fired(store.read([PAIR]))[PAIR].locked(T0 + 300)


def test_the_table_is_capped(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "cap.sqlite3"))
    SQLiteACS.synchronous(str(tmp_path / "cap.sqlite3")).close()
    conn.execute("BEGIN")
    for n in range(600):
        attempts.fail(conn, [Limit(Key(LOGIN_ADDRESS, f"a{n}"), 10, 60 + n, 60 + n)], T0, "x", max_keys=100)
    conn.execute("COMMIT")
    count = conn.execute("SELECT count(*) FROM auth_failures").fetchone()[0]
    assert count <= 100 + attempts.CAP_EVERY
    kept = {r[0] for r in conn.execute("SELECT subject FROM auth_failures")}
    assert "a599" in kept and "a0" not in kept  # those expiring soonest went first
    conn.close()


def test_unlock_lifts_everything_naming_an_address_an_account_or_a_patron(acs: SQLiteACS) -> None:
    store = acs.attempt_store()
    one = [Limit(PAIR, 1, 60, 60), Limit(ADDRESS, 1, 60, 60), Limit(ACCOUNT, 1, 60, 60)]
    fired(store.fail(one, T0, "10.0.0.1"))
    fired(store.fail([Limit(Key(LOGIN, "10.0.0.2", "sc1"), 1, 60, 60)], T0, "10.0.0.2"))
    fired(store.fail([Limit(Key(PIN_PATRON, "djfiander"), 1, 60, 60),
                      Limit(Key(PIN_TERMINAL, "10.0.0.1", "sc1"), 1, 60, 60)], T0, "10.0.0.1 (sc1)"))
    removed = fired(store.unlock("10.0.0.1"))
    assert {r.key for r in removed} == {PAIR, ADDRESS, Key(PIN_TERMINAL, "10.0.0.1", "sc1")}
    assert {r.key for r in fired(store.unlock(" DJFiander "))} == {Key(PIN_PATRON, "djfiander")}
    assert {r.key for r in fired(store.unlock("sc1"))} == {ACCOUNT, Key(LOGIN, "10.0.0.2", "sc1")}
    assert fired(store.records()) == []
    assert fired(store.unlock("sc1")) == []


def test_keys_found_without_a_record_are_not_read_again_for_a_second(acs: SQLiteACS) -> None:
    now = [100.0]
    store = SQLiteAttempts(acs, clean_ttl=1.0, clock=lambda: now[0])
    reads: list[str] = []
    acs.runner.conn.set_trace_callback(lambda sql: reads.append(sql) if "FROM auth_failures" in sql else None)
    assert fired(store.read([PAIR, ADDRESS])) == {}
    assert fired(store.read([PAIR, ADDRESS])) == {} and len(reads) == 1   # from memory
    fired(store.fail([Limit(PAIR, 1, 60, 60)], T0, "10.0.0.1"))          # a failure here: read again
    assert PAIR in fired(store.read([PAIR, ADDRESS]))
    reads.clear()
    other = SQLiteAttempts(acs, clock=lambda: now[0])                     # another process, as it were
    fired(other.fail([Limit(ADDRESS, 1, 60, 60)], T0, "10.0.0.1"))
    assert ADDRESS not in fired(store.read([ADDRESS]))                    # not seen within the second ...
    now[0] += 1.0
    assert ADDRESS in fired(store.read([ADDRESS]))                        # ... seen after it
    acs.runner.conn.set_trace_callback(None)
