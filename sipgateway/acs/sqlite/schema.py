"""The database schema as an ordered list of migrations, applied once each on open.

``schema_version`` records every applied migration.  Each migration runs in its own
``BEGIN IMMEDIATE`` transaction that re-checks the version inside the lock, so two
processes opening a new file at once apply it once.  Money is stored in integer cents;
timestamps as local ``YYYY-MM-DD HH:MM:SS`` text (sortable, readable in the sqlite shell).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote

from sipgateway.acs.postgresql import is_url

BUSY_TIMEOUT_MS = 5000


class SchemaError(Exception):
    """The database file cannot be used by this version of sipgateway."""


class DatabaseNotWritable(Exception):
    """SQLite opened the file read-only (it does so silently when the file or its
    directory is write-protected for this user): every write would fail."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


ITEM_STATUSES = ("available", "charged", "on_hold_shelf", "in_transit", "reshelving", "in_process",
                 "on_order", "lost", "missing", "claimed_returned")
HOLD_STATUSES = ("waiting", "in_transit", "on_shelf", "cancelled", "fulfilled", "expired")


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


INITIAL = Migration(1, "accounts, patrons, items, loans, holds, fees, payments, circulation log", (
    """CREATE TABLE sc_accounts (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        institution TEXT NOT NULL,
        encoding TEXT NOT NULL DEFAULT 'utf-8',
        error_detection TEXT NOT NULL DEFAULT 'auto' CHECK (error_detection IN ('auto', 'required', 'off')),
        library_name TEXT NOT NULL DEFAULT '',
        terminal_location TEXT NOT NULL DEFAULT '',
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL)""",
    """CREATE TABLE patrons (
        id INTEGER PRIMARY KEY,
        barcode TEXT NOT NULL UNIQUE,
        pin_hash TEXT,
        name TEXT NOT NULL DEFAULT '',
        email TEXT NOT NULL DEFAULT '',
        phone TEXT NOT NULL DEFAULT '',
        address TEXT NOT NULL DEFAULT '',
        language TEXT NOT NULL DEFAULT '000' CHECK (length(language) = 3),
        home_library TEXT NOT NULL DEFAULT '',
        blocked INTEGER NOT NULL DEFAULT 0,
        block_message TEXT NOT NULL DEFAULT '',
        card_retained INTEGER NOT NULL DEFAULT 0,
        card_lost INTEGER NOT NULL DEFAULT 0,
        expires_on TEXT,
        fee_limit_cents INTEGER NOT NULL DEFAULT 1000,
        charge_limit INTEGER NOT NULL DEFAULT 25,
        overdue_limit INTEGER NOT NULL DEFAULT 5,
        hold_limit INTEGER NOT NULL DEFAULT 10,
        created_at TEXT NOT NULL)""",
    f"""CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        barcode TEXT NOT NULL UNIQUE,
        title TEXT NOT NULL DEFAULT '',
        author TEXT NOT NULL DEFAULT '',
        call_number TEXT NOT NULL DEFAULT '',
        media_type TEXT NOT NULL DEFAULT '001' CHECK (length(media_type) = 3),
        collection_code TEXT NOT NULL DEFAULT '',
        permanent_location TEXT NOT NULL DEFAULT '',
        current_location TEXT NOT NULL DEFAULT '',
        destination_location TEXT,
        owner TEXT NOT NULL DEFAULT '',
        security_marker INTEGER NOT NULL DEFAULT 2 CHECK (security_marker BETWEEN 0 AND 3),
        magnetic_media INTEGER NOT NULL DEFAULT 0,
        properties TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'available' CHECK (status IN {_in(ITEM_STATUSES)}),
        created_at TEXT NOT NULL)""",
    "CREATE INDEX items_title ON items (lower(title))",
    """CREATE TABLE loans (
        id INTEGER PRIMARY KEY,
        item_id INTEGER NOT NULL REFERENCES items (id),
        patron_id INTEGER NOT NULL REFERENCES patrons (id),
        out_at TEXT NOT NULL,
        due_at TEXT NOT NULL,
        renewals INTEGER NOT NULL DEFAULT 0,
        returned_at TEXT,
        cancelled INTEGER NOT NULL DEFAULT 0,
        offline INTEGER NOT NULL DEFAULT 0,
        account TEXT NOT NULL DEFAULT '',
        location TEXT NOT NULL DEFAULT '',
        hold_id INTEGER REFERENCES holds (id),
        fine_fee_id INTEGER REFERENCES fees (id),
        trapped_hold_id INTEGER REFERENCES holds (id))""",
    # at most one open loan per item: the database itself refuses a double checkout
    "CREATE UNIQUE INDEX loans_open_item ON loans (item_id) WHERE returned_at IS NULL",
    "CREATE INDEX loans_open_patron ON loans (patron_id, due_at) WHERE returned_at IS NULL",
    "CREATE INDEX loans_item ON loans (item_id, id)",
    f"""CREATE TABLE holds (
        id INTEGER PRIMARY KEY,
        patron_id INTEGER NOT NULL REFERENCES patrons (id),
        item_id INTEGER REFERENCES items (id),
        title TEXT,
        title_key TEXT NOT NULL,
        pickup_location TEXT NOT NULL,
        hold_type INTEGER NOT NULL DEFAULT 2,
        expires_at TEXT,
        queued_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'waiting' CHECK (status IN {_in(HOLD_STATUSES)}),
        trapped_item_id INTEGER REFERENCES items (id),
        shelf_expires_at TEXT,
        closed_at TEXT,
        CHECK (item_id IS NOT NULL OR title IS NOT NULL))""",
    "CREATE INDEX holds_item ON holds (item_id, queued_at) WHERE status IN ('waiting', 'in_transit', 'on_shelf')",
    "CREATE INDEX holds_title ON holds (title_key, queued_at) WHERE status IN ('waiting', 'in_transit', 'on_shelf')",
    "CREATE INDEX holds_trapped ON holds (trapped_item_id) WHERE status IN ('in_transit', 'on_shelf')",
    "CREATE INDEX holds_patron ON holds (patron_id, status)",
    """CREATE TABLE fees (
        id INTEGER PRIMARY KEY,
        patron_id INTEGER NOT NULL REFERENCES patrons (id),
        item_id INTEGER REFERENCES items (id),
        loan_id INTEGER REFERENCES loans (id),
        fee_type INTEGER NOT NULL CHECK (fee_type BETWEEN 1 AND 9),
        description TEXT NOT NULL DEFAULT '',
        amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
        paid_cents INTEGER NOT NULL DEFAULT 0 CHECK (paid_cents BETWEEN 0 AND amount_cents),
        created_at TEXT NOT NULL)""",
    "CREATE INDEX fees_open ON fees (patron_id, created_at, id) WHERE paid_cents < amount_cents",
    """CREATE TABLE payments (
        id INTEGER PRIMARY KEY,
        patron_id INTEGER NOT NULL REFERENCES patrons (id),
        amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
        currency TEXT NOT NULL,
        payment_type INTEGER NOT NULL,
        fee_type INTEGER,
        transaction_id TEXT NOT NULL,
        account TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL)""",
    "CREATE UNIQUE INDEX payments_transaction ON payments (patron_id, transaction_id)",
    """CREATE TABLE payment_allocations (
        payment_id INTEGER NOT NULL REFERENCES payments (id),
        fee_id INTEGER NOT NULL REFERENCES fees (id),
        amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
        PRIMARY KEY (payment_id, fee_id))""",
    """CREATE TABLE circulation_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        operation TEXT NOT NULL,
        ok INTEGER NOT NULL,
        account TEXT NOT NULL DEFAULT '',
        institution TEXT NOT NULL DEFAULT '',
        location TEXT NOT NULL DEFAULT '',
        patron TEXT,
        item TEXT,
        detail TEXT NOT NULL DEFAULT '')""",
    # what a patron owes, for the sqlite shell and reports; the code sums the same way
    """CREATE VIEW patron_balances AS
        SELECT p.id AS patron_id, p.barcode,
               coalesce(sum(f.amount_cents - f.paid_cents), 0) AS balance_cents
        FROM patrons p LEFT JOIN fees f ON f.patron_id = p.id
        GROUP BY p.id""",
))

# Checkout and checkin ask for an item's waiting queue on every call; the first indexes
# are partial over three statuses, which SQLite cannot use for ``status = 'waiting'``, so
# that query scanned every hold.
WAITING_HOLDS = Migration(2, "indexes for the waiting queue of an item or a title", (
    "CREATE INDEX holds_waiting_item ON holds (item_id, queued_at) WHERE status = 'waiting'",
    "CREATE INDEX holds_waiting_title ON holds (title_key, queued_at) WHERE status = 'waiting'",
))

# What each committed batch of the database process answered, for a short while: after a
# crash between COMMIT and the answer the gateway learns here which writes committed
# (outcomes.py).  Rows are pruned by age; ids are in time order.
CALL_OUTCOMES = Migration(3, "outcomes of recent database-process batches", (
    """CREATE TABLE call_outcomes (
        id INTEGER PRIMARY KEY,
        runner TEXT NOT NULL,
        first INTEGER NOT NULL,
        last INTEGER NOT NULL,
        at REAL NOT NULL,
        results BLOB NOT NULL)""",
))

# Failed logins and wrong PINs, counted per key, and the locks they lead to (see
# sipgateway/attempts.py): here so that a lock survives a restart and ``sipgateway unlock``
# lifts it on a running gateway.  Times are Unix seconds: a lock must end at the same
# moment whatever the local clock does at a change of daylight saving time.
AUTH_FAILURES = Migration(4, "failed logins and wrong PINs, and the locks they lead to", (
    """CREATE TABLE auth_failures (
        scope TEXT NOT NULL,
        subject TEXT NOT NULL,
        subject2 TEXT NOT NULL DEFAULT '',
        failures INTEGER NOT NULL,
        window_start REAL NOT NULL,
        locked_until REAL NOT NULL DEFAULT 0,
        last_from TEXT NOT NULL DEFAULT '',
        expires_at REAL NOT NULL,
        PRIMARY KEY (scope, subject, subject2)) WITHOUT ROWID""",
    "CREATE INDEX auth_failures_expires ON auth_failures (expires_at)",
))


# OCLC Wise SIP2+ money (37 purposes, 39 usage debit, 41 payments overview): a patron's
# credit (deposit), what kind of revenue each fee is (Wise's registration types, so that a
# membership fee is paid with FA and does not count against the spending limit), and the
# journal: one row per amount booked, what the payments overview lists.
WISE_MONEY = Migration(5, "patron credit, fee categories and the payments journal (OCLC Wise SIP2+)", (
    "ALTER TABLE patrons ADD COLUMN deposit_cents INTEGER NOT NULL DEFAULT 0 CHECK (deposit_cents >= 0)",
    # 1 membership fee, 2 registration (fines and charges), 3 sale, 4 other revenue
    "ALTER TABLE fees ADD COLUMN category INTEGER NOT NULL DEFAULT 2 CHECK (category BETWEEN 1 AND 4)",
    """CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        patron_id INTEGER REFERENCES patrons (id),
        payment_id INTEGER REFERENCES payments (id),
        fee_id INTEGER REFERENCES fees (id),
        kind TEXT NOT NULL CHECK (kind IN ('contribution', 'registration', 'deposit', 'usage')),
        amount_cents INTEGER NOT NULL CHECK (amount_cents > 0),
        method INTEGER NOT NULL,
        code TEXT NOT NULL DEFAULT '',
        tracking TEXT NOT NULL DEFAULT '',
        account TEXT NOT NULL DEFAULT '',
        description TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX journal_patron ON journal (patron_id, at)",
))


# Usage figures (sipgateway/usagefigures.py): requests answered, counted per day,
# institution, listener, SC account, terminal location, request code and outcome, for the
# figures libraries are asked for per branch and device (``sipgateway report usage``).
USAGE_FIGURES = Migration(6, "usage figures: requests per day, institution, listener, account, terminal, code", (
    """CREATE TABLE usage_figures (
        day TEXT NOT NULL,
        institution TEXT NOT NULL,
        listener TEXT NOT NULL,
        account TEXT NOT NULL,
        terminal TEXT NOT NULL,
        code TEXT NOT NULL,
        outcome TEXT NOT NULL,
        requests INTEGER NOT NULL CHECK (requests >= 0),
        PRIMARY KEY (day, institution, listener, account, terminal, code, outcome)) WITHOUT ROWID""",
))


# Offline store-and-forward (sipgateway/acs/offline/): checkouts and checkins accepted while
# the library system was down, each moving pending -> sent -> done | conflict as it is
# replayed, with the library system's answer; and, per device login, a hash of the
# credentials the library system last accepted, so that a device can log in again while it
# is down.  Times are Unix seconds (the replay sends them back as SIP2 dates).
OFFLINE_JOURNAL = Migration(7, "offline journal of transactions to replay, remembered device logins", (
    """CREATE TABLE offline_journal (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('checkout', 'checkin')),
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'done', 'conflict')),
        accepted_at REAL NOT NULL,
        account TEXT NOT NULL,
        institution TEXT NOT NULL DEFAULT '',
        location TEXT NOT NULL DEFAULT '',
        patron_id TEXT NOT NULL DEFAULT '',
        item_id TEXT NOT NULL,
        due_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        changed_at REAL NOT NULL,
        reply TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX offline_journal_open ON offline_journal (id) WHERE state IN ('pending', 'sent')",
    "CREATE INDEX offline_journal_patron ON offline_journal (patron_id) WHERE state IN ('pending', 'sent')",
    "CREATE INDEX offline_journal_item ON offline_journal (item_id, id) WHERE state IN ('pending', 'sent')",
    """CREATE TABLE offline_logins (
        login TEXT PRIMARY KEY,
        secret TEXT NOT NULL,
        accepted_at REAL NOT NULL) WITHOUT ROWID""",
))


MIGRATIONS: tuple[Migration, ...] = (INITIAL, WAITING_HOLDS, CALL_OUTCOMES, AUTH_FAILURES, WISE_MONEY,
                                     USAGE_FIGURES, OFFLINE_JOURNAL)

#: items whose status disagrees with their loans: charged exactly when an open loan exists.
#: Empty on a consistent database (the crash tests use it).
INCONSISTENT_ITEMS_SQL = """
    SELECT i.barcode, i.status, count(l.id) AS open_loans
    FROM items i LEFT JOIN loans l ON l.item_id = i.id AND l.returned_at IS NULL
    GROUP BY i.id
    HAVING (i.status = 'charged') != (count(l.id) = 1) OR count(l.id) > 1"""


def configure(conn: sqlite3.Connection) -> None:
    """Per-connection settings: WAL, fsync on every commit, wait for locks, enforce keys."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode.lower() != "wal" and conn.execute("PRAGMA database_list").fetchone()[2]:
        raise SchemaError(f"cannot switch the database to WAL mode (it stays in {mode!r} mode)")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")


def connect(path: str, *, create: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode: every transaction is begun and ended explicitly.
    With ``create=False`` a missing file is an error rather than a new empty database.
    A ``postgresql://`` URL opens PostgreSQL (sipgateway/acs/postgresql/)."""
    if is_url(path):
        from sipgateway.acs.postgresql.connection import connect as connect_postgresql

        return connect_postgresql(path)  # type: ignore[return-value]  # sqlite3's API, see connection.py
    if create or path == ":memory:":
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    else:
        conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=rw", uri=True, isolation_level=None,
                               check_same_thread=False, cached_statements=256)
    conn.row_factory = sqlite3.Row
    try:
        configure(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def require_writable(conn: sqlite3.Connection, path: str) -> None:
    """Raise ``DatabaseNotWritable`` when this connection cannot write.  A write statement
    that changes nothing, rolled back: nothing reaches the file.  Any other error (locked,
    no schema yet) is left to the real work to meet."""
    if is_url(path):
        from sipgateway.acs.postgresql import schema as pg

        return pg.require_writable(conn, path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("DELETE FROM schema_version WHERE 0")
    except sqlite3.OperationalError as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if e.sqlite_errorcode & 0xFF == sqlite3.SQLITE_READONLY:
            raise DatabaseNotWritable(f"{path} is read-only for uid {os.geteuid()} ({e}): make the file and its "
                                      "directory writable by the user the gateway runs as") from None
        return
    conn.execute("ROLLBACK")


def open_for_writing(path: str) -> sqlite3.Connection:
    """The writer's connection: never creates a missing file, refuses a read-only one."""
    conn = connect(path, create=False)
    try:
        require_writable(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """``begin`` ... COMMIT around the block; when it raises, whatever it left open is
    rolled back and the error goes on.  A block may end the transaction itself (ROLLBACK
    when there is nothing to do); then nothing is committed."""
    conn.execute(begin)
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if conn.in_transaction:
        conn.execute("COMMIT")


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """The database has a table ``name`` (SQLite or PostgreSQL)."""
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        return conn.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()[0]
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("""CREATE TABLE IF NOT EXISTS schema_version (
        version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)""")
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> bool:
    """Apply the migrations not applied yet, in order.  True when the schema was created now."""
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        from sipgateway.acs.postgresql import schema as pg

        return pg.migrate(conn, migrations)
    known = max((m.version for m in migrations), default=0)
    found = current_version(conn)
    if found > known:
        raise SchemaError(f"the database has schema version {found}, newer than this sipgateway "
                          f"knows ({known}); upgrade sipgateway or use another --database")
    created = False
    first = min((m.version for m in migrations), default=0)
    for migration in sorted(migrations, key=lambda m: m.version):
        with write_transaction(conn):
            if conn.execute("SELECT 1 FROM schema_version WHERE version = ?", (migration.version,)).fetchone():
                conn.execute("ROLLBACK")  # applied meanwhile (another process): nothing to commit
                continue
            created = created or (found == 0 and migration.version == first)
            for statement in migration.statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, description, applied_at) "
                         "VALUES (?, ?, datetime('now', 'localtime'))", (migration.version, migration.description))
    return created
