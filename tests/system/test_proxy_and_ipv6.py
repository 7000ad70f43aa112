"""A listener behind HAProxy (``haproxy:`` endpoint) with the real twistd: the PROXY v1 and
v2 headers the test sends give the lockout, the connection limits and the log the client's
address; and a ``tcp6:`` listener on ::1."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

from tests.system.process import BIN, GatewayProcess, SIPClient, free_port
from tests.transports.certs_pki import make_pki
from tests.transports.test_proxyheader import v2

LOGIN = "9300CNsc1|COpass1|CPMAIN|"
WRONG = "9300CNsc1|COnot-the-password|CPMAIN|"


class ProxiedClient(SIPClient):
    """What HAProxy relays: the header, then the client's bytes."""

    def __init__(self, port: int, header: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        self.sock.sendall(header)
        self.buffer = b""


def v1(source: str) -> bytes:
    return f"PROXY TCP4 {source} 127.0.0.1 40001 6001\r\n".encode()


def test_proxy_v1_and_v2_headers_give_the_lockout_the_clients_address(tmp_path: Path) -> None:
    port = free_port()
    gw = GatewayProcess(tmp_path, ["--listen", f"sip:haproxy:tcp:{port}:interface=127.0.0.1",
                                   "--database", "sqlite:gw.sqlite3", "--demo"], [port]).start()
    try:
        for n in range(10):  # one device behind the balancer, half its failures in each version
            header = v1("192.0.2.7") if n % 2 else v2("192.0.2.7", "127.0.0.1", 40001, port)
            with ProxiedClient(port, header) as c:
                assert c.request(WRONG) == b"940"
        with ProxiedClient(port, v2("192.0.2.7", "127.0.0.1", 40002, port)) as c:
            assert c.request(LOGIN) == b"940"  # that device is locked out
        with ProxiedClient(port, v1("192.0.2.8")) as other:  # another one, same balancer: not
            assert other.request(LOGIN) == b"941"
            assert other.request("9900302.00").startswith(b"98")
        with SIPClient(port) as bare:  # no header: closed, never a session
            bare.sock.sendall(LOGIN.encode() + b"\r")
            try:
                answer = bare.sock.recv(100)
            except ConnectionResetError:  # aborted: the balancer's side of nothing
                answer = b""
            assert answer == b""
        listed = subprocess.run([str(BIN / "sipgateway"), "unlock", "--list", "--database",
                                 f"sqlite:{tmp_path / 'gw.sqlite3'}"], capture_output=True, text=True, timeout=60)
        assert "login from address with account 192.0.2.7 (sc1): LOCKED until" in listed.stdout, listed.stdout
    finally:
        gw.stop()
    log = gw.log()
    assert "login locked out for address and account 192.0.2.7 (sc1) after 10 failed logins" in log
    assert "192.0.2.8:40001: logged in as 'sc1'" in log
    assert "127.0.0.1 (sc1)" not in log  # the balancer's address is never the device's
    assert "the connection did not start with a PROXY protocol header; closing" in log


def test_tcp6_listener_on_loopback(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    gw = GatewayProcess(tmp_path, ["--listen", f"sip:tcp6:{port}:interface=\\:\\:1",
                                   "--database", "sqlite:gw.sqlite3", "--demo"], []).start()
    try:
        with SIPClient(port, host="::1") as c:
            assert c.request(LOGIN) == b"941"
            assert c.request("9900302.00").startswith(b"98")
    finally:
        gw.stop()
    assert "[::1]:" in gw.log() and "logged in as 'sc1'" in gw.log()


def test_proxy_header_before_tls(tmp_path: Path) -> None:
    """``haproxy:tls:``: the header comes in clear, then the TLS handshake (HAProxy in TCP
    mode with send-proxy); the session sees the header's address."""
    pki = make_pki(str(tmp_path / "pki"))
    port = free_port()
    gw = GatewayProcess(tmp_path, ["--listen", f"sip:haproxy:tls:{port}:interface=127.0.0.1:"
                                   f"privateKey={pki.server.key_path}:certKey={pki.server.cert_path}",
                                   "--database", "sqlite:gw.sqlite3", "--demo"], [port]).start()
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(pki.ca.cert_path)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(v1("192.0.2.9"))
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                client = SIPClient.__new__(SIPClient)
                client.sock, client.buffer = tls, b""
                assert client.request(LOGIN) == b"941"
                assert client.request("9900302.00").startswith(b"98")
    finally:
        gw.stop()
    assert [line for line in gw.log().splitlines() if "logged in as 'sc1'" in line and " 192.0.2.9:40001 " in line]
