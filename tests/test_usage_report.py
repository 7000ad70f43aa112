"""``sipgateway report usage``: the figures added up by the dimensions asked for, one
column per outcome, as a table or CSV; the file is opened read-only."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from sipgateway.acs.sqlite import SQLiteACS
from sipgateway.cli import main
from sipgateway.usagereport import open_read_only
from tests.acs.conftest import FAST

FIGURES = [
    ("2026-03-02", "MAIN", "sip", "sc1", "desk-1", "11", "ok", 5),
    ("2026-03-02", "MAIN", "sip", "sc1", "desk-1", "11", "refused", 1),
    ("2026-03-02", "", "sip", "", "", "93", "bad", 2),
    ("2026-03-03", "LPL", "tls", "lpl-sc", "", "09", "ok", 12),
    ("2026-03-03", "MAIN", "sip", "sc1", "desk-2", "11", "replayed", 1),
    ("2026-03-04", "MAIN", "sip", "sc1", "desk-1", "17", "failed", 3),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    postgresql = request.param == "postgresql"
    path = request.getfixturevalue("postgres_url") if postgresql else str(tmp_path / "gw.sqlite3")
    acs = SQLiteACS.synchronous(path, hash_iterations=FAST)
    acs.runner.conn.executemany("INSERT INTO usage_figures VALUES (?, ?, ?, ?, ?, ?, ?, ?)", FIGURES)
    acs.close()
    return path if postgresql else f"sqlite:{path}"


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["report", "usage", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_table_of_every_figure(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert report(capsys, "--database", database) == (0, (
        "day         institution  listener  account  terminal  code  ok  refused  failed  bad  replayed  total\n"
        "2026-03-02  -            sip       -        -         93     0        0       0    2         0      2\n"
        "2026-03-02  MAIN         sip       sc1      desk-1    11     5        1       0    0         0      6\n"
        "2026-03-03  LPL          tls       lpl-sc   -         09    12        0       0    0         0     12\n"
        "2026-03-03  MAIN         sip       sc1      desk-2    11     0        0       0    0         1      1\n"
        "2026-03-04  MAIN         sip       sc1      desk-1    17     0        0       3    0         0      3\n"
        "total                                                       17        1       3    2         1     24\n"),
        "")


def test_by_account_and_code_as_csv(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert report(capsys, "--database", database, "--by", "account,code", "--csv") == (0, (
        "account,code,ok,refused,failed,bad,replayed,total\n"
        ",93,0,0,0,2,0,2\n"
        "lpl-sc,09,12,0,0,0,0,12\n"
        "sc1,11,5,1,0,0,1,7\n"
        "sc1,17,0,0,3,0,0,3\n"), "")


def test_a_period_by_terminal(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert report(capsys, "--database", database, "--from", "2026-03-03", "--to", "2026-03-04",
                  "--by", "terminal") == (0, (
        "terminal  ok  refused  failed  bad  replayed  total\n"
        "-         12        0       0    0         0     12\n"
        "desk-1     0        0       3    0         0      3\n"
        "desk-2     0        0       0    0         1      1\n"
        "total     12        0       3    0         1     16\n"), "")


def test_nothing_in_the_period(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert report(capsys, "--database", database, "--from", "2027-01-01") == (
        0, "no usage figures from 2027-01-01\n", "")
    assert report(capsys, "--database", database, "--to", "2020-01-01", "--csv") == (
        0, "day,institution,listener,account,terminal,code,ok,refused,failed,bad,replayed,total\n", "")


def test_bad_arguments_exit_2(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = report(capsys, "--database", database, "--by", "day,branch")
    assert (status, out) == (2, "")
    assert err.endswith("error: argument --by: branch: --by takes one or more of "
                        "day,institution,listener,account,terminal,code\n")
    status, _, err = report(capsys, "--database", database, "--from", "2026-02-30")
    assert status == 2 and err.endswith("argument --from: expected a date YYYY-MM-DD, got '2026-02-30'\n")
    assert report(capsys, "--database", database, "--from", "2026-03-04", "--to", "2026-03-02") == (
        2, "", "sipgateway report usage: --from 2026-03-04 is after --to 2026-03-02\n")
    status, _, err = report(capsys, "--database", "mysql:gw")
    assert status == 2 and err.startswith("sipgateway report usage: --database: 'mysql:gw' is not supported")


def test_a_missing_file_or_an_old_database_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.sqlite3"
    assert report(capsys, "--database", f"sqlite:{missing}") == (
        1, "", f"sipgateway report usage: no database at '{missing}' (give the gateway's --database sqlite:PATH)\n")
    assert not missing.exists()
    old = tmp_path / "old.sqlite3"
    sqlite3.connect(old).execute("CREATE TABLE patrons (id INTEGER)").connection.close()
    assert report(capsys, "--database", f"sqlite:{old}") == (
        1, "", f"sipgateway report usage: 'sqlite:{old}' has no usage figures: start this version of the gateway "
               "on it once (it adds them)\n")


def test_the_file_is_opened_read_only(database: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    if database.startswith("postgresql://"):   # a connection that refuses to write
        conn = open_read_only(database)
        try:
            with pytest.raises(sqlite3.Error, match="read-only transaction"):
                conn.execute("DELETE FROM usage_figures")
        finally:
            conn.close()
        assert report(capsys, "--database", database, "--by", "day")[0] == 0
        return
    path = database.removeprefix("sqlite:")
    os.chmod(path, 0o444)
    before = Path(path).read_bytes()
    assert report(capsys, "--database", database, "--by", "day")[0] == 0
    assert Path(path).read_bytes() == before
