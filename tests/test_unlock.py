"""``sipgateway unlock``: list and lift the locks in a gateway's database (the running
gateway sees it at once: tests/system/test_lockouts.py)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from sipgateway.acs.sqlite import SQLiteACS
from sipgateway.attempts import LOGIN, LOGIN_ADDRESS, PIN_PATRON, Key, Limit
from sipgateway.cli import main
from tests.acs.conftest import FAST, fired


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    postgresql = request.param == "postgresql"
    path = request.getfixturevalue("postgres_url") if postgresql else str(tmp_path / "gw.sqlite3")
    acs = SQLiteACS.synchronous(path, hash_iterations=FAST)
    store = acs.attempt_store()
    now = time.time()
    fired(store.fail([Limit(Key(LOGIN, "10.0.0.1", "sc1"), 1, 3600, 3600),
                      Limit(Key(LOGIN_ADDRESS, "10.0.0.1"), 30, 3600, 3600)], now, "10.0.0.1"))
    fired(store.fail([Limit(Key(PIN_PATRON, "100001"), 10, 3600, 3600)], now, "10.0.0.5 (sc1)"))
    fired(acs.close())
    return path if postgresql else f"sqlite:{path}"


def test_list_shows_the_locks_and_the_counts(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unlock", "--list", "--database", database]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and err == ""
    assert lines[0].startswith("login from address with account 10.0.0.1 (sc1): LOCKED until ")
    assert lines[0].endswith(", 1 failed, last from 10.0.0.1")
    assert "login from address 10.0.0.1: not locked, 1 failed, last from 10.0.0.1" in lines
    assert "PIN of patron 100001: not locked, 1 failed, last from 10.0.0.5 (sc1)" in lines


def test_unlock_an_address(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unlock", "10.0.0.1", "--database", database]) == 0
    out, _ = capsys.readouterr()
    assert out.count("cleared ") == 2 and "was LOCKED until" in out
    assert main(["unlock", "--list", "--database", database]) == 0
    assert "10.0.0.1" not in capsys.readouterr().out
    assert main(["unlock", "10.0.0.1", "--database", database]) == 1
    assert "nothing is locked or counted for '10.0.0.1'" in capsys.readouterr().err


def test_unlock_a_patron(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unlock", "100001", "--database", database]) == 0
    assert "cleared PIN of patron 100001" in capsys.readouterr().out


def test_an_empty_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fired(SQLiteACS.synchronous(str(tmp_path / "empty.sqlite3")).close())
    assert main(["unlock", "--list", "--database", f"sqlite:{tmp_path / 'empty.sqlite3'}"]) == 0
    assert capsys.readouterr().out == "no locks, no failures being counted\n"


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["unlock", "--list", "--database", f"sqlite:{tmp_path / 'none.sqlite3'}"]) == 1
    assert capsys.readouterr().err == (f"sipgateway unlock: no database at '{tmp_path / 'none.sqlite3'}' "
                                       "(give the gateway's --database sqlite:PATH)\n")
    assert not (tmp_path / "none.sqlite3").exists()  # not created by asking
    old = tmp_path / "old.sqlite3"
    sqlite3.connect(old).close()
    assert main(["unlock", "sc1", "--database", f"sqlite:{old}"]) == 1
    assert "has no lockout table" in capsys.readouterr().err
    assert main(["unlock", "--database", f"sqlite:{old}"]) == 2
    assert main(["unlock", "sc1", "--list", "--database", f"sqlite:{old}"]) == 2
    assert main(["unlock", "sc1", "--database", "postgres://x"]) == 2
    assert capsys.readouterr().err.count("\n") == 3
