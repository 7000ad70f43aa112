"""What an operator does with the data, end to end with the real twistd: import patrons and
items and an SC account with ``sipgateway db``, serve a checkout of them over a socket,
and read the usage figures of a known sequence of requests with ``sipgateway report usage``."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from sipgateway.sip2 import checksum
from tests.system.process import BIN, GatewayProcess, SIPClient, free_port

DATE = "20260302    101500"


def sipgateway(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "sipgateway"), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def ed(body: str, seq: int) -> str:
    text = f"{body}AY{seq}AZ"
    return text + checksum(text.encode())


def imported_library(tmp_path: Path) -> None:
    (tmp_path / "patrons.csv").write_text("barcode,pin,name,home_library\n"
                                          "700001,2468,Émilie du Châtelet,MAIN\n"
                                          "700002,1357,Mary Somerville,MAIN\n", encoding="utf-8")
    (tmp_path / "items.csv").write_text("barcode,title,author,permanent_location\n"
                                        "600001,Institutions de physique,\"du Châtelet, É.\",MAIN\n", encoding="utf-8")
    (tmp_path / "kiosk.password").write_text("kiosk-secret\n")
    db = ("--database", "sqlite:gw.sqlite3")
    for args, out in [
        ((*db, "--init", "import", "patrons", "patrons.csv"), "patrons: 2 added, 0 updated from patrons.csv\n"),
        ((*db, "import", "items", "items.csv"), "items: 1 added, 0 updated from items.csv\n"),
        ((*db, "account", "add", "kiosk1", "--institution", "MAIN", "--password-file", "kiosk.password"),
         "added SC account 'kiosk1' of institution 'MAIN'\n"),
    ]:
        done = sipgateway("db", *args, cwd=tmp_path)
        assert (done.returncode, done.stdout, done.stderr) == (0, out, "")


def test_a_checkout_of_an_imported_patron_and_item(tmp_path: Path) -> None:
    imported_library(tmp_path)
    port = free_port()
    gateway = GatewayProcess(tmp_path, ["--listen", f"sip:tcp:{port}:interface=127.0.0.1",
                                        "--database", "sqlite:gw.sqlite3"], [port]).start()
    try:
        with SIPClient(port) as c:
            assert c.request(ed("9300CNkiosk1|COkiosk-secret|CPHall|", 0)).startswith(b"941")
            reply = c.request(ed(f"11YN{DATE}{DATE}AOMAIN|AA700001|AB600001|AC|AD2468|", 1)).decode()
            assert reply.startswith("121NNY") and "|AB600001|" in reply and "|AJInstitutions de physique|" in reply
            wrong_pin = c.request(ed(f"11YN{DATE}{DATE}AOMAIN|AA700002|AB600001|AC|AD0000|", 2)).decode()
            assert wrong_pin.startswith("120")
    finally:
        gateway.stop()
    conn = sqlite3.connect(tmp_path / "gw.sqlite3")
    try:
        assert conn.execute("SELECT p.barcode, i.barcode, i.status, l.account, l.location FROM loans l "
                            "JOIN patrons p ON p.id = l.patron_id JOIN items i ON i.id = l.item_id "
                            "WHERE l.returned_at IS NULL").fetchall() == [("700001", "600001", "charged", "kiosk1",
                                                                            "Hall")]
    finally:
        conn.close()


def test_usage_figures_of_a_known_sequence(tmp_path: Path) -> None:
    imported_library(tmp_path)
    port, tls_like = free_port(), free_port()
    gateway = GatewayProcess(tmp_path, ["--listen", f"sip:tcp:{port}:interface=127.0.0.1",
                                        "--listen", f"sip:tcp:{tls_like}:interface=127.0.0.1",
                                        "--database", "sqlite:gw.sqlite3"], [port, tls_like]).start()
    try:
        with SIPClient(port) as c:
            assert c.request("9900302.00").startswith(b"98")                    # 99 refused: not logged in
            assert c.request("XX garbage").startswith(b"96")                    # ?? bad
            assert c.request("9300CNkiosk1|COkiosk-secret|CPHall|").startswith(b"941")   # 93 ok
            for _ in range(3):
                assert c.request(f"17{DATE}AOMAIN|AB600001|").startswith(b"18")  # 17 ok
            checkout = ed(f"11YN{DATE}{DATE}AOMAIN|AA700001|AB600001|AC|AD2468|", 1)
            assert c.request(checkout).startswith(b"121")                       # 11 ok
            assert c.request(checkout).startswith(b"121")                       # 11 replayed (a resend)
            assert c.request(f"11YN{DATE}{DATE}AOMAIN|AA700001|AB999999|AC|AD2468|").startswith(b"120")  # refused
        with SIPClient(tls_like) as c:
            assert c.request("9300CNkiosk1|COkiosk-secret|CPDesk 2|").startswith(b"941")
            assert c.request("9900302.00").startswith(b"98")
    finally:
        gateway.stop()  # the counts are written as it stops
    done = sipgateway("report", "usage", "--database", "sqlite:gw.sqlite3", "--by", "listener,account,terminal,code",
                      "--csv", cwd=tmp_path)
    first, second = f"sip:tcp:{port}:interface=127.0.0.1", f"sip:tcp:{tls_like}:interface=127.0.0.1"
    assert (done.returncode, done.stderr) == (0, "")
    assert sorted(done.stdout.splitlines()[1:]) == sorted([
        f"{first},,,99,0,1,0,0,0,1",
        f"{first},,,??,0,0,0,1,0,1",
        f"{first},kiosk1,Hall,93,1,0,0,0,0,1",
        f"{first},kiosk1,Hall,17,3,0,0,0,0,3",
        f"{first},kiosk1,Hall,11,1,1,0,0,1,3",
        f"{second},kiosk1,Desk 2,93,1,0,0,0,0,1",
        f"{second},kiosk1,Desk 2,99,1,0,0,0,0,1",
    ])
    assert done.stdout.splitlines()[0] == "listener,account,terminal,code,ok,refused,failed,bad,replayed,total"
