"""What every transaction function gets: the connection, one clock reading, the rules.

A ``Tx`` lives for one IACS call wherever the database work runs.  Its ``now`` is read
once, when the request arrives, so every row one call writes carries the same timestamp.
A ``Call`` is that work as plain data (a module-level function and its arguments), so the
database process can be handed it through a pipe.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sipgateway.acs import model as m
from sipgateway.acs.sqlite.credentials import DEFAULT_ITERATIONS, VerifiedSecrets
from sipgateway.acs.sqlite.rules import CirculationRules

CENT = Decimal("0.01")
LOG_INSERT = ("INSERT INTO circulation_log (at, operation, ok, account, institution, location, patron, item, "
              "detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
# SQLite's lower() folds ASCII only; title keys fold the same way so SQL and Python agree
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass
class Context:
    """Shared by every transaction of one ``SQLiteACS``."""

    clock: Callable[[], datetime]
    currency: str
    rules: CirculationRules
    secrets: VerifiedSecrets
    hash_iterations: int = DEFAULT_ITERATIONS


class Tx:
    def __init__(self, conn: sqlite3.Connection, ctx: Context, terminal: m.Terminal | None = None,
                 now: datetime | None = None) -> None:
        self.conn = conn
        self.ctx = ctx
        self.rules = ctx.rules
        self.terminal = terminal
        self.now = local(ctx.clock() if now is None else now)
        self.stamp = stamp(self.now)

    def _execute(self, sql: str, params: tuple) -> sqlite3.Cursor:
        # one dict argument = named parameters, else positional ones
        if len(params) == 1 and isinstance(params[0], dict):
            return self.conn.execute(sql, params[0])
        return self.conn.execute(sql, params)

    def one(self, sql: str, *params: object) -> sqlite3.Row | None:
        return self._execute(sql, params).fetchone()

    def all(self, sql: str, *params: object) -> list[sqlite3.Row]:
        return self._execute(sql, params).fetchall()

    def value(self, sql: str, *params: object):
        row = self._execute(sql, params).fetchone()
        return None if row is None else row[0]

    def run(self, sql: str, *params: object) -> int:
        """Execute a write; returns the new row id (for INSERTs)."""
        return self._execute(sql, params).lastrowid or 0

    def log(self, operation: str, ok: bool, patron: str | None = None, item: str | None = None,
            detail: str = "") -> None:
        """One circulation log row.  Callers pass barcodes and outcomes, never a PIN."""
        t = self.terminal
        values = (self.stamp, operation, int(ok), t.account if t else "", t.institution if t else "",
                  t.location if t else "", patron, item, detail)
        later = getattr(self.conn, "log_later", None)   # PostgreSQL: with the transaction's other rows
        if later is not None:
            later(LOG_INSERT, values)
        else:
            self.run(LOG_INSERT, *values)

    def here(self, current_location: str = "") -> frozenset[str]:
        """The names the terminal's place goes by: AP location, login location, institution."""
        t = self.terminal
        names = (current_location, t.location if t else "", t.institution if t else "")
        return frozenset(n for n in names if n)

    def place(self, current_location: str = "") -> str:
        t = self.terminal
        return current_location or (t.location if t else "") or (t.institution if t else "")


class Call:
    """``fn(Tx(conn, ctx, terminal, now), *args)`` for one connection: an IACS operation.

    ``fn`` is a module-level function, so it pickles by reference: the gateway sends
    ``fn``, ``args``, ``terminal``, ``now`` and ``deadline`` to the database process.  ``ctx``
    stays behind in each process (it holds a cache and a clock): the database process makes
    its ``Call`` with its own.  ``deadline`` (epoch seconds, or None) is when the gateway must
    have answered: a call not started by then is not run."""

    __slots__ = ("fn", "args", "terminal", "now", "ctx", "deadline")

    def __init__(self, fn: Callable[..., Any], args: tuple, terminal: m.Terminal | None, now: datetime,
                 ctx: Context | None = None, deadline: float | None = None) -> None:
        self.fn = fn
        self.args = args
        self.terminal = terminal
        self.now = now
        self.ctx = ctx
        self.deadline = deadline

    def __call__(self, conn: sqlite3.Connection) -> Any:
        assert self.ctx is not None, "a Call needs a Context to run"
        return self.fn(Tx(conn, self.ctx, self.terminal, self.now), *self.args)


def local(dt: datetime) -> datetime:
    """A naive local datetime to whole seconds (aware values are converted first)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone().replace(tzinfo=None)
    return dt.replace(microsecond=0)


def stamp(dt: datetime) -> str:
    return local(dt).isoformat(" ")


def parse_stamp(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


def parse_day(text: str | None) -> date | None:
    return None if not text else date.fromisoformat(text)


def money(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def show_money(cents: int, currency: str) -> str:
    return f"{money(cents)} {currency}"


def to_cents(amount: Decimal) -> int | None:
    """Whole cents, or None when the amount has finer precision than a cent."""
    cents = amount * 100
    if cents != cents.to_integral_value(ROUND_HALF_UP):
        return None
    return int(cents)


def title_key(title: str) -> str:
    """Equals SQLite's ``lower(trim(title))``."""
    return title.strip(" ").translate(_ASCII_LOWER)
