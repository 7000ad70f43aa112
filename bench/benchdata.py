"""Bench patrons and items in the benchmark's copy of the database, and the check that
every checkout the load generator got an ok for was committed.

Talks to the embedded ACS's tables (sipgateway/acs/sqlite/schema.py) with sqlite3 directly,
so the benchmark works on the database the gateway really uses.  Connection ``n`` of a write
run uses patron ``BENCHP<n>`` and item ``BENCHI<n>``.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

PATRON = "BENCHP{}"
ITEM = "BENCHI{}"


class BenchDataError(Exception):
    """The bench rows could not be written or read; the message names the database."""


def _connect(path: Path | str) -> sqlite3.Connection:
    if str(path).startswith("postgresql://"):
        from sipgateway.acs.sqlite.schema import connect  # sqlite3's API over PostgreSQL

        return connect(str(path))
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def add_rows(path: Path, count: int) -> None:
    """Patrons BENCHP0.. and available items BENCHI0.. (``count`` of each), without PINs:
    the write workload sends no AD, as a self-check does after the patron has logged in."""
    stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    try:
        conn = _connect(path)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO patrons (barcode, name, home_library, created_at) VALUES (?, ?, 'MAIN', ?)",
                [(PATRON.format(n), f"Bench patron {n}", stamp) for n in range(count)])
            conn.executemany(
                "INSERT INTO items (barcode, title, permanent_location, current_location, owner, created_at) "
                "VALUES (?, ?, 'MAIN', 'MAIN', 'MAIN', ?)",
                [(ITEM.format(n), f"Bench title {n}", stamp) for n in range(count)])
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise BenchDataError(f"cannot add {count} bench patrons and items to {path}: {e} "
                             "(has sipgateway/acs/sqlite/schema.py changed?)") from None


def count_loans(path: Path, first: int, count: int) -> tuple[int, int]:
    """(loans, returned loans) of items BENCHI<first> .. BENCHI<first+count-1>."""
    barcodes = [ITEM.format(n) for n in range(first, first + count)]
    marks = ", ".join("?" * len(barcodes))
    try:
        conn = _connect(path)
        try:
            row = conn.execute(
                "SELECT count(*), count(l.returned_at) FROM loans l JOIN items i ON i.id = l.item_id "
                f"WHERE i.barcode IN ({marks})", barcodes).fetchone()
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise BenchDataError(f"cannot count the bench loans in {path}: {e}") from None
    return int(row[0]), int(row[1])


def verify(path: Path, first: int, conns: int, ok_checkouts: int, ok_checkins: int) -> dict:
    """Every ok'd checkout must be a committed loan (and every ok'd checkin a returned one).
    At most one request per connection was still in flight when the load generator
    stopped, so the database may hold up to ``conns`` more of each, never fewer."""
    loans, returned = count_loans(path, first, conns)
    problems = []
    if loans < ok_checkouts:
        problems.append(f"{ok_checkouts - loans} ok'd checkouts are not in the database")
    if returned < ok_checkins:
        problems.append(f"{ok_checkins - returned} ok'd checkins are not in the database")
    if loans > ok_checkouts + conns:
        problems.append(f"{loans} loans for {ok_checkouts} ok'd checkouts over {conns} connections")
    if returned > ok_checkins + conns:
        problems.append(f"{returned} returns for {ok_checkins} ok'd checkins over {conns} connections")
    return {"loans": loans, "returned": returned, "ok_checkouts": ok_checkouts, "ok_checkins": ok_checkins,
            "first": first, "conns": conns, "ok": not problems, "problems": problems}
