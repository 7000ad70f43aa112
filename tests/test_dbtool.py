"""``sipgateway db``: CSV import of patrons and items (all of a file or nothing of it),
SC accounts (passwords never from argv), lockouts and unlock."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import SQLiteACS
from sipgateway.acs.sqlite.schema import connect
from sipgateway.attempts import LOGIN_ACCOUNT, Key, Limit
from sipgateway.cli import main
from tests.acs.conftest import FAST, MAIN, fired

PATRONS = ("barcode,pin,name,email,language,expires_on,fee_limit,blocked\n"
           "900001,4321,Grace Hopper,grace@example.org,001,2030-12-31,2.50,no\n"
           "900002,,\"Turing, Alan\",,,,,\n")
ITEMS = "barcode,title,author,permanent_location,media_type\n800001,Über Dinge,\"Kant, I.\",MAIN,001\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """An SQLite file, or a PostgreSQL database's URL, with the schema."""
    path = request.getfixturevalue("postgres_url") if request.param == "postgresql" else tmp_path / "gw.sqlite3"
    SQLiteACS.synchronous(str(path), hash_iterations=FAST).close()
    return path


def run(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> tuple[int, str, str]:
    status = main(["db", "--database", db if isinstance(db, str) else f"sqlite:{db}", *args])
    out, err = capsys.readouterr()
    return status, out, err


def csv_file(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return str(path)


def table(db: Path | str, sql: str) -> list[tuple]:
    conn = connect(str(db)) if isinstance(db, str) else sqlite3.connect(db)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def test_patrons_are_imported_with_pins_the_acs_verifies(db: Path, tmp_path: Path, capsys) -> None:
    path = csv_file(tmp_path, PATRONS)
    assert run(capsys, db, "import", "patrons", path) == (0, f"patrons: 2 added, 0 updated from {path}\n", "")
    assert table(db, "SELECT barcode, name, email, language, expires_on, fee_limit_cents, blocked, pin_hash IS NULL "
                     "FROM patrons ORDER BY barcode") == [
        ("900001", "Grace Hopper", "grace@example.org", "001", "2030-12-31", 250, 0, 0),
        ("900002", "Turing, Alan", "", "000", None, 1000, 0, 1)]
    acs = SQLiteACS.synchronous(str(db), hash_iterations=FAST)
    try:
        assert fired(acs.patron_status(MAIN, rq.PatronStatusRequest("900001", "4321"))).pin_valid is True
        assert fired(acs.patron_status(MAIN, rq.PatronStatusRequest("900001", "1234"))).pin_valid is False
        assert fired(acs.patron_status(MAIN, rq.PatronStatusRequest("900002", ""))).pin_valid is False
    finally:
        acs.close()


def test_reimporting_updates_and_never_duplicates(db: Path, tmp_path: Path, capsys) -> None:
    run(capsys, db, "import", "patrons", csv_file(tmp_path, PATRONS))
    stored = table(db, "SELECT pin_hash FROM patrons WHERE barcode = '900001'")
    # no pin for 900001: it keeps its PIN; a new patron 900003
    path = csv_file(tmp_path, "name,barcode,pin\nGrace M. Hopper,900001,\nKatherine Johnson,900003,1111\n", "again.csv")
    assert run(capsys, db, "import", "patrons", path) == (0, f"patrons: 1 added, 1 updated from {path}\n", "")
    assert table(db, "SELECT barcode, name, email FROM patrons ORDER BY barcode") == [
        ("900001", "Grace M. Hopper", "grace@example.org"), ("900002", "Turing, Alan", ""),
        ("900003", "Katherine Johnson", "")]
    assert table(db, "SELECT pin_hash FROM patrons WHERE barcode = '900001'") == stored


def test_items_are_imported_and_start_where_they_belong(db: Path, tmp_path: Path, capsys) -> None:
    path = csv_file(tmp_path, "\ufeff" + ITEMS)  # a byte-order mark, as spreadsheets write
    assert run(capsys, db, "import", "items", path) == (0, f"items: 1 added, 0 updated from {path}\n", "")
    assert run(capsys, db, "import", "items", path)[1] == f"items: 0 added, 1 updated from {path}\n"
    assert table(db, "SELECT barcode, title, author, permanent_location, current_location, status FROM items") == [
        ("800001", "Über Dinge", "Kant, I.", "MAIN", "MAIN", "available")]


def test_a_bad_line_is_reported_by_number_and_nothing_is_applied(db: Path, tmp_path: Path, capsys) -> None:
    path = csv_file(tmp_path, "barcode,pin,name,language,charge_limit\n"
                              "900010,1111,Fine Person,001,5\n"
                              "900011,2222\n"
                              ",3333,No Barcode,001,5\n"
                              "\n"
                              "900012,4444,Bad Values,en,many\n"
                              "900010,5555,Twice,001,5\n")
    assert run(capsys, db, "import", "patrons", path) == (1, "", (
        f"sipgateway db: {path}: line 3: 2 values, the header names 5\n"
        f"sipgateway db: {path}: line 4: the barcode is empty\n"
        f"sipgateway db: {path}: line 6: language 'en' is not three digits\n"
        f"sipgateway db: {path}: line 6: charge_limit 'many' is not a whole number from 0 to 100000\n"
        f"sipgateway db: {path}: line 7: barcode '900010' is on line 2 too\n"
        f"sipgateway db: {path}: nothing imported\n"))
    assert table(db, "SELECT count(*) FROM patrons") == [(0,)]


def test_pins_never_appear_in_errors(db: Path, tmp_path: Path, capsys) -> None:
    path = csv_file(tmp_path, "barcode,pin,name\n900020," + "7" * 300 + ",Long Pin\n")
    status, _, err = run(capsys, db, "import", "patrons", path)
    assert status == 1 and "777" not in err and f"{path}: line 2: the PIN is too long\n" in err


@pytest.mark.parametrize(("what", "text", "problem"), [
    ("patrons", "barcode,name\n1,x\n", "line 1: the header must name the columns barcode, pin, name; pin missing"),
    ("items", "barcode,title,colour\n1,x,red\n",
     "line 1: unknown column 'colour' (the columns are barcode, title, author, call_number, media_type, "
     "collection_code, permanent_location, current_location, owner, security_marker, magnetic_media, properties)"),
    ("items", "barcode,title,title\n1,x,y\n", "line 1: column 'title' is named twice"),
    ("items", "barcode,title\n1,x\n2,\"unended\n", "line 3: unexpected end of data"),
])
def test_bad_headers_and_quoting(db: Path, tmp_path: Path, capsys, what: str, text: str, problem: str) -> None:
    path = csv_file(tmp_path, text)
    assert run(capsys, db, "import", what, path) == (
        1, "", f"sipgateway db: {path}: {problem}\nsipgateway db: {path}: nothing imported\n")


def test_a_file_that_is_not_utf8(db: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("barcode,title\n1,ok\n2,Über\n".encode("latin-1"))
    assert run(capsys, db, "import", "items", str(path)) == (
        1, "", f"sipgateway db: {path}: line 3: not UTF-8 (byte 0xdc)\nsipgateway db: {path}: nothing imported\n")


def test_a_missing_database_is_created_only_with_init(tmp_path: Path, capsys) -> None:
    db = tmp_path / "new.sqlite3"
    path = csv_file(tmp_path, ITEMS)
    assert run(capsys, db, "import", "items", path) == (1, "", (
        f"sipgateway db: no database at '{db}' (give the gateway's --database sqlite:PATH, or --init to create it)\n"))
    assert not db.exists()
    assert main(["db", "--database", f"sqlite:{db}", "--init", "import", "items", path]) == 0
    assert table(db, "SELECT barcode FROM items") == [("800001",)]


def test_account_add_passwd_disable_enable(db: Path, tmp_path: Path, capsys) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-one\n")
    assert run(capsys, db, "account", "add", "kiosk1", "--institution", "MAIN", "--terminal-location", "Hall",
               "--password-file", str(secret)) == (0, "added SC account 'kiosk1' of institution 'MAIN'\n", "")
    acs = SQLiteACS.synchronous(str(db), hash_iterations=FAST)
    try:
        account = fired(acs.authenticate("kiosk1", "s3cret-one", ""))
        assert (account.institution, account.terminal_location) == ("MAIN", "Hall")
        assert run(capsys, db, "account", "add", "kiosk1", "--institution", "MAIN", "--password-file",
                   str(secret)) == (1, "", "sipgateway db: the SC account 'kiosk1' exists already (change its "
                                           "password with 'account passwd')\n")
        secret.write_text("s3cret-two")
        assert run(capsys, db, "account", "passwd", "kiosk1", "--password-file", str(secret)) == (
            0, "changed the password of SC account 'kiosk1'\n", "")
        assert fired(acs.authenticate("kiosk1", "s3cret-one", "")) is None
        assert fired(acs.authenticate("kiosk1", "s3cret-two", "")) is not None
        assert run(capsys, db, "account", "disable", "kiosk1") == (0, "disabled SC account 'kiosk1'\n", "")
        assert fired(acs.authenticate("kiosk1", "s3cret-two", "")) is None
        assert run(capsys, db, "account", "enable", "kiosk1") == (0, "enabled SC account 'kiosk1'\n", "")
        assert fired(acs.authenticate("kiosk1", "s3cret-two", "")) is not None
        assert run(capsys, db, "account", "disable", "nobody") == (
            1, "", "sipgateway db: there is no SC account 'nobody'\n")
    finally:
        acs.close()


def test_the_password_is_read_from_the_terminal_twice(db: Path, capsys, monkeypatch) -> None:
    answers = iter(["typed-secret", "typed-secret", "one", "other"])
    prompts: list[str] = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or next(answers))
    assert run(capsys, db, "account", "add", "kiosk2", "--institution", "LPL")[0] == 0
    assert prompts == ["Password for kiosk2: ", "The same again: "]
    assert run(capsys, db, "account", "passwd", "kiosk2") == (
        1, "", "sipgateway db: the two passwords differ; nothing changed\n")
    acs = SQLiteACS.synchronous(str(db), hash_iterations=FAST)
    try:
        assert fired(acs.authenticate("kiosk2", "typed-secret", "")) is not None
    finally:
        acs.close()


def test_no_password_on_the_command_line(db: Path, capsys) -> None:
    assert main(["db", "--database", f"sqlite:{db}", "account", "add", "k", "--institution", "I",
                 "--password", "x"]) == 2
    assert "unrecognized arguments: --password x" in capsys.readouterr().err


def test_empty_password_and_bad_encoding_change_nothing(db: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert run(capsys, db, "account", "add", "k", "--institution", "I", "--password-file", str(empty)) == (
        1, "", "sipgateway db: the password is empty; nothing changed\n")
    empty.write_text("pw")
    assert run(capsys, db, "account", "add", "k", "--institution", "I", "--encoding", "klingon",
               "--password-file", str(empty)) == (
        1, "", "sipgateway db: account encoding 'klingon' is not a known character set (use e.g. utf-8, ascii, "
               "cp850, latin-1)\n")
    assert table(db, "SELECT count(*) FROM sc_accounts") == [(0,)]


def test_lockouts_and_unlock(db: Path, capsys) -> None:
    acs = SQLiteACS.synchronous(str(db), hash_iterations=FAST)
    fired(acs.attempt_store().fail([Limit(Key(LOGIN_ACCOUNT, "sc1"), 1, 3600, 3600)], time.time(), "10.0.0.9"))
    acs.close()
    status, out, err = run(capsys, db, "lockouts")
    assert (status, err) == (0, "") and out.startswith("login to account sc1: LOCKED until ")
    assert out.endswith(", 1 failed, last from 10.0.0.9\n")
    status, out, _ = run(capsys, db, "unlock", "sc1")
    assert status == 0 and out.startswith("cleared login to account sc1: was LOCKED until ")
    assert run(capsys, db, "lockouts") == (0, "no locks, no failures being counted\n", "")
