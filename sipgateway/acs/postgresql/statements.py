"""The job modules' statements run straight on libpq, through psycopg's ``pq`` layer.

A checkout is about six statements; through psycopg's cursors each cost about 250 µs of
Python in the database process (a cursor and a transformer per statement, the column
types looked up again for every result) where the round trip itself is well under 100.
Here a statement is sent with its parameters typed as psycopg types them (``str`` as
unknown, ``int`` as the smallest integer type that holds it, ``float`` as float8,
``bytes`` as bytea), prepared on the server on its second run (psycopg prepares on its
fifth), and its result columns are read with loaders chosen once per prepared statement.
What this does not know (another parameter type, a statement other than DML and
transaction control) psycopg runs as before: ``Direct.run`` answers None.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg.pq import ExecStatus, Format, TransactionStatus

#: statements prepared on the server, at most; beyond this many they are all deallocated
MAX_PREPARED = 256
#: statements counted towards their second run, at most (ad-hoc SQL of tools)
MAX_SEEN = 2048

_DML = re.compile(r"\s*(?:SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)
_CONTROL = frozenset({"BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN ISOLATION LEVEL REPEATABLE READ",
                      "COMMIT", "ROLLBACK", "SAVEPOINT job", "RELEASE job", "ROLLBACK TO job"})
#: after these a prepared statement may name an object that is gone or changed (as psycopg judges it)
_INVALIDATES = re.compile(rb"^(?:DROP|ALTER|CREATE|DISCARD ALL|DEALLOCATE ALL)\b")

_TUPLES_OK = ExecStatus.TUPLES_OK
_COMMAND_OK = ExecStatus.COMMAND_OK
_INT2, _INT4, _INT8, _NUMERIC, _FLOAT8, _BYTEA = 21, 23, 20, 1700, 701, 17
_UNKNOWN: Any = object()   # a prepared statement's row maker, until its first run succeeds


def _int(data: bytes) -> int:
    return int(data)


def _bool(data: bytes) -> bool:
    return data == b"t"


def integral_numeric(data: bytes) -> int | float:
    """``numeric`` (PostgreSQL's ``sum`` of integers) as an ``int``, as SQLite's; a float
    when it has a fraction, as SQLite's ``real``."""
    text = bytes(data).decode("ascii")
    return float(text) if "." in text or "e" in text.lower() else int(text)


#: loaders of the result types the schema uses, by type oid (text format); others are psycopg's
_LOADERS: dict[int, Callable[[bytes], Any]] = {
    21: _int, 23: _int, 20: _int, 26: _int, 1700: integral_numeric, 700: float, 701: float, 16: _bool}
_TEXT_TYPES = (25, 1043, 1042, 19, 18, 705)   # text, varchar, bpchar, name, "char", unknown


def _value_functions() -> tuple[Callable[..., bytes], Callable[..., int]] | tuple[None, None]:
    """libpq's PQgetvalue (as bytes) and PQgetisnull for psycopg's pure-Python implementation:
    its ``get_value`` makes three foreign calls a field (a fifth of a statement's time).
    A text-format value is NUL-terminated; an empty one may be NULL, which PQgetisnull
    tells.  Its C implementation reads fields quickly itself: (None, None)."""
    if psycopg.pq.__impl__ != "python":
        return None, None
    name = ctypes.util.find_library("pq")   # the libpq psycopg loaded (psycopg.pq.misc does the same)
    if name is None:
        return None, None
    libpq = ctypes.CDLL(name)
    getvalue, getisnull = libpq.PQgetvalue, libpq.PQgetisnull
    getvalue.argtypes = getisnull.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    getvalue.restype = ctypes.c_char_p
    getisnull.restype = ctypes.c_int
    return getvalue, getisnull


_getvalue, _getisnull = _value_functions()


class Result:
    """What ``execute`` returns on this path: rows decoded as they are fetched."""

    __slots__ = ("lastrowid", "rowcount", "_result", "_make", "_pos", "_count")

    def __init__(self, result: Any, make: Callable[[Any, int], Any] | None, returns_id: bool) -> None:
        self._result = result
        self._make = make
        self._pos = 0
        if result.status == _TUPLES_OK:
            self._count = self.rowcount = result.ntuples
        else:
            self._count = 0
            count = result.command_tuples
            self.rowcount = count if count is not None else -1
        self.lastrowid: int | None = None
        if returns_id:
            row = self.fetchone()
            if row is not None:
                self.lastrowid = row[0]

    def fetchone(self) -> Any:
        if self._make is None or self._pos >= self._count:
            return None
        self._pos += 1
        return self._make(self._result, self._pos - 1)

    def fetchall(self) -> list:
        if self._make is None:
            return []
        make, result = self._make, self._result
        rows = [make(result, i) for i in range(self._pos, self._count)]
        self._pos = self._count
        return rows

    def __iter__(self):
        return iter(self.fetchall())


class Direct:
    """The statements of one psycopg connection, run on its ``pgconn``."""

    def __init__(self, conn: psycopg.Connection, row_type: Callable[[tuple[str, ...]], type]) -> None:
        self._conn = conn
        self._pgconn = conn.pgconn
        self._row_type = row_type
        self._encoding = conn.info.encoding
        self._seen: set[tuple[str, tuple[int, ...]]] = set()
        #: (text, parameter types) -> (name, row maker: None without columns, _UNKNOWN before a first run)
        self._prepared: dict[tuple[str, tuple[int, ...]], tuple[bytes, Callable | None]] = {}
        self._number = 0
        #: a DDL statement ran in the open transaction: nothing is prepared until it ends, so a
        #: ROLLBACK cannot leave a prepared statement naming what the rollback undid
        self._schema_changing = False

    def run(self, text: str, values: Sequence[Any] | None, returns_id: bool) -> Result | None:
        """The statement run, or None when psycopg must run it (see the module's doc)."""
        control = text in _CONTROL
        if not control and not _DML.match(text):
            return None
        params: list[bytes | None] = []
        types: list[int] = []
        formats: list[int] = []
        for v in values or ():
            cls = v.__class__
            if v is None:
                params.append(None)
                types.append(0)
            elif cls is str:
                if "\x00" in v:
                    return None   # psycopg refuses it with its own error
                params.append(v.encode(self._encoding))
                types.append(0)
            elif cls is int:
                params.append(str(v).encode())
                types.append(_INT2 if -32768 <= v <= 32767 else _INT4 if -2 ** 31 <= v < 2 ** 31
                             else _INT8 if -2 ** 63 <= v < 2 ** 63 else _NUMERIC)
            elif cls is float:
                if v != v or v in (float("inf"), float("-inf")):
                    return None
                params.append(repr(v).encode())
                types.append(_FLOAT8)
            elif cls is bytes:
                params.append(v)
                types.append(_BYTEA)
                formats.extend([0] * (len(params) - 1 - len(formats)))
                formats.append(1)
            else:
                return None
        if formats:
            formats.extend([0] * (len(params) - len(formats)))
        pgconn = self._pgconn
        key = (text, tuple(types))
        prepared = self._prepared.get(key)
        if prepared is None and not control and not self._schema_changing and key in self._seen:
            # its second run: prepared from now on
            if len(self._prepared) >= MAX_PREPARED:
                self.forget()
            name = f"sipgw_{self._number}".encode()
            self._number += 1
            made = pgconn.prepare(name, text.encode(self._encoding), key[1] or None)
            if made.status != _COMMAND_OK:
                raise pgerrors.error_from_result(made, encoding=self._encoding)
            prepared = self._prepared[key] = (name, _UNKNOWN)
        if prepared is not None:
            name, make = prepared
            result = pgconn.exec_prepared(name, params, formats or None)
            if result.status != _TUPLES_OK and result.status != _COMMAND_OK:
                raise pgerrors.error_from_result(result, encoding=self._encoding)
            if make is _UNKNOWN:
                make = self._maker(result)
                self._prepared[key] = (name, make)
            return Result(result, make, returns_id)
        if not control:
            if len(self._seen) >= MAX_SEEN:
                self._seen.clear()
            self._seen.add(key)
        result = pgconn.exec_params(text.encode(self._encoding), params, key[1] or None, formats or None)
        if result.status != _TUPLES_OK and result.status != _COMMAND_OK:
            raise pgerrors.error_from_result(result, encoding=self._encoding)
        if control and pgconn.transaction_status == TransactionStatus.IDLE:
            self._schema_changing = False   # that transaction has ended
        return Result(result, self._maker(result), returns_id)

    def _maker(self, result: Any) -> Callable[[Any, int], Any] | None:
        """How to make a row of ``result``'s shape (None: it has no columns)."""
        n = result.nfields
        if not n:
            return None
        names = tuple((result.fname(i) or b"").decode() for i in range(n))
        row_type = self._row_type(names)
        loaders: list[Callable[[bytes], Any]] = []
        for i in range(n):
            oid = result.ftype(i)
            if oid in _TEXT_TYPES:
                encoding = self._encoding
                loaders.append(lambda data, encoding=encoding: data.decode(encoding))
            else:
                loader = _LOADERS.get(oid)
                if loader is None:
                    adapters = self._conn.adapters   # psycopg's, or its fallback (text), as its cursors do
                    found = adapters.get_loader(oid, Format.TEXT) or adapters.get_loader(0, Format.TEXT)
                    assert found is not None
                    loader = found(oid, self._conn).load
                loaders.append(loader)
        columns = tuple(enumerate(loaders))
        if _getvalue is None:
            def make(result: Any, row: int) -> Any:
                get = result.get_value
                return row_type(None if (data := get(row, i)) is None else load(data) for i, load in columns)
            return make

        def make_ctypes(result: Any, row: int) -> Any:
            ptr = result.pgresult_ptr
            return row_type(load(data) if (data := _getvalue(ptr, row, i)) or not _getisnull(ptr, row, i) else None
                            for i, load in columns)
        return make_ctypes

    def after(self, status: bytes | None) -> None:
        """A statement psycopg ran ended with ``status``: a DDL statement may have changed
        what a prepared statement names, so they are all deallocated."""
        if status and _INVALIDATES.match(status):
            self.forget()
            self._schema_changing = self._pgconn.transaction_status != TransactionStatus.IDLE

    def ended(self) -> None:
        """A transaction ended by a statement psycopg ran (connection.py's write COMMIT)."""
        if self._pgconn.transaction_status == TransactionStatus.IDLE:
            self._schema_changing = False

    def forget(self) -> None:
        """Deallocate every prepared statement (kept if that fails: they are still there)."""
        if self._prepared:
            result = self._pgconn.exec_(b"DEALLOCATE ALL")
            if result.status != _COMMAND_OK:
                raise pgerrors.error_from_result(result, encoding=self._encoding)
            self._prepared.clear()
        self._seen.clear()
