"""A gateway in front of another: a back gateway on the SQLite demo library, a front one
forwarding to it with ``--acs sip2://...`` or ``sip2s://...``, both the real twistd.  The 16
request pairs go through the front in pass-through and in pooled mode and their effect is
checked in the back's database; devices on the front's serial (pty) and TLS doors reach the
back; the front fails over from a stopped back to a second one."""

from __future__ import annotations

import os
import sqlite3
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipgateway.sip2 import checksum, parse
from tests.system.process import GatewayProcess, SIPClient, free_port
from tests.system.test_doors import SerialSIPClient, TLSSIPClient, endpoint_path
from tests.transports.certs_pki import CLIENT_SUBJECT, PKI, make_pki

DATE = "20240105    101500"


def ed(body: str, seq: int) -> str:
    text = f"{body}AY{seq % 10}AZ"
    return text + checksum(text.encode())


class Back:
    """A back gateway: the demo library, a raw door and (with a PKI) a TLS door that wants the
    test client's certificate and binds it to the demo account lpl-sc."""

    def __init__(self, workdir: Path, pki: PKI | None = None) -> None:
        workdir.mkdir()
        self.workdir, self.port = workdir, free_port()
        self.db = workdir / "back.sqlite3"
        raw = f"sip:tcp:{self.port}:interface=127.0.0.1"
        args = ["--database", f"sqlite:{self.db}", "--demo", "--listen", raw]
        ports = [self.port]
        if pki is not None:  # listeners in the file (--listen would replace them)
            self.tls_port = free_port()
            config = workdir / "back.ini"
            config.write_text(f"""\
[listener:raw]
listen = {raw}

[listener:tls]
listen = sip:tls:{self.tls_port}:privateKey={endpoint_path(pki.server.key_path)}:certKey={
                endpoint_path(pki.server.cert_path)}:caCerts={endpoint_path(pki.ca.cert_path)}:interface=127.0.0.1
cert_accounts =
    {CLIENT_SUBJECT} -> lpl-sc
""", encoding="utf-8")
            args = ["--config", str(config), *args[:-2]]
            ports.append(self.tls_port)
        self.proc = GatewayProcess(workdir, args, ports).start()

    def rows(self, sql: str, *params: object) -> list[tuple]:
        db = sqlite3.connect(self.db)
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def loans(self, item: str) -> list[tuple]:
        """(account, renewals, returned) of each loan of ``item``."""
        return self.rows("SELECT l.account, l.renewals, l.returned_at IS NOT NULL FROM loans l JOIN items i "
                         "ON i.id = l.item_id WHERE i.barcode = ? ORDER BY l.id", item)


class Front:
    """A front gateway forwarding to ``acs`` URLs; its own database is new (--init)."""

    def __init__(self, workdir: Path, acs: list[str], config: str = "", ports: tuple[int, ...] = ()) -> None:
        workdir.mkdir()
        self.workdir, self.port = workdir, free_port()
        (workdir / "front.ini").write_text(f"[listener:raw]\nlisten = sip:tcp:{self.port}:interface=127.0.0.1\n\n"
                                           f"{config}", encoding="utf-8")
        args = ["--config", str(workdir / "front.ini"), "--database", "sqlite:front.sqlite3", "--init"]
        for url in acs:
            args += ["--acs", url]
        self.proc = GatewayProcess(workdir, args, [self.port, *ports]).start()


@pytest.fixture
def stop() -> Iterator[list]:
    running: list = []
    yield running
    for gateway in reversed(running):
        gateway.proc.stop()


def started(stop: list, gateway):
    stop.append(gateway)
    return gateway


def circulate(port: int, login: str) -> None:
    """The 16 request pairs through one connection, each reply spec-exact with AY/AZ."""
    seq = 0

    def req(c: SIPClient, body: str, expect: str) -> bytes:
        nonlocal seq
        seq += 1
        reply = c.request(ed(body, seq))
        assert reply.decode().startswith(expect), reply
        assert reply[-9:-4] == f"AY{seq % 10}AZ".encode() and checksum(reply[:-4]) == reply[-4:].decode(), reply
        parse(reply)  # spec-exact: parses back strictly
        return reply

    with SIPClient(port) as c:
        assert c.request("9900302.00").startswith(b"98NNNNNN")  # before login: refused
        req(c, login, "941")
        status = req(c, "9900302.00", "98YYYY")  # on-line: the back answers
        assert c.request("97") == status  # byte for byte
        assert b"|BLY|CQY|" in req(c, f"23001{DATE}AOMAIN|AA100001|AC|AD1234|", "24              001")
        assert b"|CQN|" in c.request(f"23001{DATE}AOMAIN|AA100001|AC|AD9999|")
        out = req(c, f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|", "121")
        assert b"|AB200001|" in out and b"|AH" in out
        assert b"|AB200001|" in req(c, f"17{DATE}AOMAIN|AB200001|AC|", "1804")
        assert b"|AU200001|" in req(c, f"63001{DATE}  Y       AOMAIN|AA100001|AC|AD1234|BP1|BQ5|", "64")
        req(c, f"29NN{DATE}{' ' * 18}AOMAIN|AA100001|AD1234|AB200001|AC|", "301")
        req(c, f"65{DATE}AOMAIN|AA100001|AD1234|AC|", "661")
        req(c, f"09N{DATE}{DATE}APMAIN|AOMAIN|AB200001|AC|", "101")
        req(c, f"15+{DATE}AOMAIN|AA100001|AD1234|AB200002|AC|", "161")
        req(c, f"19{DATE}AOMAIN|AB200002|AC|CHdamaged cover|", "201")
        req(c, "3720240105    1015000100USDBV1.00|AOMAIN|AA100002|AC|AD1234|BKPOS-1|", "38Y")
        assert b"|AAdjfiander|" in req(c, f"01N{DATE}AOMAIN|ALCard retained|AAdjfiander|AC|", "24Y")
        req(c, f"25{DATE}AOMAIN|AAdjfiander|AC|AD6789|", "26 ")
        req(c, f"35{DATE}AOMAIN|AA100001|AC|AD1234|", "36Y")
        bad = ed(f"17{DATE}AOMAIN|AB200001|AC|", 9)[:-4] + "0000"
        assert c.request(bad) == b"96AZFEF6"  # answered by the front, nothing forwarded


def check_effects(back: Back, account: str) -> None:
    """What the circulation did, in the back's database, done as ``account``."""
    assert back.loans("200001") == [(account, 2, 1)]  # out, renewed (29, then 65), back in
    assert back.rows("SELECT account, amount_cents FROM payments WHERE transaction_id = 'POS-1'") == [(account, 100)]
    holds = back.rows("SELECT h.status FROM holds h JOIN patrons p ON p.id = h.patron_id JOIN items i "
                      "ON i.id = h.item_id WHERE p.barcode = '100001' AND i.barcode = '200002'")
    assert holds == [("waiting",)]
    assert back.rows("SELECT blocked FROM patrons WHERE barcode = 'djfiander'") == [(0,)]  # blocked, enabled
    done = {r[0] for r in back.rows("SELECT DISTINCT account FROM circulation_log WHERE operation != 'seed_demo'")}
    assert done == {account}, done


def test_pass_through_all_16_pairs_reach_the_back(tmp_path: Path, stop: list) -> None:
    back = started(stop, Back(tmp_path / "back"))
    front = started(stop, Front(tmp_path / "front", [f"sip2://127.0.0.1:{back.port}?institution=MAIN"]))
    circulate(front.port, "9300CNsc1|COpass1|CPMAIN|")  # the back's own account: checked by the back
    check_effects(back, "sc1")
    with SIPClient(front.port) as c:
        assert c.request("9300CNsc1|COwrong|CPMAIN|") == b"940"  # the back refuses it
    log = front.proc.log()
    assert "pass-through mode" in log and "login failed for account 'sc1'" in log
    assert "pass1" not in log and "wrong" not in log  # no password in the front's log


POOLED_CONFIG = """\
[account:kiosk]
password = kiosk-secret
institution = MAIN
"""


def test_pooled_all_16_pairs_reach_the_back_as_the_pool_login(tmp_path: Path, stop: list) -> None:
    back = started(stop, Back(tmp_path / "back"))
    front = started(stop, Front(tmp_path / "front", [f"sip2://127.0.0.1:{back.port}?login=scclient&password=clientpwd"
                                                    "&pool=2"], POOLED_CONFIG))
    circulate(front.port, "9300CNkiosk|COkiosk-secret|CPMAIN|")  # the front's own account
    check_effects(back, "scclient")
    with SIPClient(front.port) as c:
        assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"940"  # not an account of the front
    log = front.proc.log()
    assert "pooled mode" in log and "password=****" in log and "clientpwd" not in log


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(str(tmp_path_factory.mktemp("pki")))


def test_sip2s_pooled_all_16_pairs_with_a_verified_server_and_a_client_certificate(tmp_path: Path, stop: list,
                                                                                    pki: PKI) -> None:
    back = started(stop, Back(tmp_path / "back", pki))
    url = (f"sip2s://localhost:{back.tls_port}?login=lpl-sc&password=1234&cafile={pki.ca.cert_path}"
           f"&certfile={pki.client.cert_path}&keyfile={pki.client.key_path}")
    front = started(stop, Front(tmp_path / "front", [url], POOLED_CONFIG))
    circulate(front.port, "9300CNkiosk|COkiosk-secret|CPMAIN|")
    check_effects(back, "lpl-sc")  # the back bound the front's certificate to lpl-sc


def test_sip2s_pass_through_and_an_unverifiable_server(tmp_path: Path, stop: list, pki: PKI) -> None:
    back = started(stop, Back(tmp_path / "back", pki))
    client = f"certfile={pki.client.cert_path}&keyfile={pki.client.key_path}"
    front = started(stop, Front(tmp_path / "front", [f"sip2s://127.0.0.1:{back.tls_port}?cafile={pki.ca.cert_path}"
                                                    f"&{client}"]))
    with SIPClient(front.port) as c:
        assert c.request("9300CNlpl-sc|CO1234|CPMAIN|") == b"941"
        assert c.request(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|").startswith(b"121")
    assert back.loans("200001") == [("lpl-sc", 0, 0)]
    # without cafile the system's trust store does not know the test CA: nothing is sent
    other = started(stop, Front(tmp_path / "other", [f"sip2s://127.0.0.1:{back.tls_port}?{client}"]))
    with SIPClient(other.port) as c:
        assert c.request("9300CNlpl-sc|CO1234|CPMAIN|") == b"940"
    assert "could not be forwarded to the library system" in other.proc.log()
    assert back.rows("SELECT count(*) FROM auth_failures") == [(0,)]


def test_devices_on_the_fronts_serial_and_tls_doors_reach_the_back(tmp_path: Path, stop: list, pki: PKI) -> None:
    back = started(stop, Back(tmp_path / "back"))
    master, slave = os.openpty()
    tty.setraw(slave)
    pty_name = os.ttyname(slave)
    os.close(slave)
    stop.append(_Closes(master))
    tls_port = free_port()
    config = f"""\
[listener:serial]
listen = sip:serial:{endpoint_path(pty_name)}:baudrate=9600:account=sorter

[listener:tls]
listen = sip:tls:{tls_port}:privateKey={endpoint_path(pki.server.key_path)}:certKey={
        endpoint_path(pki.server.cert_path)}:caCerts={endpoint_path(pki.ca.cert_path)}:interface=127.0.0.1
cert_accounts =
    {CLIENT_SUBJECT} -> kiosk

[account:sorter]
password = sorter-secret
institution = MAIN
upstream_login = sc1
upstream_password = pass1

[account:kiosk]
password = kiosk-secret
institution = MAIN
upstream_login = lpl-sc
upstream_password_file = {tmp_path / "lpl-password"}
"""
    (tmp_path / "lpl-password").write_text("1234\n", encoding="utf-8")
    front = started(stop, Front(tmp_path / "front", [f"sip2://127.0.0.1:{back.port}"], config, (tls_port,)))
    _wait_for(front, f"serial {pty_name}: open at 9600 8N1")
    serial = SerialSIPClient(master)
    assert serial.request(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|").startswith(b"121")
    with TLSSIPClient(tls_port, pki.ca.cert_path, pki.client) as device:
        assert device.request(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200003|AC|AD1234|").startswith(b"121")
    assert serial.request(f"09N{DATE}{DATE}APMAIN|AOMAIN|AB200001|AC|").startswith(b"101")
    assert back.loans("200001") == [("sc1", 0, 1)]    # the serial line's account logged in as sc1
    assert back.loans("200003") == [("lpl-sc", 0, 0)]  # the certificate's account as lpl-sc
    assert "1234" not in front.proc.log() and "pass1" not in front.proc.log()


def test_failover_from_a_stopped_back_to_the_second(tmp_path: Path, stop: list) -> None:
    first = started(stop, Back(tmp_path / "first"))
    second = started(stop, Back(tmp_path / "second"))
    urls = [f"sip2://127.0.0.1:{b.port}?login=sc1&password=pass1&timeout=2" for b in (first, second)]
    front = started(stop, Front(tmp_path / "front", urls, POOLED_CONFIG))
    with SIPClient(front.port) as c:
        assert c.request("9300CNkiosk|COkiosk-secret|CPMAIN|") == b"941"
        assert c.request(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|").startswith(b"121")
        first.proc.stop()
        assert c.request(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200002|AC|AD1234|").startswith(b"121")
        assert c.request("9900302.00").startswith(b"98YYYY")  # still on-line: the second answers
    assert first.loans("200001") == [("sc1", 0, 0)] and first.loans("200002") == []
    assert second.loans("200002") == [("sc1", 0, 0)] and second.loans("200001") == []


class _Closes:
    """The test's end of the serial cable, closed after the gateways stop."""

    def __init__(self, fd: int) -> None:
        self.proc = self
        self.fd = fd

    def stop(self) -> None:
        os.close(self.fd)


def _wait_for(gateway: Front, text: str) -> None:
    import time

    deadline = time.monotonic() + 15
    while text not in gateway.proc.log():
        assert time.monotonic() < deadline, gateway.proc.log()
        time.sleep(0.05)
