"""Start-up with the real twistd: a missing database is created only when asked, an empty
or demo database is reported in the log, and a listener bound to an account that does not
exist stops start-up with one line naming the listener, the key and the account."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from tests.system.process import TWISTD, GatewayProcess, SIPClient, free_port


def run_twistd(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TWISTD, "-n", "--pidfile=", "sipgateway", *args], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def one_line_error(out: subprocess.CompletedProcess) -> str:
    """The start-up error: the process failed, and said so in one line, without a traceback."""
    assert out.returncode != 0
    text = (out.stdout + out.stderr).strip()
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    return lines[0]


def listen(port: int = 0) -> list[str]:
    return ["--listen", f"sip:tcp:{port}:interface=127.0.0.1"]


def served(proc: GatewayProcess, port: int, login: str = "9300CNsc1|COpass1|CPMAIN|") -> bytes:
    """One login's reply, then stop: the listening port opens before the services start
    (and log), so a request answered is what proves start-up finished."""
    try:
        with SIPClient(port) as c:
            return c.request(login)
    finally:
        proc.stop()


def test_a_missing_database_stops_start_up_naming_the_path_and_init(tmp_path: Path) -> None:
    line = one_line_error(run_twistd(tmp_path, *listen(), "--database", "sqlite:library.sqlite3"))
    assert line == (f"sipgateway: --database 'sqlite:library.sqlite3': {tmp_path / 'library.sqlite3'} does not "
                    "exist; start once with --init to create an empty library database there (or with --demo "
                    "for the demo library)")
    assert list(tmp_path.iterdir()) == []      # nothing created


def test_a_missing_directory_with_init_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(run_twistd(tmp_path, *listen(), "--init", "--database", "sqlite:no/such/dir/lib.sqlite3"))
    assert line.startswith("sipgateway: --database 'sqlite:no/such/dir/lib.sqlite3': cannot create ")
    assert line.endswith(f"directory {tmp_path / 'no/such/dir'} does not exist")


def test_init_creates_an_empty_library_and_the_log_says_what_it_lacks(tmp_path: Path) -> None:
    port = free_port()
    proc = GatewayProcess(tmp_path, [*listen(port), "--database", "sqlite:library.sqlite3", "--init"], [port])
    proc.start()
    try:
        with SIPClient(port) as c:
            assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"940"   # no accounts, no demo
    finally:
        proc.stop()
    log = proc.log()
    assert (f"The database {tmp_path / 'library.sqlite3'} has no SC accounts, no patrons and no items: no device "
            "can log in (add [account:NAME] sections to the config); every patron is unknown; every item is "
            "unknown") in log
    assert "DEMO" not in log
    db = sqlite3.connect(tmp_path / "library.sqlite3")
    try:
        assert db.execute("SELECT count(*) FROM schema_version").fetchone()[0] > 0
    finally:
        db.close()


def test_a_config_account_alone_leaves_the_warning_about_patrons_and_items(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "gw.ini").write_text(f"[gateway]\ndatabase = sqlite:library.sqlite3\n\n"
                                     f"[listener:raw]\nlisten = sip:tcp:{port}:interface=127.0.0.1\n\n"
                                     "[account:kiosk]\npassword = k1osk\ninstitution = MAIN\n\n"
                                     f"[listener:bound]\nlisten = sip:tcp:{free_port()}:interface=127.0.0.1\n"
                                     "account = kiosk\n")
    proc = GatewayProcess(tmp_path, ["--config", "gw.ini", "--init"], [port]).start()
    assert served(proc, port, "9300CNkiosk|COk1osk|CPMAIN|") == b"941"
    assert f"The database {tmp_path / 'library.sqlite3'} has no patrons and no items: every patron is " \
           "unknown; every item is unknown" in proc.log()


def test_the_quick_start_creates_the_demo_and_warns_whenever_it_is_present(tmp_path: Path) -> None:
    """No --config and no --database: the demo library in the default file, as ``make run``
    does.  The warning comes at every start while the demo passwords work, whatever else
    was given."""
    port = free_port()
    first = GatewayProcess(tmp_path, listen(port), [port]).start()
    try:
        with SIPClient(port) as c:
            assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
    finally:
        first.stop()
    assert (tmp_path / "sipgateway.sqlite3").exists()
    assert f"Seeded the demo library into {tmp_path / 'sipgateway.sqlite3'}" in first.log()
    again = GatewayProcess(tmp_path, [*listen(port), "--database", "sqlite:sipgateway.sqlite3"], [port]).start()
    assert served(again, port) == b"941"
    for log in (first.log(), again.log()):
        assert (f"DEMO credentials are active in {tmp_path / 'sipgateway.sqlite3'}: the SC accounts sc1, scclient, "
                "lpl-sc still have the passwords published in README.rst") in log
        assert "pass1" not in log and "clientpwd" not in log
    assert "Seeded" not in again.log()


def test_the_demo_warning_goes_once_the_demo_passwords_are_changed(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "gw.ini").write_text(f"[gateway]\ndatabase = sqlite:demo.sqlite3\ndemo = yes\n\n"
                                     f"[listener:raw]\nlisten = sip:tcp:{port}:interface=127.0.0.1\n\n"
                                     "[account:sc1]\npassword = n3w-secret\ninstitution = MAIN\n")
    proc = GatewayProcess(tmp_path, ["--config", "gw.ini"], [port]).start()
    assert served(proc, port) == b"940"          # the config's password replaced pass1
    assert "DEMO credentials are active" in proc.log() and "the SC accounts scclient, lpl-sc still" in proc.log()


def test_a_listener_bound_to_an_unknown_account_stops_start_up(tmp_path: Path) -> None:
    endpoint = "sip:tcp:0:interface=127.0.0.1:account=nosuch"
    line = one_line_error(run_twistd(tmp_path, "--listen", endpoint, "--database", "sqlite:gw.sqlite3", "--demo"))
    assert line == ("sipgateway: listener sip:tcp:0:interface=127.0.0.1: account='nosuch' is not an SC account "
                    "(declare it in an [account:nosuch] section with a password, or create it in the database)")


def test_cert_accounts_naming_an_unknown_account_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "gw.ini").write_text("[gateway]\ndatabase = sqlite:gw.sqlite3\ndemo = yes\n\n"
                                     "[listener:tls]\nlisten = sip:tls:0:privateKey=server.key\n"
                                     "cert_accounts =\n    CN=sorter1,O=Example Library -> lpl-sc\n"
                                     "    CN=sorter2,O=Example Library -> sorter\n")
    line = one_line_error(run_twistd(tmp_path, "--config", "gw.ini"))
    assert line == ("sipgateway: listener tls: cert_accounts: CN=sorter2,O=Example Library -> 'sorter': 'sorter' is "
                    "not an SC account (declare it in an [account:sorter] section with a password, or create it "
                    "in the database)")


def test_an_in_memory_database_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    line = one_line_error(run_twistd(tmp_path, *listen(), "--demo", "--database", "sqlite::memory:"))
    assert line.startswith("sipgateway: --database/database 'sqlite::memory:': an in-memory database (:memory:) "
                           "cannot be served: ")
    assert line.endswith("; use sqlite:PATH with a file")
