"""The failed-login and wrong-PIN counters (sipgateway/attempts.py) in the database.

Table ``auth_failures``, one row per key.  The functions taking a connection serve
``sipgateway unlock`` too, which opens the file itself while the gateway runs; the
``_job`` functions are the same as database jobs, for ``SQLiteAttempts``
(attemptstore.py).  A failure also forgets a few expired rows, and every 256 new keys the
table is held to ``MAX_KEYS`` rows.  No Twisted here: the database process imports this.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

from sipgateway.acs.sqlite.context import Tx
from sipgateway.attempts import MAX_KEYS, PIN_PATRON, Key, Limit, Record, counted, patron_subject

_COLUMNS = "scope, subject, subject2, failures, window_start, locked_until, last_from, expires_at"
#: INSERT OR REPLACE in the words SQLite and PostgreSQL share
_REPLACE = ("ON CONFLICT (scope, subject, subject2) DO UPDATE SET failures = excluded.failures, "
            "window_start = excluded.window_start, locked_until = excluded.locked_until, "
            "last_from = excluded.last_from, expires_at = excluded.expires_at")
#: expired rows forgotten by one failure: bounded work per write, and they go faster than they come
PRUNE_BATCH = 256
CAP_EVERY = 256
_new_keys = itertools.count(1)


def _record(row: Sequence[Any]) -> Record:
    return Record(Key(row[0], row[1], row[2]), row[3], row[4], row[5], row[6], row[7])


def read(conn: sqlite3.Connection, keys: Sequence[Key]) -> dict[Key, Record]:
    if not keys:
        return {}
    # one primary-key search per key (SQLite scans the table for a row-value IN list)
    where = " OR ".join("scope = ? AND subject = ? AND subject2 = ?" for _ in keys)
    params = [part for key in keys for part in (key.scope, key.subject, key.subject2)]
    rows = conn.execute(f"SELECT {_COLUMNS} FROM auth_failures WHERE {where}", params).fetchall()
    return {record.key: record for record in map(_record, rows)}


def fail(conn: sqlite3.Connection, limits: Sequence[Limit], now: float, source: str,
         max_keys: int = MAX_KEYS) -> list[Record]:
    """Count one failure of each limit's key; the records this failure locked."""
    found = read(conn, [limit.key for limit in limits])
    locked = []
    new_keys = 0
    for limit in limits:
        old = found.get(limit.key)
        record, locks = counted(old, limit, now, source)
        new_keys += old is None
        key = record.key
        conn.execute(f"INSERT INTO auth_failures ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) {_REPLACE}",
                     (key.scope, key.subject, key.subject2, record.failures, record.window_start,
                      record.locked_until, record.last_from, record.expires_at))
        if locks:
            locked.append(record)
    conn.execute("DELETE FROM auth_failures WHERE (scope, subject, subject2) IN (SELECT scope, subject, subject2 "
                 "FROM auth_failures WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)", (now, PRUNE_BATCH))
    if new_keys and any(next(_new_keys) % CAP_EVERY == 0 for _ in range(new_keys)):
        cap(conn, max_keys)
    return locked


def cap(conn: sqlite3.Connection, max_keys: int) -> int:
    """Hold the table to ``max_keys`` rows, forgetting those that expire soonest (a flood of
    failures from ever new addresses); the number of rows forgotten."""
    extra = conn.execute("SELECT count(*) FROM auth_failures").fetchone()[0] - max_keys
    if extra <= 0:
        return 0
    extra += max_keys // 10  # room for the next ones, so this does not run on every write
    conn.execute("DELETE FROM auth_failures WHERE (scope, subject, subject2) IN (SELECT scope, subject, subject2 "
                 "FROM auth_failures ORDER BY expires_at LIMIT ?)", (extra,))
    return extra


def reset(conn: sqlite3.Connection, keys: Sequence[Key]) -> None:
    conn.executemany("DELETE FROM auth_failures WHERE scope = ? AND subject = ? AND subject2 = ?",
                     [(key.scope, key.subject, key.subject2) for key in keys])


def records(conn: sqlite3.Connection) -> list[Record]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM auth_failures ORDER BY scope, subject, subject2").fetchall()
    return [_record(row) for row in rows]


def unlock(conn: sqlite3.Connection, subject: str) -> list[Record]:
    """Forget every key naming ``subject`` (an address, an account or a patron id)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM auth_failures WHERE subject = ? OR subject2 = ? "
                        "OR (scope = ? AND subject = ?)", (subject, subject, PIN_PATRON,
                                                           patron_subject(subject))).fetchall()
    removed = [_record(row) for row in rows]
    reset(conn, [record.key for record in removed])
    return removed


# --- the same as database jobs (module-level functions: a Call pickles them by reference) ---

def read_job(tx: Tx, keys: Sequence[Key]) -> dict[Key, Record]:
    return read(tx.conn, keys)


def fail_job(tx: Tx, limits: Sequence[Limit], now: float, source: str) -> list[Record]:
    return fail(tx.conn, limits, now, source)


def reset_job(tx: Tx, keys: Sequence[Key]) -> None:
    reset(tx.conn, keys)


def unlock_job(tx: Tx, subject: str) -> list[Record]:
    return unlock(tx.conn, subject)


def records_job(tx: Tx) -> list[Record]:
    return records(tx.conn)
