"""The database process and a file it cannot write: it refuses to serve read-only (SQLite
would open a write-protected file read-only without a word, and every write would fail
until someone killed the process), the gateway starts it again with growing pauses, the
calls in between fail cleanly, and once the file is writable again it recovers by itself."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.logger import formatEvent, globalLogPublisher

from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import SQLiteACS
from sipgateway.acs.sqlite.errors import ACSUnavailable
from sipgateway.acs.sqlite.schema import DatabaseNotWritable, connect, migrate, open_for_writing
from tests.acs.childpipe import Children
from tests.acs.conftest import FAST, MAIN, fired


def _chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True, capture_output=True, timeout=30)


class WriteProtection:
    """Makes a file read-only for this user and back.  For root, whom file modes do not
    stop, with the immutable attribute (skipped where the file system has none)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.on = False
        if os.geteuid() == 0:
            if shutil.which("chattr") is None:
                pytest.skip("root needs chattr to make a file read-only")
            try:
                _chattr("+i", path)
                _chattr("-i", path)
            except subprocess.CalledProcessError as e:
                pytest.skip(f"no immutable attribute here: {e.stderr.decode(errors='replace').strip()}")

    def protect(self) -> None:
        if os.geteuid() == 0:
            _chattr("+i", self.path)
        else:
            self.path.chmod(0o444)
        self.on = True

    def lift(self) -> None:
        if self.on:
            if os.geteuid() == 0:
                _chattr("-i", self.path)
            else:
                self.path.chmod(0o644)
            self.on = False


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "lib.sqlite3"
    acs = SQLiteACS.synchronous(str(path), hash_iterations=FAST)
    acs.seed_demo()
    fired(acs.close())
    return path


@pytest.fixture
def protection(database: Path) -> Iterator[WriteProtection]:
    guard = WriteProtection(database)
    yield guard
    guard.lift()   # never leave an immutable file behind


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []

    def observe(event: dict) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def checkout(acs: SQLiteACS, item: str) -> Deferred:
    return acs.checkout(MAIN, rq.CheckoutRequest(patron_id="100001", item_id=item, patron_pin="1234"))


def open_loans(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT i.barcode FROM loans l JOIN items i ON i.id = l.item_id "
                                           "WHERE l.returned_at IS NULL")}
    finally:
        conn.close()


def test_the_writer_connection_refuses_a_read_only_file_and_never_creates_one(
        database: Path, protection: WriteProtection, tmp_path: Path) -> None:
    protection.protect()
    reader = connect(str(database))            # SQLite opens it, read-only, without complaint
    assert reader.execute("SELECT count(*) FROM items").fetchone()[0] > 0
    reader.close()
    with pytest.raises(DatabaseNotWritable, match="read-only for uid"):
        open_for_writing(str(database))
    protection.lift()
    conn = open_for_writing(str(database))
    migrate(conn)
    conn.close()
    with pytest.raises(sqlite3.OperationalError):
        open_for_writing(str(tmp_path / "missing.sqlite3"))
    assert not (tmp_path / "missing.sqlite3").exists()


def test_read_only_then_writable_again_recovers_by_itself(
        database: Path, protection: WriteProtection, logged: list[str]) -> None:
    children = Children()
    acs = SQLiteACS(str(database), children.clock, hash_iterations=FAST, spawn=children)
    try:
        acs.start()
        first = checkout(acs, "200001")
        children.pump_until(lambda: first.called)
        assert fired(first).ok

        # the file is write-protected, and the database process happens to restart
        protection.protect()
        children.current.signalProcess("KILL")
        children.pump_until(lambda: children.current.ended, "the killed process")
        waits = [1.0, 2.0, 5.0]               # the gateway's pauses before each new start
        for wait in waits:
            children.clock.advance(wait)
            attempt = checkout(acs, "200002")
            children.pump_until(lambda: children.current.ended, "the refusing process")
            children.pump_until(lambda a=attempt: a.called)
            with pytest.raises(ACSUnavailable):   # a clean failure reply, not a hang
                fired(attempt)
            assert fired(acs.status(MAIN, rq.StatusRequest())).online is False
        assert len(children.started) == 1 + len(waits)
        refusals = [line for line in logged if "is read-only for uid" in line]
        assert len(refusals) == len(waits), refusals   # one line per attempt, not per request
        assert open_loans(database) == {"200001"}

        protection.lift()
        children.clock.advance(10.0)          # the next pause; no one touches the process
        again = checkout(acs, "200002")
        children.pump_until(lambda: again.called)
        assert fired(again).ok and not acs.runner.failing
        assert fired(acs.status(MAIN, rq.StatusRequest())).online is True
        assert len(children.started) == 2 + len(waits)
        assert open_loans(database) == {"200001", "200002"}
    finally:
        closed = acs.close()
        children.pump_until(lambda: closed.called, "closing")
        children.stop_all()
