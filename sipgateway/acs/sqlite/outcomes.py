"""What each committed batch answered, kept in the database for a short while.

A database process can die (crash, OOM kill, ``kill -9``) after a COMMIT and before its
answer reached the gateway.  Its writes are then on disk, and a failure reply would be a
lie.  So every batch that writes records, in its own transaction, the values of the jobs
that succeeded, keyed by the gateway's token and the call numbers.  After a death the
gateway looks its calls up here (``committed``): found means committed, answered with the
recorded value; not found means not applied.

The record is the very bytes the answer carries (``encode``), so a batch pickles its
values once.  Rows are kept ``RETENTION`` seconds: a gateway reads them right after the
death, before it starts the next database process, which is the only one pruning them.
Reading them back uses an unpickler that builds only ACS model values (and the failure
counts of attempts.py, which batches also write), so whoever can write to the database
file cannot make the gateway run code.
"""

from __future__ import annotations

import io
import os
import pickle
import sqlite3
from typing import Any
from urllib.parse import quote

from sipgateway.acs.postgresql import is_url

#: how long a batch's record is kept, in seconds
RETENTION = 120.0
#: how often the database process prunes the records, in seconds
PRUNE_EVERY = 30.0

#: the classes a recorded value may be built from
_ALLOWED = {
    "datetime": frozenset({"datetime", "date", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    # failed logins and wrong PINs are counted in the same batches as circulation
    "sipgateway.attempts": frozenset({"Key", "Record"}),
}
#: the modules of ACS model values (wise: the OCLC Wise SIP2+ answers)
_MODELS = frozenset({"sipgateway.acs.model", "sipgateway.acs.wise"})


def encode(values: list[tuple[int, Any]]) -> bytes:
    """(number, value) of each job that succeeded, as one pickle."""
    return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)


def decode(data: bytes) -> list[tuple[int, Any]]:
    """The values of an answer (from the private pipe)."""
    return pickle.loads(data)


class _ModelUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in _MODELS or name in _ALLOWED.get(module, ()):
            value = super().find_class(module, name)
            if isinstance(value, type):
                return value
        raise pickle.UnpicklingError(f"{module}.{name} is not an ACS value")


def decode_recorded(data: bytes) -> list[tuple[int, Any]]:
    """The values of a record read from the database file: ACS model values only."""
    return _ModelUnpickler(io.BytesIO(data)).load()


def record(conn: sqlite3.Connection, token: str, first: int, last: int, at: float, data: bytes) -> None:
    """Inside the batch's transaction, before its COMMIT."""
    conn.execute("INSERT INTO call_outcomes (runner, first, last, at, results) VALUES (?, ?, ?, ?, ?)",
                 (token, first, last, at, data))


def prune(conn: sqlite3.Connection, now: float) -> None:
    """Drop the records older than ``RETENTION`` (rows are in time order: a range of ids)."""
    conn.execute("DELETE FROM call_outcomes WHERE id < coalesce("
                 "(SELECT id FROM call_outcomes WHERE at >= ? ORDER BY id LIMIT 1), "
                 "(SELECT max(id) + 1 FROM call_outcomes), 0)", (now - RETENTION,))


def committed(conn: sqlite3.Connection, token: str, numbers: set[int]) -> dict[int, Any]:
    """Of ``numbers`` (calls of the runner ``token``), those recorded, with their values."""
    if not numbers:
        return {}
    lowest = min(numbers)
    found: dict[int, Any] = {}
    # newest first: the calls asked about are the last ones sent, so few rows are read
    rows = conn.execute("SELECT runner, first, last, results FROM call_outcomes ORDER BY id DESC")
    for runner, first, last, data in rows:
        if runner != token:
            continue
        if last < lowest:
            break
        if any(first <= n <= last for n in numbers):
            for number, value in decode_recorded(data):
                if number in numbers:
                    found[number] = value
    return found


def lookup(path: str, token: str, numbers: set[int]) -> dict[int, Any] | None:
    """``committed`` on a connection of its own (the gateway, after its database process
    died); None when there is no file at ``path`` (what went into a deleted file is lost)."""
    if is_url(path):
        from sipgateway.acs.sqlite.schema import connect

        conn = connect(path)
        try:
            return committed(conn, token, numbers)
        finally:
            conn.close()
    if not os.path.exists(path):
        return None
    # mode=rw: never create a database here
    conn = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=rw", uri=True, timeout=1.0)
    try:
        return committed(conn, token, numbers)
    finally:
        conn.close()
