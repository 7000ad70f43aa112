"""A PostgreSQL connection that speaks the part of sqlite3's DB-API the job modules use.

So the rules of the embedded library system exist once, written for SQLite: ``?`` and
``:name`` placeholders become psycopg's, ``BEGIN IMMEDIATE`` (a write transaction) becomes
a SERIALIZABLE one and ``BEGIN`` a REPEATABLE READ one, an INSERT into a table with an
``id`` gets ``RETURNING id`` for ``lastrowid``, rows read by index and by column name like
``sqlite3.Row``, ``numeric`` (PostgreSQL's ``sum`` of integers) reads as ``int``, and
psycopg's errors are raised as sqlite3's (same classes, so every ``except sqlite3.Error``
holds), a lost serialization race as ``SerializationConflict``.  Messages are
PostgreSQL's primary message only: its details may quote the values of a row.

Write transactions take turns, as on SQLite: before its BEGIN a write transaction takes a
session advisory lock (``WRITE_LOCK``), waiting at most ``WRITE_LOCK_TIMEOUT_MS``, and gives
it back with its COMMIT or ROLLBACK (one round trip).  Without the turn, SERIALIZABLE
transactions of several gateways that touch the same index pages (the newest loans, the log,
the outcome records: every checkout does) cancel each other so often that a batch can lose
all its retries under steady load; with it, only a transaction of another kind (a tool's,
an operator's) can still make a write batch run again.  The snapshot is taken after the turn
(at the transaction's first statement), so a batch sees every write batch before it.

The connection is in autocommit mode: transactions are begun and ended by statements, as
on SQLite.  One that was lost (the server restarted) is opened again at the next BEGIN; lost
during a COMMIT, it raises ``CommitUnknown``: that transaction may have committed.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import psycopg
from psycopg import errors as pgerrors
from psycopg.adapt import Loader
from psycopg.pq import TransactionStatus

from sipgateway.acs.postgresql.schema import id_tables
from sipgateway.acs.postgresql.statements import Direct, Result, integral_numeric
from sipgateway.acs.postgresql.target import describe, password_for
from sipgateway.acs.sqlite.errors import CommitUnknown, SerializationConflict

#: tables whose rows have an ``id`` (SQLite's INTEGER PRIMARY KEY): an INSERT returns it
ID_TABLES = id_tables()
#: seconds a connection attempt may take
CONNECT_TIMEOUT = 10
#: statements translated, kept; beyond this many the cache starts again (ad-hoc SQL of tools)
MAX_TRANSLATED = 2048

_TOKENS = re.compile(r"""('(?:[^']|'')*')|("(?:[^"]|"")*")|(\?)|(?<![:\w]):([A-Za-z_]\w*)|(%)""")
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)
_BEGIN = {"BEGIN IMMEDIATE": "BEGIN ISOLATION LEVEL SERIALIZABLE",
          "BEGIN": "BEGIN ISOLATION LEVEL REPEATABLE READ"}
_WRITE_BEGIN = _BEGIN["BEGIN IMMEDIATE"]
#: pg_advisory_lock key of the write turn ("sipgateway writes"; the migrations have their own)
WRITE_LOCK = 0x5167_7772_6974_6573
#: how long a write transaction waits for its turn, as SQLite's busy timeout (schema.py)
WRITE_LOCK_TIMEOUT_MS = 5000
#: SET LOCAL lasts to the end of the implicit transaction of this one message
_TAKE_TURN = f"SET LOCAL lock_timeout = {WRITE_LOCK_TIMEOUT_MS}; SELECT pg_advisory_lock({WRITE_LOCK})"
_GIVE_BACK = f"SELECT pg_advisory_unlock({WRITE_LOCK})"


class Statement(NamedTuple):
    """A statement translated: its text, the parameter names of its ``%s`` in order (named
    parameters: each use is a parameter of its own, so that PostgreSQL types each by where
    it stands), whether it returns the new row's id, and its text as PostgreSQL itself
    takes it (``$1``, ``$2``... for libpq, statements.py)."""

    text: str
    names: tuple[str, ...] | None
    returns_id: bool
    native: str


def _placeholders(sql: str, with_params: bool) -> tuple[str, tuple[str, ...] | None, str]:
    if not with_params:
        return sql, None, sql
    names: list[str] = []
    count = 0

    def swap(match: re.Match, native: bool) -> str:
        nonlocal count
        if match.group(3) or match.group(4):
            if match.group(4) and not native:
                names.append(match.group(4))
            count += native
            return f"${count}" if native else "%s"
        # a % anywhere, in a string literal too, is psycopg's unless doubled
        return match.group(0) if native else match.group(0).replace("%", "%%")

    text = _TOKENS.sub(lambda match: swap(match, False), sql)
    native = _TOKENS.sub(lambda match: swap(match, True), sql)
    return text, tuple(names) if names else None, native


def translate(sql: str, with_params: bool) -> Statement:
    """``sql`` in PostgreSQL's words."""
    begin = _BEGIN.get(sql.strip().upper())
    if begin is not None:
        return Statement(begin, None, False, begin)
    text, names, native = _placeholders(sql, with_params)
    text = text.replace("LIMIT -1", "LIMIT ALL")   # SQLite's "no limit" (before an OFFSET)
    native = native.replace("LIMIT -1", "LIMIT ALL")
    insert = _INSERT.match(text)
    if insert and insert.group(1).lower() in ID_TABLES and "RETURNING" not in text.upper():
        return Statement(text.rstrip().rstrip(";") + " RETURNING id", names, True,
                         native.rstrip().rstrip(";") + " RETURNING id")
    return Statement(text, names, False, native)


def _sqlite_error(e: psycopg.Error) -> sqlite3.Error:
    """psycopg's error as the sqlite3 error a job module expects, with PostgreSQL's primary
    message (never its detail, which may quote a row's values)."""
    diag = getattr(e, "diag", None)
    message = (diag.message_primary if diag is not None else None) or str(e).splitlines()[0] or type(e).__name__
    if isinstance(e, pgerrors.SerializationFailure | pgerrors.DeadlockDetected):
        kind: type[sqlite3.Error] = SerializationConflict
    elif isinstance(e, psycopg.IntegrityError):
        kind = sqlite3.IntegrityError
    elif isinstance(e, pgerrors.UndefinedTable):
        kind, message = sqlite3.OperationalError, f"no such table ({message})"   # as SQLite says it
    elif isinstance(e, pgerrors.UndefinedColumn):
        kind = sqlite3.OperationalError   # SQLite's "no such column" is one too
    elif isinstance(e, psycopg.ProgrammingError):
        kind = sqlite3.ProgrammingError
    elif isinstance(e, psycopg.InterfaceError):
        kind = sqlite3.InterfaceError
    elif isinstance(e, psycopg.DataError):
        kind = sqlite3.DataError
    else:
        kind = sqlite3.OperationalError
    error = kind(message)
    error.sqlstate = getattr(e, "sqlstate", None)  # type: ignore[attr-defined]
    return error


class Row(tuple):
    """A row by index and by column name, like ``sqlite3.Row``."""

    __slots__ = ()
    names: dict[str, int] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names[key.lower()])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self.names)


#: a row class per list of column names
_row_types: dict[tuple[str, ...], type[Row]] = {}


def _row_factory(cursor: psycopg.Cursor) -> Any:
    result = cursor.pgresult   # its field names: cheaper than ``description``, which builds objects
    if result is None or not result.nfields:
        return tuple
    return row_type(tuple((result.fname(i) or b"").decode() for i in range(result.nfields)))


def row_type(columns: tuple[str, ...]) -> type[Row]:
    """The row class of a result with these column names."""
    found = _row_types.get(columns)
    if found is None:
        if len(_row_types) >= MAX_TRANSLATED:
            _row_types.clear()
        names: dict[str, int] = {}
        for i, name in enumerate(columns):
            names.setdefault(name.lower(), i)
        found = _row_types[columns] = type("Row", (Row,), {"__slots__": (), "names": names})
    return found


class _IntegralNumeric(Loader):
    """PostgreSQL's ``sum`` of integers is ``numeric``: an ``int`` as SQLite's is (a float
    when it has a fraction, as SQLite's ``real``)."""

    def load(self, data: Any) -> Any:
        return integral_numeric(data)


class Cursor:
    """What ``execute`` returns: the rows, ``rowcount`` and ``lastrowid``."""

    __slots__ = ("_cursor", "lastrowid", "rowcount", "_rows")

    def __init__(self, cursor: psycopg.Cursor, returns_id: bool) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid: int | None = None
        result = cursor.pgresult
        self._rows = result is not None and result.nfields > 0
        if returns_id:
            row = cursor.fetchone()
            if row is not None:
                self.lastrowid = row[0]

    def fetchone(self) -> Row | None:
        return self._cursor.fetchone() if self._rows else None

    def fetchall(self) -> list[Row]:
        return self._cursor.fetchall() if self._rows else []

    def __iter__(self) -> Iterator[Row]:
        return iter(self.fetchall())


#: the circulation log rows of a transaction, in one statement (``log_later``), in their order
_LOG_ROWS = ("INSERT INTO circulation_log (at, operation, ok, account, institution, location, patron, item, detail) "
             "SELECT at, operation, ok, account, institution, location, patron, item, detail FROM unnest("
             "$1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], "
             "$9::text[]) WITH ORDINALITY AS r (at, operation, ok, account, institution, location, patron, item, "
             "detail, n) ORDER BY n")
_LOG_TYPES = (str, str, int, str, str, str, str, str, str)


def _array(values: Iterable[Any]) -> str:
    """A PostgreSQL array literal of these strings, integers and NULLs."""
    return "{" + ",".join("NULL" if v is None else str(v) if v.__class__ is int
                          else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


class PgConnection:
    """One connection to ``url`` (a URL without password; see target.py)."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._translated: dict[tuple[str, bool], Statement] = {}
        self._trace: Callable[[str], object] | None = None
        self._conn = self._connect()
        self._direct = Direct(self._conn, row_type)
        #: circulation log rows of the open transaction not sent yet (``log_later``)
        self._logs: list[Sequence[Any]] = []
        #: this session holds the write turn (WRITE_LOCK)
        self._turn = False

    def _connect(self) -> psycopg.Connection:
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT,
                                  "row_factory": _row_factory}
        if "application_name" not in self.url:   # which process it is, in pg_stat_activity
            kwargs["application_name"] = f"sipgateway pid {os.getpid()}"
        password = password_for(self.url)
        if password is not None:
            kwargs["password"] = password
        try:
            conn = psycopg.connect(self.url, **kwargs)
        except psycopg.Error as e:
            raise sqlite3.OperationalError(f"cannot connect to {describe(self.url)}: "
                                           f"{str(e).strip().splitlines()[-1]}") from None
        conn.adapters.register_loader("numeric", _IntegralNumeric)
        conn.prepare_threshold = None   # statements are prepared by Direct (statements.py) alone
        return conn

    @property
    def in_transaction(self) -> bool:
        # a lost connection (UNKNOWN) has nothing open any more: its transaction died with it
        return self._conn.info.transaction_status not in (TransactionStatus.IDLE, TransactionStatus.UNKNOWN)

    def _sql(self, sql: str, with_params: bool) -> Statement:
        key = (sql, with_params)
        found = self._translated.get(key)
        if found is None:
            if len(self._translated) >= MAX_TRANSLATED:
                self._translated.clear()
            found = self._translated[key] = translate(sql, with_params)
        return found

    def set_trace_callback(self, trace: Callable[[str], object] | None) -> None:
        """``trace(sql)`` for every statement executed, as sqlite3's (tests count reads with it)."""
        self._trace = trace

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Cursor | Result:
        if self._trace is not None:
            self._trace(sql)
        statement = self._sql(sql, bool(params))
        if self._logs:
            self._before(statement.text)
        if statement.text.startswith("BEGIN"):
            return self._begin(statement)
        if self._turn and statement.text in ("COMMIT", "ROLLBACK"):
            return self._end_write(statement.text)
        values = _values(params, statement.names) if params else None
        try:
            return self._run(statement, values)
        except psycopg.Error as e:
            if statement.text == "COMMIT" and self._conn.broken:
                raise CommitUnknown(f"the connection to {describe(self.url)} was lost during COMMIT") from None
            raise _sqlite_error(e) from None

    def _run(self, statement: Statement, values: list[Any] | None) -> Cursor | Result:
        result = self._direct.run(statement.native, values, statement.returns_id)
        if result is not None:
            return result
        cursor = self._conn.execute(statement.text, values)
        pgresult = cursor.pgresult
        self._direct.after(pgresult.command_status if pgresult is not None else None)
        return Cursor(cursor, statement.returns_id)

    def _begin(self, statement: Statement) -> Cursor | Result:
        """BEGIN, a write's after taking its turn.  A session the server ended (a restart, a
        failover, an administrator) is opened again first, or when this is the statement
        that finds it ended: nothing was open on it."""
        try:
            return self._begin_once(statement)
        except psycopg.Error as e:
            if not self._conn.broken:
                raise _begin_error(e) from None
        try:
            return self._begin_once(statement)   # on a new session
        except psycopg.Error as e:
            raise _begin_error(e) from None

    def _begin_once(self, statement: Statement) -> Cursor | Result:
        if self._conn.broken:
            self._conn = self._connect()
            self._direct = Direct(self._conn, row_type)
            self._turn = False   # a session's lock goes with it
        if statement.text == _WRITE_BEGIN and not self._turn:
            self._conn.execute(_TAKE_TURN)
            self._turn = True
        try:
            return self._run(statement, None)
        except psycopg.Error:
            if self._turn and not self._conn.broken:
                self._give_back()   # no transaction to end: the turn must not wait for the next write
            raise

    def _end_write(self, text: str) -> Cursor:
        """COMMIT or ROLLBACK the write transaction and give its turn back, in one round trip."""
        try:
            cursor = self._conn.execute(f"{text}; {_GIVE_BACK}")
        except psycopg.Error as e:
            if self._conn.broken:   # the turn went with the session
                self._turn = False
                if text == "COMMIT":
                    raise CommitUnknown(f"the connection to {describe(self.url)} was lost during COMMIT") from None
                raise _sqlite_error(e) from None
            self._give_back()   # the transaction is over (a failed COMMIT rolls back); the unlock did not run
            raise _sqlite_error(e) from None
        self._turn = False
        self._direct.ended()
        return Cursor(cursor, False)

    def _give_back(self) -> None:
        self._direct.ended()
        try:
            self._conn.execute(_GIVE_BACK)
        except psycopg.Error:
            if not self._conn.broken:
                return   # still held: the next write's BEGIN does not take it twice, its end gives it back
        self._turn = False   # given back, or gone with the connection (the next BEGIN opens a new one)

    def log_later(self, sql: str, values: Sequence[Any]) -> None:
        """``execute(sql, values)``, an INSERT of one circulation log row (nine columns, as
        ``Tx.log`` writes them) whose result nobody reads, sent with the transaction's other
        log rows in one statement before its COMMIT, its next SAVEPOINT or RELEASE, or a
        statement on the log; so a checkout costs one round trip less.  Dropped with the
        transaction (or savepoint) if it is rolled back, as the row would be.  Outside a
        transaction, or with a value the log's array types do not take, run now."""
        if not self.in_transaction or len(values) != len(_LOG_TYPES) or any(
                v is not None and (v.__class__ is not kind or (kind is str and "\x00" in v))
                for v, kind in zip(values, _LOG_TYPES, strict=True)):
            self.execute(sql, values)
            return
        if self._trace is not None:
            self._trace(sql)
        self._logs.append(values)

    def _before(self, text: str) -> None:
        """The pending log rows, sent before ``text`` needs them, or dropped with a rollback."""
        if text.startswith("ROLLBACK") or text.startswith("BEGIN"):
            self._logs.clear()
        elif text.startswith(("COMMIT", "SAVEPOINT", "RELEASE")) or "circulation_log" in text:
            rows, self._logs = self._logs, []
            try:
                self._direct.run(_LOG_ROWS, [_array(column) for column in zip(*rows, strict=True)], False)
            except psycopg.Error as e:
                raise _sqlite_error(e) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        statement = self._sql(sql, True)
        if self._logs:
            self._before(statement.text)
        try:
            with self._conn.cursor() as cursor:
                cursor.executemany(statement.text, [_values(row, statement.names) for row in rows])
                return Cursor(cursor, False)
        except psycopg.Error as e:
            raise _sqlite_error(e) from None

    def close(self) -> None:
        self._logs.clear()
        self._conn.close()


def _begin_error(e: psycopg.Error) -> sqlite3.Error:
    if isinstance(e, pgerrors.LockNotAvailable):
        return sqlite3.OperationalError(f"the database's write turn was not free within {WRITE_LOCK_TIMEOUT_MS} ms "
                                        "(another gateway or tool held it)")
    return _sqlite_error(e)


def _values(params: Sequence[Any] | dict[str, Any], names: tuple[str, ...] | None) -> list[Any]:
    """The values in the order of the statement's ``%s``; ``True`` as 1, as SQLite keeps it
    in an INTEGER column (PostgreSQL would refuse a boolean there)."""
    if isinstance(params, dict):
        params = [params[name] for name in names or ()]
    return [int(v) if v.__class__ is bool else v for v in params]


def connect(url: str) -> PgConnection:
    return PgConnection(url)
