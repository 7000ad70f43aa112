"""OCLC Wise SIP2+ end to end: the real twistd with ``licences`` in its config, a Wise
kiosk's dialogue over a socket (98 GG, 37 with purposes, 39, 41, 70, the features not
offered, an undocumented Y5), and the database checked after."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from sipgateway.sip2 import checksum, parse, sip_date
from tests.system.process import GatewayProcess, SIPClient, free_port

GG = "GGLIC_BETAAL / LIC_MAKEN_BOEKINGEN / LIC_VERLENGMOGELIJKHEDEN|"


def ed(body: str, seq: int) -> str:
    text = f"{body}AY{seq % 10}AZ"
    return text + checksum(text.encode())


def test_a_wise_kiosk_over_a_socket(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "gw.ini").write_text(
        "[gateway]\nlicences = LIC_BETAAL / LIC_MAKEN_BOEKINGEN / LIC_VERLENGMOGELIJKHEDEN\n")
    proc = GatewayProcess(tmp_path, ["--config", "gw.ini", "--listen", f"sip:tcp:{port}:interface=127.0.0.1",
                                     "--database", "sqlite:gw.sqlite3", "--demo"], [port]).start()
    today = datetime.now().strftime("%d-%m-%Y")
    try:
        with SIPClient(port) as c:
            seq = 0

            def req(body: str) -> str:
                nonlocal seq
                seq += 1
                reply = c.request(ed(body, seq))
                parse(reply)  # strict: spec-exact, checksum verified
                return reply.decode()[:-9]  # without AY/AZ

            date = sip_date(datetime.now())
            assert req("9300CNsc1|COpass1|CPMAIN|") == "941"
            assert req("9900302.00").endswith(f"|ANMAIN|{GG}")
            r = req(f"37{date}0100USDBV5.00|AOMAIN|AA100001|AC|AD|CG|BK|FX12345|FC5.00|")
            assert r.startswith("38Y") and r.endswith(
                "|AA100001|BKP1|AF5.00 USD added to your credit; your credit is 5.00 USD|CC15.00|"), r
            r = req(f"39{date}AA100001|BV1.00|FH2910|FI09|")
            assert r[21:] == "AA100001|AFPaid 1.00 USD from your credit|CC14.00|" and r.startswith("40Y"), r
            r = req(f"41{date}AA100001|FJ{today}|FK{today}|FCY|")
            assert r == (f"42YZ{today} ~ Deposit ~ 5.00 ~ Cash ~ Credit|YZ{today} ~ Usage ~ 1.00 ~ Deposit ~ "
                         "Usage 2910|AF2 payment(s)|"), r
            assert req(f"11NN{date}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|").startswith("121")
            r = req(f"70{date}|AA100001|AB|")
            assert r.startswith("71GC200001~Sketch of the Analytical Engine~") and r.endswith(
                "~0.00~0.00~0~0.00~|FG0|AF1 of 1 item(s) can be renewed|"), r
            assert req(f"Y1{date}AA100001|") == "Y20AFPunch cards are not offered by this library|"
            assert req("X1FOjan12345|AA100001|AD1234|") == (
                "X21AA100001|FOjan12345|AFUser names are not offered by this library|")
            assert c.request(f"Y5{date}AA100001|") == b"96"
            assert req(f"23001{date}AOMAIN|AA100001|AC|AD1234|").startswith("24")  # still served
    finally:
        proc.stop()
    log = proc.log()
    assert "unknown message code ('Y5')" in log
    assert "audit 39 ok account=sc1 location=MAIN patron=****01 item=-" in log
    assert "audit X1 refused account=sc1 location=MAIN patron=****01 item=-" in log
    db = sqlite3.connect(tmp_path / "gw.sqlite3")
    assert db.execute("SELECT deposit_cents FROM patrons WHERE barcode = '100001'").fetchone() == (400,)
    assert db.execute("SELECT kind, amount_cents, method, code, tracking FROM journal ORDER BY id").fetchall() == [
        ("deposit", 500, 0, "", "12345"), ("usage", 100, 9, "2910", "")]
    db.close()
