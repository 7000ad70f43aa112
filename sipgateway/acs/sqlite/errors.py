"""Exceptions of the embedded ACS."""

from __future__ import annotations

import sqlite3
import threading

from sipgateway.acs.model import ACSTimeout

#: set while a read runs in the reactor thread (see runner.InlineReader)
inline = threading.local()


class MoveToWorker(Exception):
    """Raised inside a read running in the reactor thread when it would have to do slow
    work (a PBKDF2 hash): the read is rolled back and run by the database process instead."""


def forbid_slow_work() -> None:
    if getattr(inline, "active", False):
        raise MoveToWorker()


class SerializationConflict(sqlite3.OperationalError):
    """PostgreSQL: another transaction changed what this one read (SERIALIZABLE), or the two
    deadlocked.  The transaction is rolled back whole, and the batch run again decides anew
    (batch.py); SQLite, with one writer at a time, never raises it."""


class CommitUnknown(sqlite3.OperationalError):
    """PostgreSQL: the connection was lost while COMMIT was on its way, so whether the
    transaction committed is unknown (SQLite's COMMIT either happened or raised)."""


class ACSUnavailable(Exception):
    """The database could not complete a request (locked, disk full, I/O error, closed).

    The message names the operation and SQLite's reason; it never contains request
    values, so no PIN or password can leak through it into a log.
    """


class OutcomeUnknown(ACSUnavailable):
    """A job's batch met ``CommitUnknown``: the database process exits, so that the gateway
    reads which of its writes committed from the database (outcomes.py)."""


def unavailable(operation: str, error: BaseException | str) -> ACSUnavailable:
    """The error for ``operation``; ``error`` is what went wrong, or the reason in words."""
    if isinstance(error, str):
        reason = error
    elif isinstance(error, sqlite3.Error):
        reason = str(error) or type(error).__name__
    else:
        reason = type(error).__name__
    return ACSUnavailable(f"library database unavailable during {operation}: {reason}")


class DeadlinePassed(ACSUnavailable, ACSTimeout):
    """A call failed because its deadline passed before its transaction started (or before
    it was sent to the database process): nothing was changed."""


def deadline_passed(operation: str, where: str = "before its transaction started") -> DeadlinePassed:
    return DeadlinePassed(f"library database did not answer {operation} in time: its deadline passed {where}; "
                          "nothing was changed")
