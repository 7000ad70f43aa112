"""The ``http`` door end to end: ONE real ``twistd -n sipgateway`` with three HTTPS listeners
(certificates made here), driven by the standard library's ``http.client`` over TLS with
keep-alive: OCLC Wise's token flow (login, 63, 11, 09, the token expiring, 401, a new
login), the raw and SIP2Mediator shapes, 405 and 400 as JSON, the lockout after 10 failed
logins from one address, and a client certificate bound to an SC account."""

from __future__ import annotations

import http.client
import json
import sqlite3
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from sipgateway.sip2 import checksum
from tests.system.process import GatewayProcess, free_port
from tests.transports.certs_pki import CLIENT_SUBJECT, PKI, Issued, make_pki

TIMEOUT = 15.0
SHORT_IDLE = 2  # seconds: the idle_timeout of the listener where tokens expire
WISE = "/sip2https/services"


def endpoint_path(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:")


@dataclass
class Gateway:
    proc: GatewayProcess
    pki: PKI
    db: Path
    https: int       # Wise, raw and JSON shapes, no client certificates
    short: int       # the same with idle_timeout = SHORT_IDLE
    certs: int       # client certificates required, one bound to lpl-sc

    def connect(self, port: int, cert: Issued | None = None) -> http.client.HTTPSConnection:
        context = ssl.create_default_context(cafile=self.pki.ca.cert_path)  # the server's names 127.0.0.1
        if cert is not None:
            context.load_cert_chain(cert.cert_path, cert.key_path)
        return http.client.HTTPSConnection("127.0.0.1", port, timeout=TIMEOUT, context=context)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    workdir = tmp_path_factory.mktemp("http")
    pki = make_pki(str(workdir / "pki"))
    server = f"privateKey={endpoint_path(pki.server.key_path)}:certKey={endpoint_path(pki.server.cert_path)}"
    https, short, certs = free_port(), free_port(), free_port()
    db = workdir / "gw.sqlite3"
    config = workdir / "gateway.ini"
    config.write_text(f"""\
[gateway]
database = sqlite:{db}
demo = yes

[listener:https]
listen = http:tls:{https}:{server}:interface=127.0.0.1

[listener:short]
listen = http:tls:{short}:{server}:interface=127.0.0.1
idle_timeout = {SHORT_IDLE}

[listener:certs]
listen = http:tls:{certs}:{server}:caCerts={endpoint_path(pki.ca.cert_path)}:interface=127.0.0.1
cert_accounts =
    {CLIENT_SUBJECT} -> lpl-sc
""", encoding="utf-8")
    proc = GatewayProcess(workdir, ["--config", str(config)], [https, short, certs])
    try:
        proc.start()
        yield Gateway(proc, pki, db, https, short, certs)
    finally:
        if proc.proc is not None:
            proc.stop()


def post(conn: http.client.HTTPSConnection, path: str, body: bytes | str, headers: dict[str, str] | None = None,
         method: str = "POST") -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


def wise(conn: http.client.HTTPSConnection, message: str, token: str = "") -> tuple[int, dict]:
    status, _, body = post(conn, WISE, json.dumps({"sip2request": message, "token": token}),
                           {"Content-Type": "application/json"})
    return status, json.loads(body)


def sip_now() -> str:
    return datetime.now().strftime("%Y%m%d    %H%M%S")


def ed(body: str, seq: int) -> str:
    text = f"{body}AY{seq}AZ"
    return text + checksum(text.encode())


def test_wise_token_flow_login_63_11_09_then_expiry_401_and_login_again(gateway: Gateway) -> None:
    conn = gateway.connect(gateway.https)
    status, login = wise(conn, ed("9300CNsc1|COpass1|CPMAIN|", 1))
    assert status == 200 and login["sip2response"] == "941AY1AZFDFC" and len(login["token"]) >= 43
    token = login["token"]
    status, patron = wise(conn, ed(f"63001{sip_now()}          AOMAIN|AA100001|AC|AD1234|", 2), token)
    assert status == 200 and patron["token"] == token
    assert patron["sip2response"].startswith("64") and "|AEAda Lovelace|" in patron["sip2response"]
    assert patron["sip2response"][-9:-4] == "AY2AZ"
    reply = patron["sip2response"].encode()
    assert checksum(reply[:-4]) == reply[-4:].decode()
    _, checkout = wise(conn, f"11YN{sip_now()}{' ' * 18}AOMAIN|AA100001|AB200002|AC|AD1234|", token)
    assert checkout["sip2response"].startswith("121"), checkout
    db = sqlite3.connect(f"file:{gateway.db}?mode=ro", uri=True)
    try:
        open_loans = "SELECT count(*) FROM loans l JOIN items i ON i.id = l.item_id " \
                     "WHERE i.barcode = '200002' AND l.returned_at IS NULL AND l.account = 'sc1'"
        assert db.execute(open_loans).fetchone()[0] == 1
        _, checkin = wise(conn, f"09N{sip_now()}{sip_now()}APMAIN|AOMAIN|AB200002|AC|", token)
        assert checkin["sip2response"].startswith("101"), checkin
        assert db.execute(open_loans).fetchone()[0] == 0
    finally:
        db.close()
    conn.close()

    # on the listener whose sessions idle out after SHORT_IDLE seconds
    conn = gateway.connect(gateway.short)
    _, login = wise(conn, "9300CNsc1|COpass1|CPMAIN|")
    token = login["token"]
    assert wise(conn, "9900302.00", token)[1]["sip2response"].startswith("98")
    time.sleep(SHORT_IDLE + 0.5)  # unused for longer than its idle_timeout
    status, expired = wise(conn, "9900302.00", token)
    assert status == 401 and expired == {"error": "unknown or expired session; log in again with a 93"}
    status, again = wise(conn, "9300CNsc1|COpass1|CPMAIN|", token)  # Wise clients log in again by themselves
    assert status == 200 and again["sip2response"] == "941" and again["token"] not in ("", token)
    assert wise(conn, "9900302.00", again["token"])[1]["sip2response"].startswith("98")
    conn.close()
    assert "idle for 2 s; closing" in gateway.proc.log()


def test_raw_and_json_shapes(gateway: Gateway) -> None:
    conn = gateway.connect(gateway.https)
    status, headers, body = post(conn, "/sip2", "9300CNsc1|COpass1|CPMAIN|\r",
                                 {"Content-Type": "text/plain; charset=utf-8"})
    assert (status, body) == (200, b"941") and headers["content-type"] == "text/plain; charset=utf-8"
    session = headers["sip2-session"]
    status, headers, body = post(conn, "/sip2", f"17{sip_now()}AOMAIN|AB1565921879|AC|", {"Sip2-Session": session})
    assert status == 200 and body.startswith(b"18") and b"|AB1565921879|" in body
    assert headers["sip2-session"] == session

    login = {"code": "93", "fixed_fields": ["0", "0"], "fields": [{"CN": "sc1"}, {"CO": "pass1"}, {"CP": "MAIN"}]}
    status, headers, body = post(conn, "/sip2/json", json.dumps(login), {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body) == {"code": "94", "fixed_fields": ["1"], "fields": []}
    session = headers["sip2-session"]
    status_request = {"code": "99", "fixed_fields": ["0", "030", "2.00"], "fields": [{"AY": "5"}]}
    status, _, body = post(conn, "/sip2/json", json.dumps(status_request), {"Sip2-Session": session})
    reply = json.loads(body)
    assert reply["code"] == "98" and reply["fixed_fields"][0] == "Y" and reply["fixed_fields"][-1] == "2.00"
    assert {"AO": "MAIN"} in reply["fields"] and reply["fields"][-2] == {"AY": "5"}
    status, _, body = post(conn, "/sip2/json", '{"code": "XS"}', {"Sip2-Session": session})
    assert json.loads(body) == {"code": "XT", "fixed_fields": [], "fields": []}
    status, _, body = post(conn, "/sip2/json", json.dumps(status_request), {"Sip2-Session": session})
    assert status == 401
    conn.close()


def test_405_and_400_are_json(gateway: Gateway) -> None:
    conn = gateway.connect(gateway.https)
    status, headers, body = post(conn, WISE, b"", method="GET")
    assert (status, body) == (405, b'{"error": "Method not allowed"}') and headers["allow"] == "POST"
    status, headers, body = post(conn, WISE, b'{"sip2request": "9300CNsc1|', {"Content-Type": "application/json"})
    assert status == 400 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "the body is not JSON (Unterminated string starting at: line 1 column 17)"}
    # the connection is still good after both
    assert wise(conn, "9900302.00")[0] == 200
    conn.close()
    log = gateway.proc.log()
    assert "Traceback" not in log and "HTTP 400 for /sip2https/services: the body is not JSON" in log


def test_ten_failed_logins_from_one_address_lock_it_out(gateway: Gateway) -> None:
    conn = gateway.connect(gateway.https)
    for _ in range(10):
        assert wise(conn, "9300CNscclient|COwrong|CPUWOLS|")[1] == {"sip2response": "940", "token": ""}
    assert wise(conn, "9300CNscclient|COclientpwd|CPUWOLS|")[1] == {"sip2response": "940", "token": ""}
    conn.close()
    log = gateway.proc.log()
    assert "login locked out for address and account 127.0.0.1 (scclient) after 10 failed logins" in log, log
    assert "clientpwd" not in log and "COwrong" not in log


def test_a_client_certificate_bound_to_an_account_logs_in_without_a_93(gateway: Gateway) -> None:
    conn = gateway.connect(gateway.certs, gateway.pki.client)
    status, first = wise(conn, f"17{sip_now()}AOLPL|AB400001|AC|")
    assert status == 200 and first["sip2response"].startswith("18") and first["token"]
    assert "|AB400001|" in first["sip2response"] and "log in" not in first["sip2response"]
    status, again = wise(conn, f"17{sip_now()}AOLPL|AB400002|AC|", first["token"])
    assert status == 200 and again["token"] == first["token"]
    conn.close()
    with pytest.raises((ssl.SSLError, ConnectionError)):  # no certificate: no handshake
        stranger = gateway.connect(gateway.certs)
        wise(stranger, "9900302.00")
    assert f"logged in as 'lpl-sc' (client certificate {CLIENT_SUBJECT})" in gateway.proc.log()


def test_clients_that_offer_alpn_get_http_1_1(gateway: Gateway) -> None:
    """curl, browsers and most HTTP libraries offer ALPN (h2, http/1.1).  Twisted's own ALPN
    callback fails the handshake when the listener names no protocol ("tlsv1 alert internal
    error"); the http door selects http/1.1 and answers."""
    context = ssl.create_default_context(cafile=gateway.pki.ca.cert_path)
    context.set_alpn_protocols(["h2", "http/1.1"])
    conn = http.client.HTTPSConnection("127.0.0.1", gateway.https, timeout=TIMEOUT, context=context)
    status, login = wise(conn, "9300CNsc1|COpass1|CPMAIN|")
    assert status == 200 and login["sip2response"] == "941"
    assert conn.sock.selected_alpn_protocol() == "http/1.1"
    conn.close()
