"""The whole gateway, end to end: the real twistd on a free loopback port, a circulation
over a socket using every one of the 16 message pairs, the database checked after, and
the state still there after a restart."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sipgateway.sip2 import checksum, parse
from tests.system.process import GatewayProcess, SIPClient, free_port, wait_gone

DATE = "20240105    101500"


def ed(body: str, seq: int) -> str:
    text = f"{body}AY{seq % 10}AZ"
    return text + checksum(text.encode())


def check_ed(reply: bytes, seq: int) -> None:
    """The reply echoes the sequence number and carries a correct checksum."""
    text = reply.decode()
    assert text[-9:-6] == f"AY{seq % 10}", text
    assert text[-6:-4] == "AZ"
    assert checksum(reply[:-4]) == text[-4:], text


@pytest.fixture
def gateway(tmp_path: Path):
    port = free_port()
    proc = GatewayProcess(tmp_path, ["--listen", f"sip:tcp:{port}:interface=127.0.0.1",
                                     "--database", "sqlite:gw.sqlite3", "--demo"], [port]).start()
    proc.port = port
    yield proc
    proc.stop()


def test_full_circulation_over_a_socket(gateway: GatewayProcess, tmp_path: Path) -> None:
    seq = 0

    def req(client: SIPClient, body: str, expect: str) -> bytes:
        nonlocal seq
        seq += 1
        reply = client.request(ed(body, seq))
        assert reply.decode().startswith(expect), reply
        check_ed(reply, seq)
        parse(reply)  # spec-exact: parses back strictly, checksum verified
        return reply

    with SIPClient(gateway.port) as c:
        assert c.request("9900302.00").startswith(b"98NNNNNN")  # before login: refused, usable
        req(c, "9300CNsc1|COpass1|CPMAIN|", "941")
        status = req(c, "9900302.00", "98YYYY")
        assert b"|BXYYYYYYYYYYYYYYYY|" in status and b"2.00AOMAIN|" in status
        assert c.request("97") == status  # byte for byte
        req(c, f"23001{DATE}AOMAIN|AA100001|AC|AD1234|", "24              001")
        assert b"|BLY|CQY|" in c.request(f"23001{DATE}AOMAIN|AA100001|AC|AD1234|")
        assert b"|CQN|" in c.request(f"23001{DATE}AOMAIN|AA100001|AC|AD9999|")
        out = req(c, f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|", "121")
        assert b"|AB200001|" in out and b"|AH" in out
        info = req(c, f"17{DATE}AOMAIN|AB200001|AC|", "1804")
        assert b"|AB200001|" in info
        req(c, f"63001{DATE}  Y       AOMAIN|AA100001|AC|AD1234|BP1|BQ5|", "64")
        assert b"|AU200001|" in c.request(f"63001{DATE}  Y       AOMAIN|AA100001|AC|AD1234|BP1|BQ5|")
        req(c, f"29NN{DATE}{' ' * 18}AOMAIN|AA100001|AD1234|AB200001|AC|", "301")
        req(c, f"65{DATE}AOMAIN|AA100001|AD1234|AC|", "661")
        req(c, f"09N{DATE}{DATE}APMAIN|AOMAIN|AB200001|AC|", "101")
        req(c, f"15+{DATE}AOMAIN|AA100001|AD1234|AB200002|AC|", "161")
        req(c, f"19{DATE}AOMAIN|AB200002|AC|CHdamaged cover|", "201")
        req(c, "3720240105    1015000100USDBV1.00|AOMAIN|AA100002|AC|AD1234|BKPOS-1|", "38Y")
        blocked = req(c, f"01N{DATE}AOMAIN|ALCard retained|AAdjfiander|AC|", "24Y")
        assert b"|AAdjfiander|" in blocked
        req(c, f"25{DATE}AOMAIN|AAdjfiander|AC|AD6789|", "26 ")
        req(c, f"35{DATE}AOMAIN|AA100001|AC|AD1234|", "36Y")
        bad = ed(f"17{DATE}AOMAIN|AB200001|AC|", 9)[:-4] + "0000"
        assert c.request(bad) == b"96AZFEF6"
        # a checkout that stays out, to see after the restart
        req(c, f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200002|AC|AD1234|", "12")

    db = sqlite3.connect(tmp_path / "gw.sqlite3")
    try:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        assert {"loans", "holds", "payments"} <= tables, tables
    finally:
        db.close()

    database_process = gateway.children()
    assert len(database_process) == 1, database_process
    gateway.stop()
    assert wait_gone(database_process) == []  # stopped with twistd, after its last commit
    assert "database process" not in gateway.log()  # no error from it on the way
    again = GatewayProcess(tmp_path, gateway.args, [gateway.port]).start()
    try:
        with SIPClient(gateway.port) as c:
            assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
            assert c.request(f"17{DATE}AOMAIN|AB200001|AC|").startswith(b"18")
            blocked = c.request(f"23001{DATE}AOMAIN|AAdjfiander|AC|AD6789|")
            assert blocked.startswith(b"24 "), blocked  # enabled again, persisted
    finally:
        again.stop()


def test_line_ends_crlf_and_lf_are_accepted(gateway: GatewayProcess) -> None:
    with SIPClient(gateway.port) as c:
        assert c.request("9300CNsc1|COpass1|CPMAIN|", b"\r\n") == b"941"
        assert c.request("9900302.00", b"\n").startswith(b"98YYYY")


def test_overlong_line_closes_the_connection(gateway: GatewayProcess) -> None:
    with SIPClient(gateway.port) as c:
        c.sock.sendall(b"9" * 10000)
        assert c.sock.recv(100) == b""
    assert "line longer than 4096 bytes" in gateway.log()


def test_many_clients_at_once(gateway: GatewayProcess) -> None:
    clients = [SIPClient(gateway.port) for _ in range(50)]
    try:
        for c in clients:
            c.sock.sendall(b"9300CNsc1|COpass1|CPMAIN|\r")
        for c in clients:
            assert c.read_reply() == b"941"
        for c in clients:
            c.sock.sendall(b"9900302.00\r")
        for c in clients:
            assert c.read_reply().startswith(b"98YYYY")
    finally:
        for c in clients:
            c.close()


def test_a_checkout_resent_on_a_new_connection_is_answered_ok(gateway: GatewayProcess, tmp_path: Path) -> None:
    """A kiosk that lost the reply reconnects and sends the same 11: it gets 121 with the
    loan's due date, and the database still has one loan."""
    checkout = ed(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|", 3)
    replies = []
    for _ in range(2):
        with SIPClient(gateway.port) as c:
            assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
            replies.append(c.request(checkout))
    first, again = (parse(r) for r in replies)
    assert replies[0].startswith(b"121") and replies[1].startswith(b"121"), replies
    assert again.fields["AH"] == first.fields["AH"] and again.fields["AB"] == "200001"
    check_ed(replies[1], 3)
    db = sqlite3.connect(tmp_path / "gw.sqlite3")
    try:
        assert db.execute("SELECT count(*) FROM loans l JOIN items i ON i.id = l.item_id "
                          "WHERE i.barcode = '200001'").fetchone()[0] == 1
    finally:
        db.close()
