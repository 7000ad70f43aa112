"""The gateway's own state and its tools on a ``postgresql://`` database: the offline
journal and remembered device logins of the forwarding mode, ``sipgateway db`` on an empty
database, and ``sipgateway check-config`` looking the listeners' accounts up there."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipgateway.acs.offline.journal import CHECKOUT, DONE, PENDING, Journal
from sipgateway.checkconfig import check
from sipgateway.cli import main


def test_the_offline_journal_and_remembered_logins_live_in_postgresql(postgres_url: str) -> None:
    journal = Journal.open(postgres_url)
    try:
        args = {"now": 1000.0, "account": "sc1", "institution": "MAIN", "location": "MAIN", "patron_id": "100001",
                "item_id": "200001", "due_at": None, "max_checkouts": 10}
        first = journal.accept(CHECKOUT, **args)
        again = journal.accept(CHECKOUT, **{**args, "now": 1001.0})   # the device sent it again
        assert again.id == first.id and again.repeated and journal.counts()[PENDING] == 1
        journal.mark_sent(first.id, 1002.0)
        journal.finish(first.id, DONE, 1003.0, "121...")
        journal.remember_login("sc1@10.0.0.1", "pass1", 1000.0)
        journal.remember_login("sc1@10.0.0.1", "pass2", 1001.0)      # replaced, not added
        assert journal.check_login("sc1@10.0.0.1", "pass2") and not journal.check_login("sc1@10.0.0.1", "pass1")
    finally:
        journal.close()
    again_open = Journal.open(postgres_url, migrate=False)   # what `sipgateway offline report` opens
    try:
        assert again_open.counts()[DONE] == 1
        assert again_open.prune(1003.0 + 31 * 86400) == 1
    finally:
        again_open.close()


def test_db_on_an_empty_postgresql_database_needs_init(postgres_empty: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "pw").write_text("kiosk-password\n")
    args = ["db", "--database", postgres_empty, "account", "add", "kiosk", "--institution", "MAIN",
            "--password-file", str(tmp_path / "pw")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no sipgateway tables" in err and "--init" in err
    assert main(["db", "--init", *args[1:]]) == 0
    assert main(["db", "--database", postgres_empty, "account", "disable", "kiosk"]) == 0


def test_check_config_reads_the_accounts_of_a_postgresql_database(postgres_url: str, tmp_path: Path) -> None:
    ini = tmp_path / "gw.ini"
    ini.write_text(f"[gateway]\ndatabase = {postgres_url}\n\n[listener:a]\nlisten = sip:tcp:6001\naccount = sc1\n")
    found = check(str(ini))
    assert any("sc1" in p and "not an SC account" in p for p in found.problems)   # the schema, no accounts yet
    journal = Journal.open(postgres_url)
    journal.conn.execute("INSERT INTO sc_accounts (name, password_hash, institution, created_at) "
                         "VALUES ('sc1', 'x', 'MAIN', '2024-01-01 00:00:00')")
    journal.close()
    assert check(str(ini)).problems == []
