"""PostgreSQL as the gateway's database: what several database processes sharing one
database need (one checkout of an item wins, lockouts and repeated requests hold across
them, a batch that loses a race is run again), the SQL the connection translates, the
schema each migration becomes, start-up on an empty database, and passwords."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.postgresql import connection as pgconnection
from sipgateway.acs.postgresql import schema as pgschema
from sipgateway.acs.postgresql import target
from sipgateway.acs.postgresql.connection import ID_TABLES, WRITE_LOCK, translate
from sipgateway.acs.sqlite import ACSUnavailable, SQLiteACS, health, open_sqlite_acs
from sipgateway.acs.sqlite.batch import BatchStats, Job, run_batch
from sipgateway.acs.sqlite.errors import OutcomeUnknown, SerializationConflict
from sipgateway.acs.sqlite.schema import MIGRATIONS, connect
from sipgateway.attempts import LOGIN, Key, Limit
from sipgateway.config import ConfigError, load
from tests.acs.childpipe import Children
from tests.acs.conftest import FAST, MAIN, fired, served, stop
from tests.pgserver import PostgresServer

ITEMS = ("200001", "200002", "200003", "1565921879", "0440242746", "660")


def checkout(acs: SQLiteACS, patron: str, item: str, pin: str) -> object:
    return acs.checkout(MAIN, rq.CheckoutRequest(patron_id=patron, item_id=item, patron_pin=pin))


@pytest.fixture
def two(postgres_url: str, children: Children):
    """Two database processes (as two gateways or two workers have) on one database."""
    first = served(postgres_url, children)
    second = served(postgres_url, children)
    yield first, second
    stop(first, children)
    stop(second, children)


def test_two_database_processes_checking_out_one_item_at_once_lend_it_once(two, children: Children,
                                                                          postgres_url: str) -> None:
    first, second = two
    for item in ITEMS:
        # the same reactor turn: both calls reach their processes together
        a = checkout(first, "100001", item, "1234")
        b = checkout(second, "djfiander", item, "6789")
        children.pump_until(lambda a=a, b=b: a.called and b.called, f"checkouts of {item}")
        results = [fired(a), fired(b)]
        assert sorted(r.ok for r in results) == [False, True], (item, results)
        loser = next(r for r in results if not r.ok)
        assert loser.messages.screen, loser  # refused with a reason, not failed
    conn = connect(postgres_url)
    try:
        open_loans = conn.execute("SELECT i.barcode, count(*) FROM loans l JOIN items i ON i.id = l.item_id "
                                  "WHERE l.returned_at IS NULL GROUP BY i.barcode").fetchall()
        assert sorted(tuple(r) for r in open_loans) == sorted((item, 1) for item in ITEMS)
        assert conn.execute("SELECT count(*) FROM items WHERE status = 'charged'").fetchone()[0] == len(ITEMS)
    finally:
        conn.close()


def test_a_checkout_repeated_through_the_other_process_is_one_loan(two, children: Children,
                                                                   postgres_url: str) -> None:
    first, second = two
    a = checkout(first, "100001", "200002", "1234")
    children.pump_until(lambda: a.called)
    # the reply was lost; the kiosk reconnects, and lands on the other gateway
    b = checkout(second, "100001", "200002", "1234")
    children.pump_until(lambda: b.called)
    assert fired(a).ok and fired(b).ok
    conn = connect(postgres_url)
    try:
        assert conn.execute("SELECT count(*) FROM loans l JOIN items i ON i.id = l.item_id "
                            "WHERE i.barcode = '200002'").fetchone()[0] == 1
    finally:
        conn.close()


def test_a_lockout_made_through_one_process_holds_in_the_other(two, children: Children) -> None:
    first, second = two
    key = Key(LOGIN, "10.0.0.1", "sc1")
    limit = [Limit(key, 2, 60.0, 600.0)]
    for n in range(2):
        d = first.attempt_store().fail(limit, 1000.0 + n, "10.0.0.1")
        children.pump_until(lambda d=d: d.called)
    assert [r.key for r in fired(d)] == [key]
    seen = second.attempt_store().read([key])
    children.pump_until(lambda: seen.called)
    record = fired(seen)[key]
    assert record.failures == 2 and record.locked(1100.0)


def test_a_batch_that_loses_a_serialization_race_is_run_again(postgres_url: str) -> None:
    conn, other = connect(postgres_url), connect(postgres_url)
    conn.execute("INSERT INTO sc_accounts (name, password_hash, institution, created_at) "
                 "VALUES ('race', 'x', 'MAIN', '2024-01-01 00:00:00')")
    runs = []

    def job(c: sqlite3.Connection) -> str:
        runs.append(c.execute("SELECT institution FROM sc_accounts WHERE name = 'race'").fetchone()[0])
        if len(runs) == 1:  # another process changes the row after this transaction read it
            other.execute("UPDATE sc_accounts SET institution = 'LPL' WHERE name = 'race'")
        c.execute("UPDATE sc_accounts SET library_name = ? WHERE name = 'race'", (f"seen {runs[-1]}",))
        return runs[-1]

    stats = BatchStats()
    try:
        (outcome,) = run_batch(conn, [Job("race", job, True)], stats)
        assert outcome.ok and outcome.value == "LPL" and runs == ["MAIN", "LPL"] and stats.conflicts == 1
        assert conn.execute("SELECT library_name FROM sc_accounts WHERE name = 'race'").fetchone()[0] == "seen LPL"
    finally:
        conn.close()
        other.close()


def test_a_batch_that_always_loses_fails_as_not_applied(postgres_url: str, monkeypatch) -> None:
    monkeypatch.setattr("sipgateway.acs.sqlite.batch.CONFLICT_PAUSE", 0.0)

    def job(c: sqlite3.Connection) -> None:
        raise SerializationConflict("could not serialize access")

    conn = connect(postgres_url)
    try:
        (outcome,) = run_batch(conn, [Job("checkout", job, True)], BatchStats())
    finally:
        conn.close()
    assert not outcome.ok and isinstance(outcome.value, ACSUnavailable)
    assert "could not serialize access" in str(outcome.value)


def _waiting_for_the_turn(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as db:
        return db.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()[0] > 0


def _turn_is_free(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as db:
        taken = db.execute("SELECT pg_try_advisory_lock(%s)", (WRITE_LOCK,)).fetchone()[0]
        if taken:
            db.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
        return taken


def test_write_batches_of_two_processes_take_turns_and_the_second_sees_the_first(postgres_url: str) -> None:
    """Why: SERIALIZABLE batches of two gateways touching the same index pages cancelled each
    other so often under steady checkouts that some lost all their retries; taking turns
    (an advisory lock before BEGIN, the snapshot after it) leaves nothing to cancel."""
    first, second = connect(postgres_url), connect(postgres_url)
    seen: list[int] = []

    def count(c: sqlite3.Connection) -> int:
        seen.append(c.execute("SELECT count(*) FROM circulation_log WHERE operation = 'turns'").fetchone()[0])
        c.execute("INSERT INTO circulation_log (at, operation, ok) VALUES ('now', 'turns', 1)")
        return seen[-1]

    try:
        first.execute("BEGIN IMMEDIATE")
        first.execute("INSERT INTO circulation_log (at, operation, ok) VALUES ('now', 'turns', 1)")
        outcomes: list = []
        waiting = threading.Thread(target=lambda: outcomes.extend(run_batch(second, [Job("count", count, True)])))
        waiting.start()
        deadline = time.monotonic() + 10
        while not _waiting_for_the_turn(postgres_url) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _waiting_for_the_turn(postgres_url) and seen == []   # waits for its turn before its BEGIN
        first.execute("COMMIT")
        waiting.join(timeout=10)
        assert [(o.ok, o.value) for o in outcomes] == [(True, 1)]   # its snapshot came after the first's commit
        assert _turn_is_free(postgres_url)
    finally:
        first.close()
        second.close()


def test_a_write_batch_that_does_not_get_its_turn_fails_as_not_applied_and_says_why(
        postgres_url: str, monkeypatch) -> None:
    monkeypatch.setattr(pgconnection, "_TAKE_TURN", pgconnection._TAKE_TURN.replace(
        f"lock_timeout = {pgconnection.WRITE_LOCK_TIMEOUT_MS}", "lock_timeout = 100"))
    runs = []

    def job(c: sqlite3.Connection) -> None:
        runs.append(1)
        c.execute("INSERT INTO circulation_log (at, operation, ok) VALUES ('now', 'no turn', 1)")

    holder = psycopg.connect(postgres_url, autocommit=True)   # a stopped gateway holding the turn
    holder.execute("SELECT pg_advisory_lock(%s)", (WRITE_LOCK,))
    conn = connect(postgres_url)
    try:
        outcomes = run_batch(conn, [Job("checkout", job, True), Job("checkin", job, True)], BatchStats())
        assert runs == [] and [o.ok for o in outcomes] == [False, False]
        assert all(isinstance(o.value, ACSUnavailable) for o in outcomes)
        assert "library database unavailable during checkout: the database's write turn was not free within" \
            in str(outcomes[0].value)
        holder.execute("SELECT pg_advisory_unlock(%s)", (WRITE_LOCK,))
        (outcome,) = run_batch(conn, [Job("checkout", job, True)], BatchStats())   # free again: it runs
        assert outcome.ok and runs == [1]
    finally:
        conn.close()
        holder.close()


def test_a_commit_that_fails_gives_the_turn_back(postgres_url: str) -> None:
    conn = connect(postgres_url)
    try:
        conn.execute("CREATE TEMP TABLE once (x bigint UNIQUE DEFERRABLE INITIALLY DEFERRED)")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO once VALUES (1)")
        conn.execute("INSERT INTO once VALUES (1)")   # refused only at COMMIT
        assert not _turn_is_free(postgres_url)
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("COMMIT")
        assert not conn.in_transaction and _turn_is_free(postgres_url)
        conn.execute("BEGIN IMMEDIATE")   # the next write takes it again, and gives it back
        conn.execute("INSERT INTO once VALUES (2)")
        conn.execute("COMMIT")
        assert _turn_is_free(postgres_url)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        assert _turn_is_free(postgres_url)
        assert [r[0] for r in conn.execute("SELECT x FROM once")] == [2]
    finally:
        conn.close()


def test_statements_are_translated_outside_string_literals() -> None:
    s = translate("SELECT * FROM items WHERE barcode = ? AND title LIKE '%?%' AND x = :name AND y = :name", True)
    assert s.text == "SELECT * FROM items WHERE barcode = %s AND title LIKE '%%?%%' AND x = %s AND y = %s"
    assert s.names == ("name", "name") and not s.returns_id
    assert translate("BEGIN IMMEDIATE", False).text == "BEGIN ISOLATION LEVEL SERIALIZABLE"
    assert translate("INSERT INTO loans (item_id) VALUES (?)", True).text.endswith(" RETURNING id")
    assert not translate("INSERT INTO auth_failures (scope) VALUES (?)", True).returns_id
    assert "loans" in ID_TABLES and "offline_journal" in ID_TABLES and "auth_failures" not in ID_TABLES
    assert "LIMIT ALL OFFSET" in translate("SELECT 1 LIMIT -1 OFFSET ?", True).text
    assert translate("SELECT '%'", False).text == "SELECT '%'"


def test_every_migration_becomes_postgresql_ddl_with_forward_keys_added_after_their_table() -> None:
    existing: set[str] = set()
    statements = [s for migration in MIGRATIONS for s in pgschema.ddl(migration, existing)]
    text = "\n".join(statements)
    for sqlite_only in ("WITHOUT ROWID", " REAL", " BLOB", "INTEGER"):
        assert sqlite_only not in text
    assert "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY" in text
    hold_key = statements.index("ALTER TABLE loans ADD FOREIGN KEY (hold_id) REFERENCES holds (id)")
    assert hold_key > next(i for i, s in enumerate(statements) if "CREATE TABLE holds" in s)


def test_the_schema_is_made_once_and_the_tables_hold_what_the_migrations_say(postgres_empty: str) -> None:
    conn = connect(postgres_empty)
    try:
        assert pgschema.migrate(conn) is True
        assert pgschema.migrate(conn) is False
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == [m.version for m in MIGRATIONS]
        # the database refuses a second open loan of an item, as SQLite's does
        conn.execute("INSERT INTO patrons (barcode, created_at) VALUES ('p', 'now')")
        conn.execute("INSERT INTO items (barcode, created_at) VALUES ('i', 'now')")
        for _ in range(2):
            try:
                conn.execute("INSERT INTO loans (item_id, patron_id, out_at, due_at) SELECT i.id, p.id, 'a', 'b' "
                             "FROM items i, patrons p")
            except sqlite3.IntegrityError as e:
                assert "loans_open_item" in str(e)
        assert conn.execute("SELECT count(*) FROM loans").fetchone()[0] == 1
    finally:
        conn.close()


def test_an_empty_database_is_used_only_with_init_or_demo(postgres_empty: str) -> None:
    with pytest.raises(ACSUnavailable, match="has no sipgateway tables; start once with --init"):
        open_sqlite_acs(postgres_empty, None)
    acs = open_sqlite_acs(postgres_empty, None, init=True, hash_iterations=FAST)
    try:
        assert acs.is_new and not acs.seeded
        assert acs.missing_contents() == ["SC accounts", "patrons", "items"]
    finally:
        acs.close()
    acs = open_sqlite_acs(postgres_empty, None, demo=True, hash_iterations=FAST)
    try:
        assert acs.seeded and not acs.is_new and acs.missing_contents() == []
    finally:
        acs.close()


@pytest.fixture
def role(postgres: PostgresServer, postgres_url: str):
    """A role that must give its password (scram-sha-256 over TCP), owning the database."""
    name = postgres_url.rsplit("/", 1)[1]
    postgres.admin("DO $$BEGIN CREATE ROLE gwuser LOGIN PASSWORD 's3cret/pw'; "
                   "EXCEPTION WHEN duplicate_object THEN NULL; END$$")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for what in ("TABLES", "SEQUENCES"):
            conn.execute(f"GRANT ALL ON ALL {what} IN SCHEMA public TO gwuser")
    yield postgres.url(name, user="gwuser")
    target._passwords.clear()


def test_the_password_comes_from_the_url_or_a_file_and_is_never_shown(role: str, tmp_path: Path) -> None:
    with_password = role.replace("gwuser@", "gwuser:s3cret%2Fpw@")
    config = load(None, database=with_password)
    assert config.database == role and config.database_password == "s3cret/pw"
    assert "s3cret" not in repr(config)
    ini = tmp_path / "gw.ini"
    (tmp_path / "pw").write_text("s3cret/pw\n")
    ini.write_text(f"[gateway]\ndatabase = {role}\ndatabase_password_file = {tmp_path / 'pw'}\n")
    config = load(str(ini))
    assert config.database == role and config.database_password == "s3cret/pw"
    # without it, PostgreSQL refuses, and the line says who was refused where, not the password
    with pytest.raises(ACSUnavailable, match="cannot connect to gwuser@127.0.0.1") as refused:
        open_sqlite_acs(role, None)
    assert "password" in str(refused.value) and "s3cret" not in str(refused.value)
    target.remember(role, config.database_password)
    acs = open_sqlite_acs(role, None, hash_iterations=FAST)
    acs.close()
    assert target.redact(with_password) == role.replace("gwuser@", "gwuser:***@")


def test_a_password_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    ini = tmp_path / "gw.ini"
    ini.write_text(f"[gateway]\ndatabase = postgresql://u@h/db\ndatabase_password_file = {tmp_path / 'none'}\n")
    with pytest.raises(ConfigError, match=r"\[gateway\] database_password_file: cannot read"):
        load(str(ini))
    ini.write_text("[gateway]\ndatabase = sqlite:gw.sqlite3\ndatabase_password_file = /etc/hostname\n")
    with pytest.raises(ConfigError, match="only a postgresql:// database has a password"):
        load(str(ini))


def test_served_by_a_database_process_with_a_password(role: str, children: Children) -> None:
    target.remember(role, "s3cret/pw")
    acs = served(role, children)
    try:
        d = checkout(acs, "100001", "200001", "1234")
        children.pump_until(lambda: d.called)
        assert fired(d).ok
    finally:
        stop(acs, children)


def test_status_says_the_terminal_is_online_on_postgresql(postgres_url: str, children: Children) -> None:
    acs = served(postgres_url, children)
    try:
        d = acs.status(MAIN, rq.StatusRequest())
        children.pump_until(lambda: d.called)
        status = fired(d)
        assert isinstance(status, m.ACSStatus) and status.online and status.checkout_ok
        assert health.problem(acs) is None   # /readyz: ready (there is no database file to look for)
    finally:
        stop(acs, children)


def test_a_connection_the_server_ended_is_opened_again_and_the_call_applied_once(postgres: PostgresServer,
                                                                               postgres_url: str) -> None:
    acs = SQLiteACS.synchronous(postgres_url, hash_iterations=FAST)
    try:
        acs.seed_demo()
        # the server ends the session (a restart, a failover, an administrator)
        postgres.admin("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                       f"WHERE datname = '{postgres_url.rsplit('/', 1)[1]}'")
        assert fired(checkout(acs, "100001", "200001", "1234")).ok
        assert acs.run_sync("loans", lambda tx: tx.value("SELECT count(*) FROM loans"), write=False) == 2
    finally:
        acs.close()


def test_a_connection_lost_during_commit_is_an_unknown_outcome_never_run_again(postgres: PostgresServer,
                                                                              postgres_url: str) -> None:
    conn = connect(postgres_url)
    runs = []

    def job(c: sqlite3.Connection) -> None:
        runs.append(1)
        c.execute("INSERT INTO circulation_log (at, operation, ok) VALUES ('now', 'lost', 1)")

    def record(c: sqlite3.Connection, outcomes: list) -> None:   # just before COMMIT: the server ends us
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        postgres.admin(f"SELECT pg_terminate_backend({pid}, 10000)")

    try:
        (outcome,) = run_batch(conn, [Job("checkout", job, True)], BatchStats(), record)
        assert not outcome.ok and isinstance(outcome.value, OutcomeUnknown) and runs == [1]
        assert "was lost during COMMIT" in str(outcome.value)
    finally:
        conn.close()


def test_a_write_committed_by_a_process_that_dies_before_answering_is_read_back_from_postgresql(
        postgres_url: str, children: Children) -> None:
    acs = served(postgres_url, children)
    try:
        child = children.current
        child.open[child.proc.stdout.fileno()] = lambda data: None   # its answer never arrives
        d = checkout(acs, "100001", "200001", "1234")

        def loans() -> int:
            conn = connect(postgres_url)
            try:
                return conn.execute("SELECT count(*) FROM loans WHERE returned_at IS NULL").fetchone()[0]
            finally:
                conn.close()

        children.pump_until(lambda: loans() == 1, "the commit")
        child.signalProcess("KILL")          # dies as if between COMMIT and answering
        children.pump_until(lambda: d.called)
        result = fired(d)
        assert result.ok and result.item_id == "200001" and result.due_date is not None
    finally:
        stop(acs, children)


def test_a_begin_that_fails_after_taking_the_turn_gives_it_back(postgres_url: str, monkeypatch) -> None:
    conn = connect(postgres_url)
    run = conn._run

    def begin_fails(statement, values):   # the server refuses the BEGIN itself (it is never a lost session)
        if statement.text.startswith("BEGIN"):
            raise psycopg.OperationalError("out of shared memory")
        return run(statement, values)

    try:
        monkeypatch.setattr(conn, "_run", begin_fails)
        with pytest.raises(sqlite3.OperationalError, match="out of shared memory"):
            conn.execute("BEGIN IMMEDIATE")
        assert _turn_is_free(postgres_url)   # not held until this process's next write
        monkeypatch.setattr(conn, "_run", run)
        conn.execute("BEGIN IMMEDIATE")
        assert not _turn_is_free(postgres_url)
        conn.execute("COMMIT")
        assert _turn_is_free(postgres_url)
    finally:
        conn.close()
