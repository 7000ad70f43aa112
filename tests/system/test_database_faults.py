"""The real twistd with its database process in trouble: stopped (SIGSTOP) while a
checkout is on its way, and its database file deleted while it runs.  A failure reply
must mean "not applied", and 98 must say offline meanwhile."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from tests.system.process import GatewayProcess, SIPClient, free_port

DATE = "20240105    101500"
CHECKOUT = f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|"
ACS_TIMEOUT = 1.5
WAIT = 30.0   # bound of every poll below: generous for a loaded machine


def login(c: SIPClient) -> None:
    assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"


def wait_status(c: SIPClient, online: bool) -> None:
    want = b"98Y" if online else b"98N"
    end = time.monotonic() + WAIT
    while not (reply := c.request("9900302.00")).startswith(want):
        assert time.monotonic() < end, f"98 still says {reply[:3]!r}"
        time.sleep(0.1)


def open_loans(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0] for r in conn.execute("SELECT i.barcode FROM loans l JOIN items i ON i.id = l.item_id "
                                           "WHERE l.returned_at IS NULL")]
    finally:
        conn.close()


def test_a_stopped_database_process_fails_the_checkout_says_offline_and_never_commits_it(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "gw.sqlite3"
    config = tmp_path / "gw.ini"
    config.write_text(f"[gateway]\ndatabase = sqlite:{db}\ndemo = yes\nacs_timeout = {ACS_TIMEOUT}\n\n"
                      f"[listener:raw]\nlisten = sip:tcp:{port}:interface=127.0.0.1\n", encoding="utf-8")
    proc = GatewayProcess(tmp_path, ["--config", str(config)], [port]).start()
    try:
        with SIPClient(port, timeout=WAIT) as kiosk, SIPClient(port, timeout=WAIT) as other:
            login(kiosk)
            login(other)
            wait_status(other, online=True)
            (database_process,) = proc.children()
            os.kill(database_process, signal.SIGSTOP)
            try:
                sent = time.monotonic()
                kiosk.sock.sendall(CHECKOUT.encode() + b"\r")
                wait_status(other, online=False)
                reply = kiosk.read_reply()
                assert time.monotonic() - sent >= ACS_TIMEOUT
                assert reply.startswith(b"120"), reply
            finally:
                try:
                    os.kill(database_process, signal.SIGCONT)
                except ProcessLookupError:
                    pass    # killed by the gateway to learn what it had committed
            wait_status(other, online=True)
            assert open_loans(db) == []           # the failure reply meant: not applied
            assert kiosk.request(CHECKOUT).startswith(b"121")
            assert open_loans(db) == ["200001"]
    finally:
        proc.stop()


def test_a_deleted_database_file_gets_failure_replies_98_offline_and_a_critical_log_line(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "gw.sqlite3"
    proc = GatewayProcess(tmp_path, ["--listen", f"sip:tcp:{port}:interface=127.0.0.1", "--database",
                                     f"sqlite:{db}", "--demo"], [port]).start()
    try:
        with SIPClient(port, timeout=WAIT) as kiosk:
            login(kiosk)
            wait_status(kiosk, online=True)
            db.unlink()
            assert kiosk.request(CHECKOUT).startswith(b"120")
            wait_status(kiosk, online=False)
            assert kiosk.request(CHECKOUT).startswith(b"120")
        critical = [line for line in proc.log().splitlines() if "dbprocess#critical]" in line]
        assert len(critical) == 1, critical
        assert f"The database file {db} was deleted" in critical[0] and "restart sipgateway" in critical[0]
    finally:
        proc.stop()
