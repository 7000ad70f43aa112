"""Opening a database: URL parsing, migrations applied once each, demo fixtures seeded
once, SC accounts from the configuration, the IACS shape."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.interface import IACS
from sipgateway.acs.sqlite import SQLiteACS, database_path, open_sqlite_acs
from sipgateway.acs.sqlite.errors import ACSUnavailable
from sipgateway.acs.sqlite.schema import INCONSISTENT_ITEMS_SQL, MIGRATIONS, Migration, SchemaError, connect, migrate
from tests.acs.conftest import FAST, MAIN, Library, fired

TABLES = {"schema_version", "sc_accounts", "patrons", "items", "loans", "holds", "fees", "payments",
          "payment_allocations", "circulation_log", "auth_failures", "journal", "usage_figures",
          "offline_journal", "offline_logins"}


def sync(path: Path, **kw) -> SQLiteACS:
    return SQLiteACS.synchronous(str(path), hash_iterations=FAST, **kw)


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:gw.sqlite3", "gw.sqlite3"),
    ("sqlite:/var/lib/sip/gw.db", "/var/lib/sip/gw.db"),
    ("sqlite:///var/lib/sip/gw.db", "/var/lib/sip/gw.db"),
    ("plain/file.db", "plain/file.db"),
    ("sqlite::memory:", ":memory:"),
])
def test_database_urls(url: str, path: str) -> None:
    assert database_path(url) == path


@pytest.mark.parametrize("url", ["postgres://x", "mysql:db", "sqlite:", ""])
def test_bad_database_urls_name_the_option(url: str) -> None:
    with pytest.raises(ValueError, match="--database"):
        database_path(url)


def test_open_creates_the_schema_and_seeds_the_demo(tmp_path: Path) -> None:
    first = sync(tmp_path / "gw.sqlite3")
    assert first.is_new and first.seed_demo()
    tables = {r[0] for r in first.runner.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert TABLES <= tables
    assert first.runner.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    fired(first.close())

    again = sync(tmp_path / "gw.sqlite3")
    assert not again.is_new and not again.seed_demo()
    conn = again.runner.conn
    assert conn.execute("SELECT count(*) FROM patrons").fetchone()[0] == 4
    assert [tuple(r) for r in conn.execute("SELECT barcode, permanent_location FROM items ORDER BY id")] == [
        ("200001", "MAIN"), ("200002", "MAIN"), ("200003", "MAIN"), ("1565921879", "MAIN"), ("0440242746", "MAIN"),
        ("660", "MAIN"), ("300001", "UWOLS"), ("300002", "UWOLS"), ("300003", "UWOLS"), ("400001", "LPL"),
        ("400002", "LPL"), ("400003", "LPL")]
    assert conn.execute("SELECT count(*) FROM sc_accounts").fetchone()[0] == 3
    assert [tuple(r) for r in conn.execute("SELECT version, description FROM schema_version")] == \
        [(mig.version, mig.description) for mig in MIGRATIONS]
    fired(again.close())


def test_migrations_apply_once_each_in_order(tmp_path: Path) -> None:
    extra = (*MIGRATIONS, Migration(99, "test column", ("ALTER TABLE items ADD COLUMN shelf_mark TEXT",)))
    conn = connect(str(tmp_path / "m.sqlite3"))
    assert migrate(conn, extra) is True
    assert migrate(conn, extra) is False   # idempotent: the ALTER would fail if run twice
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version")] == [mig.version for mig in extra]
    conn.close()


def test_a_failing_migration_leaves_the_earlier_ones_applied(tmp_path: Path) -> None:
    broken = (*MIGRATIONS, Migration(98, "broken", ("CREATE TABLE ok_table (x)", "THIS IS NOT SQL")))
    conn = connect(str(tmp_path / "m.sqlite3"))
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, broken)
    assert [r[0] for r in conn.execute("SELECT version FROM schema_version")] == [mig.version for mig in MIGRATIONS]
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'ok_table'").fetchone()[0] == 0
    conn.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "m.sqlite3"))
    migrate(conn)
    conn.execute("INSERT INTO schema_version VALUES (1000, 'from the future', '2030-01-01 00:00:00')")
    with pytest.raises(SchemaError, match="schema version 1000"):
        migrate(conn)
    conn.close()
    with pytest.raises(ACSUnavailable, match="--database"):
        open_sqlite_acs(f"sqlite:{tmp_path / 'm.sqlite3'}", Clock(), hash_iterations=FAST)


def test_an_in_memory_database_is_refused_naming_the_key() -> None:
    """The database process cannot open another process's in-memory database, and every
    loan would vanish at the next restart: only the synchronous runner of tests serves one."""
    with pytest.raises(ValueError, match=r"^--database/database 'sqlite::memory:': an in-memory database "
                                         r"\(:memory:\) cannot be served: .* use sqlite:PATH with a file$"):
        open_sqlite_acs("sqlite::memory:", Clock(), demo=True)
    with pytest.raises(ValueError, match="in-memory database"):
        SQLiteACS(":memory:", Clock())
    acs = SQLiteACS.synchronous()
    assert acs.seed_demo() and fired(acs.close()) is None


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"this is not a database, just some text " * 200)
    with pytest.raises(ACSUnavailable, match="--database .*cannot open"):
        open_sqlite_acs(f"sqlite:{bad}", Clock())


def test_ensure_account_creates_and_updates(lib: Library) -> None:
    acct = lib.acs.ensure_account("selfcheck-7", "s3cret", "LPL", encoding="CP850", error_detection="required",
                                  library_name="Lakeside", terminal_location="Lobby")
    assert acct == m.Account(name="selfcheck-7", institution="LPL", encoding="cp850",
                             error_detection=m.ErrorDetection.REQUIRED, library_name="Lakeside",
                             terminal_location="Lobby")
    stored = lib.value("SELECT password_hash FROM sc_accounts WHERE name = 'selfcheck-7'")
    assert "s3cret" not in stored and stored.startswith("pbkdf2_sha256$")
    assert fired(lib.acs.authenticate("selfcheck-7", "s3cret", "")) == acct
    lib.acs.ensure_account("selfcheck-7", "s3cret", "MAIN")            # same password: hash kept
    assert lib.value("SELECT password_hash FROM sc_accounts WHERE name = 'selfcheck-7'") == stored
    assert lib.value("SELECT institution FROM sc_accounts WHERE name = 'selfcheck-7'") == "MAIN"
    lib.acs.ensure_account("selfcheck-7", "changed", "MAIN")
    assert fired(lib.acs.authenticate("selfcheck-7", "s3cret", "")) is None
    assert fired(lib.acs.authenticate("selfcheck-7", "changed", "")) is not None
    lib.acs.ensure_account("selfcheck-7", "changed", "MAIN", enabled=False)
    assert fired(lib.acs.authenticate("selfcheck-7", "changed", "")) is None
    assert fired(lib.acs.account("selfcheck-7")) is None


@pytest.mark.parametrize(("kw", "text"), [
    ({"encoding": "klingon-8"}, "'klingon-8' is not a known character set"),
    ({"error_detection": "sometimes"}, "'sometimes' is not one of auto, required, off"),
    ({"institution": ""}, "needs a name and an institution"),
])
def test_ensure_account_rejects_bad_values(lib: Library, kw: dict, text: str) -> None:
    args = {"name": "x", "password": "pw", "institution": "MAIN", **kw}
    with pytest.raises(ValueError, match=text):
        lib.acs.ensure_account(**args)
    assert lib.value("SELECT count(*) FROM sc_accounts WHERE name = 'x'") == 0


def test_demo_accounts(lib: Library) -> None:
    sc1 = fired(lib.acs.authenticate("sc1", "pass1", "MAIN"))
    assert (sc1.institution, sc1.encoding, sc1.library_name) == ("MAIN", "utf-8", "Main Library")
    assert fired(lib.acs.authenticate("scclient", "clientpwd", "")).encoding == "ascii"
    assert fired(lib.acs.authenticate("lpl-sc", "1234", "")).institution == "LPL"
    assert fired(lib.acs.authenticate("sc1", "wrong", "")) is None
    assert fired(lib.acs.authenticate("nobody", "pass1", "")) is None
    assert fired(lib.acs.account("scclient")).institution == "UWOLS"


def test_demo_fixtures(lib: Library) -> None:
    titles = dict(lib.rows("SELECT barcode, title FROM items"))
    assert titles["1565921879"] == "Perl 5 desktop reference"
    assert titles["0440242746"] == "The deep blue alibi"
    assert titles["660"] == "Harry Potter y el cáliz de fuego"
    statuses = dict(lib.rows("SELECT barcode, status FROM items"))
    assert statuses["200001"] == statuses["200002"] == "available" and statuses["200003"] == "on_hold_shelf"
    names = dict(lib.rows("SELECT barcode, name FROM patrons"))
    assert names["100001"] == "Ada Lovelace" and names["djfiander"] == "David J. Fiander"
    assert names["miker"] == "Mike Rylander"
    for patron, pin in (("100001", "1234"), ("100002", "1234"), ("djfiander", "6789"), ("miker", "6789")):
        assert fired(lib.acs.patron_status(MAIN, rq.PatronStatusRequest(patron, pin))).pin_valid is True
    blocked = fired(lib.acs.patron_status(MAIN, rq.PatronStatusRequest("100002", None)))
    assert blocked.flags >= {m.PatronFlag.CHARGE_DENIED}
    assert lib.rows(INCONSISTENT_ITEMS_SQL) == []


def test_status_and_supported_codes(lib: Library) -> None:
    verifyObject(IACS, lib.acs)
    # the 16 of SIP2's BX and OCLC Wise SIP2+'s 39, 41, 70
    assert lib.acs.supported == {"23", "11", "09", "01", "99", "97", "93", "63", "35", "37", "17", "19", "25", "15",
                                 "29", "65", "39", "41", "70"}
    s = fired(lib.acs.status(MAIN, rq.StatusRequest()))
    assert s.online and s.checkout_ok and s.checkin_ok and s.offline_ok and s.supported == lib.acs.supported
    assert (s.institution, s.library_name) == ("MAIN", "Main Library")


def test_status_reports_offline_when_the_database_is_gone(lib: Library) -> None:
    lib.acs.runner.close()
    s = fired(lib.acs.status(MAIN, rq.StatusRequest()))
    assert not s.online and not s.checkout_ok
    with pytest.raises(ACSUnavailable, match="closed"):
        fired(lib.acs.checkout(MAIN, rq.CheckoutRequest(patron_id="100001", item_id="200001")))
