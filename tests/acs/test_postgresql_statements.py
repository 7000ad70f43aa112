"""The PostgreSQL connection's own statement path (sipgateway/acs/postgresql/statements.py):
values go in and come back as through sqlite3, whether a statement runs for the first
time, is being prepared or is prepared; what is prepared stays bounded and is dropped
when the schema changes; errors are sqlite3's."""

from __future__ import annotations

import sqlite3

import pytest

from sipgateway.acs.postgresql import statements
from sipgateway.acs.postgresql.connection import PgConnection

RUNS = 3   # the first run, the run that prepares, a prepared run


@pytest.fixture
def conn(postgres_url: str):
    conn = PgConnection(postgres_url)
    conn.execute("CREATE TABLE t (id bigserial PRIMARY KEY, n bigint, r double precision, s text, b bytea)")
    yield conn
    conn.close()


def prepared(conn: PgConnection) -> list[str]:
    """The statements prepared on the server (but this one)."""
    return [row[0] for row in conn.execute("SELECT statement FROM pg_prepared_statements "
                                           "WHERE statement NOT LIKE '%pg_prepared%' ORDER BY prepare_time")]


@pytest.mark.parametrize("value", [0, 7, -40000, 2 ** 40, -(2 ** 62), 1.5, -0.25, "", "text é", None, b"\x00\xffa"])
def test_a_value_is_read_back_as_it_was_written_on_every_run(conn: PgConnection, value) -> None:
    column = {int: "n", float: "r", str: "s", bytes: "b"}.get(type(value), "s")
    for run in range(RUNS):
        conn.execute(f"INSERT INTO t ({column}) VALUES (?)", (value,))
        rows = conn.execute(f"SELECT {column}, id FROM t WHERE {column} IS NOT DISTINCT FROM ? ORDER BY id",
                            (value,)).fetchall()
        assert [row[column] for row in rows] == [value] * (run + 1)
        assert [type(row[0]) for row in rows] == [type(value)] * (run + 1)


def test_integers_too_large_for_bigint_sums_and_booleans_read_as_sqlite_gives_them(conn: PgConnection) -> None:
    for _ in range(RUNS):
        row = conn.execute("SELECT ? + 1 AS big, sum(x) AS total, sum(x) / 4.0 AS part, ? > 1 AS yes "
                           "FROM (VALUES (3), (4)) AS v (x)", (2 ** 70, 5)).fetchone()
        assert (row["big"], row["total"], row["part"], row["yes"]) == (2 ** 70 + 1, 7, 1.75, True)
        assert type(row["total"]) is int


def test_named_parameters_repeated_and_true_as_one(conn: PgConnection) -> None:
    for _ in range(RUNS):
        row = conn.execute("SELECT :a AS a, :b AS b, :a || 'x' AS c", {"a": "v", "b": True}).fetchone()
        assert tuple(row) == ("v", 1, "vx")


def test_rows_are_fetched_one_then_the_rest_and_rowcount_is_psycopgs(conn: PgConnection) -> None:
    for _ in range(RUNS):
        conn.execute("DELETE FROM t")
        for n in range(3):
            conn.execute("INSERT INTO t (n) VALUES (?)", (n,))
        cursor = conn.execute("SELECT n FROM t WHERE n >= ? ORDER BY n", (0,))
        assert cursor.rowcount == 3
        assert cursor.fetchone()["n"] == 0
        assert [row["n"] for row in cursor.fetchall()] == [1, 2]
        assert cursor.fetchone() is None and cursor.fetchall() == []
        assert conn.execute("UPDATE t SET s = ? WHERE n > ?", ("x", 0)).rowcount == 2
        assert conn.execute("UPDATE t SET s = ? WHERE n > ?", ("x", 9)).fetchall() == []


def test_an_insert_into_a_table_with_an_id_gives_lastrowid_on_every_run(conn: PgConnection) -> None:
    ids = [conn.execute("INSERT INTO patrons (barcode, name, home_library, created_at) VALUES (?, ?, 'MAIN', ?)",
                        (f"P{n}", "n", "2026-01-01 00:00:00")).lastrowid for n in range(RUNS)]
    assert ids == [row["id"] for row in conn.execute("SELECT id FROM patrons WHERE barcode LIKE ? ORDER BY id",
                                                     ("P%",))]


def test_a_statement_is_prepared_on_its_second_run_only(conn: PgConnection) -> None:
    conn.execute("SELECT n FROM t WHERE n = ?", (1,))
    assert prepared(conn) == []
    conn.execute("SELECT n FROM t WHERE n = ?", (1,))
    conn.execute("SELECT n FROM t WHERE n = ?", (2,))
    assert prepared(conn) == ["SELECT n FROM t WHERE n = $1"]


def test_prepared_statements_stay_bounded(conn: PgConnection, monkeypatch) -> None:
    monkeypatch.setattr(statements, "MAX_PREPARED", 3)
    for n in range(7):
        for _ in range(2):
            conn.execute(f"SELECT n + {n} FROM t WHERE n = ?", (1,))
        assert 1 <= len(prepared(conn)) <= 3


def test_a_table_changed_after_its_statements_were_prepared_is_read_with_its_new_columns(
        conn: PgConnection) -> None:
    conn.execute("INSERT INTO t (n) VALUES (?)", (1,))
    for _ in range(RUNS):
        assert conn.execute("SELECT * FROM t WHERE n = ?", (1,)).fetchone()["n"] == 1
    conn.execute("ALTER TABLE t ADD COLUMN extra text DEFAULT 'new'")
    assert prepared(conn) == []
    for _ in range(RUNS):
        row = conn.execute("SELECT * FROM t WHERE n = ?", (1,)).fetchone()
        assert (row["n"], row["extra"]) == (1, "new")


def test_nothing_is_prepared_in_a_transaction_that_changed_the_schema(conn: PgConnection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE u (a bigint)")
    for _ in range(RUNS):
        conn.execute("SELECT * FROM u WHERE a = ?", (1,))
    assert prepared(conn) == []
    conn.execute("ROLLBACK")
    conn.execute("CREATE TABLE u (b text, a bigint)")
    conn.execute("INSERT INTO u (b, a) VALUES (?, ?)", ("x", 1))
    for _ in range(RUNS):
        assert tuple(conn.execute("SELECT * FROM u WHERE a = ?", (1,)).fetchone()) == ("x", 1)


def test_errors_are_sqlite3s_on_every_run_and_a_statement_that_failed_while_prepared_works_after(
        conn: PgConnection) -> None:
    conn.execute("CREATE UNIQUE INDEX t_n ON t (n)")
    for run in range(RUNS):
        conn.execute("INSERT INTO t (n, s) VALUES (?, ?)", (run, f"row {run}"))
    conn.execute("DELETE FROM t")
    for _ in range(RUNS):
        conn.execute("INSERT INTO t (n, s) VALUES (?, ?)", (7, "first"))
        with pytest.raises(sqlite3.IntegrityError, match="duplicate key"):
            conn.execute("INSERT INTO t (n, s) VALUES (?, ?)", (7, "second"))
        with pytest.raises(sqlite3.DataError):
            conn.execute("SELECT ? || s FROM t", ("a\x00b",))
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            conn.execute("SELECT * FROM missing WHERE n = ?", (1,))
        assert tuple(conn.execute("SELECT n, s FROM t WHERE n = ?", (7,)).fetchone()) == (7, "first")
        conn.execute("DELETE FROM t")
    # prepared by its second run, which failed: its rows are read right at its next
    conn.execute("SELECT n, s FROM t WHERE n = ? AND 1 / ? = 1", (1, 1))
    with pytest.raises(sqlite3.DataError, match="division by zero"):
        conn.execute("SELECT n, s FROM t WHERE n = ? AND 1 / ? = 1", (1, 0))
    conn.execute("INSERT INTO t (n, s) VALUES (?, ?)", (1, "one"))
    assert tuple(conn.execute("SELECT n, s FROM t WHERE n = ? AND 1 / ? = 1", (1, 1)).fetchone()) == (1, "one")


LOG = ("INSERT INTO circulation_log (at, operation, ok, account, institution, location, patron, item, detail) "
       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
ODD = ('say "hi"', "back\\slash", "{braces}, commas", "NULL", "", "é €", " spaced ", None)


def log_row(n: int, detail: str, patron: str | None = "P") -> tuple:
    return ("2026-11-27 10:00:00", f"op{n}", n % 2, "acct", "INST", "LOC", patron, f"I{n}", detail)


def logged(conn: PgConnection) -> list[tuple]:
    return [tuple(r) for r in conn.execute("SELECT at, operation, ok, account, institution, location, patron, item, "
                                           "detail FROM circulation_log ORDER BY id")]


def test_log_rows_sent_later_are_in_the_log_in_order_with_every_character(conn: PgConnection) -> None:
    rows = [log_row(n, odd or "x", patron=odd) for n, odd in enumerate(ODD)]
    conn.execute("BEGIN IMMEDIATE")
    for row in rows:
        conn.log_later(LOG, row)
    conn.execute("COMMIT")
    assert logged(conn) == rows
    conn.log_later(LOG, log_row(9, "outside a transaction: at once"))
    assert logged(conn)[-1] == log_row(9, "outside a transaction: at once")


def test_log_rows_of_a_rolled_back_savepoint_or_transaction_are_dropped(conn: PgConnection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("SAVEPOINT job")
    conn.log_later(LOG, log_row(1, "kept"))
    conn.execute("RELEASE job")
    conn.execute("SAVEPOINT job")
    conn.log_later(LOG, log_row(2, "rolled back"))
    conn.execute("ROLLBACK TO job")
    conn.execute("RELEASE job")
    assert logged(conn) == [log_row(1, "kept")]   # a read of the log sees what was logged before it
    conn.log_later(LOG, log_row(3, "kept too"))
    conn.execute("COMMIT")
    conn.execute("BEGIN IMMEDIATE")
    conn.log_later(LOG, log_row(4, "rolled back"))
    conn.execute("ROLLBACK")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("COMMIT")
    assert logged(conn) == [log_row(1, "kept"), log_row(3, "kept too")]


def test_a_log_row_postgresql_refuses_fails_where_it_was_written_or_at_the_commit(conn: PgConnection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.DataError):
        conn.log_later(LOG, log_row(1, "nul \x00 inside"))
    conn.execute("ROLLBACK")
    conn.execute("BEGIN IMMEDIATE")
    conn.log_later(LOG, (None, *log_row(2, "no time")[1:]))   # at is NOT NULL
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("COMMIT")
    conn.execute("ROLLBACK")
    assert logged(conn) == []
