"""Fixtures for the embedded SQLite ACS: a synchronous ACS on a temporary file with the
demo library, a clock the test moves by hand, helpers to read fired Deferreds and query
the tables after a transaction, and the real database process for the tests of what runs
where (``children``, ``served``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import SQLiteACS
from tests.acs.childpipe import Children

T0 = datetime(2024, 1, 5, 10, 15, 0)
MAIN = m.Terminal(account="sc1", institution="MAIN", location="MAIN")
LPL = m.Terminal(account="lpl-sc", institution="LPL", location="LPL")
FAST = 1000  # PBKDF2 rounds for test databases: the tests are about rules, not hashing cost


class FakeNow:
    """A clock the test moves: ``now.advance(days=3)``."""

    def __init__(self, start: datetime = T0) -> None:
        self.current = start

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def fired(d: Deferred):
    """The result of an already-fired Deferred; raises its failure's exception."""
    out: list = []
    d.addBoth(out.append)
    assert out, "the Deferred has not fired"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def served(path: Path, children: Children, **kwargs) -> SQLiteACS:
    """An SQLiteACS on the demo library, served by a real database process (childpipe.py)."""
    acs = SQLiteACS(str(path), children.clock, hash_iterations=FAST, spawn=children, **kwargs)
    acs.seed_demo()
    acs.start()
    children.pump_until(lambda: acs.runner.ready, "start-up")
    return acs


def stop(acs: SQLiteACS, children: Children) -> None:
    closed = acs.close()
    children.pump_until(lambda: closed.called, "closing")


class Library:
    """A synchronous SQLiteACS with the demo fixtures, plus table access for assertions."""

    def __init__(self, path: Path | str, now: FakeNow, **kwargs) -> None:
        self.now = now
        self.acs = SQLiteACS.synchronous(str(path), now=now, hash_iterations=FAST, **kwargs)
        self.acs.seed_demo()
        self.db: sqlite3.Connection = self.acs.runner.conn

    @property
    def postgresql(self) -> bool:
        return getattr(self.db, "dialect", "sqlite") == "postgresql"

    def sqlite_only(self, why: str) -> None:
        """Skip the rest of a test that checks something only SQLite has."""
        if self.postgresql:
            pytest.skip(f"SQLite only: {why}")

    def rows(self, sql: str, *params) -> list[sqlite3.Row]:
        return self.db.execute(sql, params).fetchall()

    def row(self, sql: str, *params) -> sqlite3.Row | None:
        return self.db.execute(sql, params).fetchone()

    def value(self, sql: str, *params):
        row = self.row(sql, *params)
        return None if row is None else row[0]

    def item_status(self, barcode: str) -> str:
        return self.value("SELECT status FROM items WHERE barcode = ?", barcode)

    def open_loan(self, barcode: str) -> sqlite3.Row | None:
        return self.row("SELECT l.*, p.barcode AS patron FROM loans l JOIN items i ON i.id = l.item_id "
                        "JOIN patrons p ON p.id = l.patron_id WHERE i.barcode = ? AND l.returned_at IS NULL",
                        barcode)

    def log(self) -> list[sqlite3.Row]:
        return self.rows("SELECT * FROM circulation_log WHERE operation != 'seed_demo' ORDER BY id")

    def checkout(self, patron: str, item: str, pin: str | None = None, terminal: m.Terminal = MAIN,
                 **kw) -> m.CirculationResult:
        return fired(self.acs.checkout(terminal, rq.CheckoutRequest(patron_id=patron, item_id=item,
                                                                    patron_pin=pin, **kw)))

    def renew(self, patron: str, item: str, pin: str | None = None, **kw) -> m.CirculationResult:
        return fired(self.acs.renew(MAIN, rq.CheckoutRequest(patron_id=patron, item_id=item, patron_pin=pin, **kw)))

    def checkin(self, item: str, terminal: m.Terminal = MAIN, **kw) -> m.CheckinResult:
        return fired(self.acs.checkin(terminal, rq.CheckinRequest(item_id=item, **kw)))

    def hold(self, mode: str, patron: str, pin: str | None = None, terminal: m.Terminal = MAIN,
             **kw) -> m.HoldResult:
        return fired(self.acs.hold(terminal, rq.HoldRequest(mode=m.HoldMode(mode), patron_id=patron,
                                                           patron_pin=pin, **kw)))

    def add_item(self, barcode: str, title: str, media: str = "001", location: str = "MAIN") -> None:
        self.db.execute("INSERT INTO items (barcode, title, media_type, permanent_location, current_location, "
                        "created_at) VALUES (?, ?, ?, ?, ?, '2024-01-01 00:00:00')",
                        (barcode, title, media, location, location))

    def add_patron(self, barcode: str, **columns) -> None:
        cols = {"name": f"Patron {barcode}", "home_library": "MAIN", **columns}
        names = ", ".join(["barcode", *cols, "created_at"])
        marks = ", ".join("?" * (len(cols) + 2))
        self.db.execute(f"INSERT INTO patrons ({names}) VALUES ({marks})",
                        (barcode, *cols.values(), "2024-01-01 00:00:00"))


@pytest.fixture
def now() -> FakeNow:
    return FakeNow()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the library is: an SQLite file, or a new PostgreSQL database (tests/conftest.py)."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return str(tmp_path / "lib.sqlite3")


@pytest.fixture
def lib(database: str, now: FakeNow):
    library = Library(database, now)
    yield library
    library.acs.close()


@pytest.fixture
def children() -> Iterator[Children]:
    kids = Children()
    yield kids
    kids.stop_all()
