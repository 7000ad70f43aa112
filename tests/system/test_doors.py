"""Issue 4, the four doors: ONE real ``twistd -n sipgateway`` with a raw TCP, a TLS (client
certificates, one bound to an SC account), a telnet and a serial (pseudo-terminal) listener,
all from a config file written here. The same checkout/checkin runs on the four doors at
the same time, and the database shows each one; bad TLS clients are refused while the
gateway keeps serving; ``openssl s_client`` gets in with the certificate and not without."""

from __future__ import annotations

import os
import select
import shutil
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import tty
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from OpenSSL import crypto

from sipgateway.acs.sqlite.schema import INCONSISTENT_ITEMS_SQL
from sipgateway.sip2 import checksum
from sipgateway.transports.tls import peer_subject
from tests.system.process import GatewayProcess, SIPClient, free_port
from tests.transports.certs_pki import CLIENT_SUBJECT, PKI, Issued, make_pki

TIMEOUT = 15.0  # seconds for any one reply, handshake or log line
REFUSED_LOG = "TLS refused or failed"


# --- the gateway --------------------------------------------------------------------------

@dataclass
class FourDoors:
    proc: GatewayProcess
    workdir: Path
    pki: PKI
    db_path: Path
    raw_port: int
    tls_port: int
    telnet_port: int
    pty_master: int
    pty_name: str

    def wait_for_log(self, pattern: str, count: int = 1) -> str:
        """Bounded polling: the log is written by another process."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            log = self.proc.log()
            if log.count(pattern) >= count:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} x {pattern!r} not in the gateway's log:\n{log}")
            time.sleep(0.05)


def endpoint_path(path: str) -> str:
    """A file name inside an endpoint string: ':' and '\\' escaped as Twisted wants."""
    return path.replace("\\", "\\\\").replace(":", "\\:")


def write_config(workdir: Path, pki: PKI, db: Path, raw: int, tls: int, telnet: int, pty_name: str) -> Path:
    tls_files = (f"privateKey={endpoint_path(pki.server.key_path)}:certKey={endpoint_path(pki.server.cert_path)}"
                 f":caCerts={endpoint_path(pki.ca.cert_path)}")
    config = workdir / "gateway.ini"
    config.write_text(f"""\
[gateway]
database = sqlite:{db}
demo = yes

[listener:raw]
listen = sip:tcp:{raw}:interface=127.0.0.1

[listener:tls]
listen = sip:tls:{tls}:{tls_files}:interface=127.0.0.1
cert_accounts =
    {CLIENT_SUBJECT} -> lpl-sc

[listener:telnet]
listen = telnet:tcp:{telnet}:interface=127.0.0.1

[listener:serial]
listen = sip:serial:{endpoint_path(pty_name)}:baudrate=9600:account=scclient
""", encoding="utf-8")
    return config


@pytest.fixture(scope="module", params=[1, 2], ids=["one process", "two workers"])
def doors(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[FourDoors]:
    """Every test runs on one process and on ``--workers 2`` (the serial line is worker 1's)."""
    workdir = tmp_path_factory.mktemp("doors")
    pki = make_pki(str(workdir / "pki"))
    # The serial cable: the gateway opens the slave by name, the test keeps the master.
    master, slave = os.openpty()
    tty.setraw(slave)  # no line discipline in the way: bytes pass as written
    pty_name = os.ttyname(slave)
    os.close(slave)
    raw, tls, telnet = free_port(), free_port(), free_port()
    db = workdir / "gw.sqlite3"
    config = write_config(workdir, pki, db, raw, tls, telnet, pty_name)
    proc = GatewayProcess(workdir, ["--config", str(config), "--workers", str(request.param)], [raw, tls, telnet])
    try:
        proc.start()
        four = FourDoors(proc, workdir, pki, db, raw, tls, telnet, master, pty_name)
        # pyserial flushes the line when it opens it: speak only after that
        four.wait_for_log(f"serial {pty_name}: open at 9600 8N1")
        yield four
    finally:
        if proc.proc is not None:
            proc.stop()
        os.close(master)


# --- SIP2 lines -----------------------------------------------------------------------------

def sip_now() -> str:
    return datetime.now().strftime("%Y%m%d    %H%M%S")


def ed(body: str, seq: int) -> str:
    text = f"{body}AY{seq % 10}AZ"
    return text + checksum(text.encode())


def check_ed(reply: bytes, seq: int) -> None:
    """The reply echoes the sequence number and carries a correct checksum."""
    text = reply.decode("ascii", "replace")
    assert text[-9:-6] == f"AY{seq % 10}", text
    assert text[-6:-4] == "AZ", text
    assert checksum(reply[:-4]) == text[-4:], text


# --- one client per door --------------------------------------------------------------------

class TLSSIPClient(SIPClient):
    """``SIPClient`` over TLS from the standard library's ``ssl``."""

    def __init__(self, port: int, ca: str, cert: Issued | None, timeout: float = TIMEOUT,
                 alpn: list[str] | None = None) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(ca)  # the server's certificate names localhost and 127.0.0.1
        if alpn:
            context.set_alpn_protocols(alpn)
        if cert is not None:
            context.load_cert_chain(cert.cert_path, cert.key_path)
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        except BaseException:
            raw.close()
            raise
        self.buffer = b""


IAC, DONT, DO, WONT, WILL = 255, 254, 253, 252, 251
ECHO, SGA = 1, 3


class TelnetSIPClient:
    """A telnet client as a device is one: answers option negotiation (accepts the server's
    ECHO and SUPPRESS-GO-AHEAD, refuses the rest), logs in at the prompts, then SIP2 lines."""

    def __init__(self, port: int, timeout: float = TIMEOUT) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.raw = b""      # received, not yet decoded (an IAC sequence may be split)
        self.text = b""     # decoded data, not yet consumed
        self.remote_on: set[int] = set()

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed by the gateway; got {self.text!r}")
        self.raw += chunk
        data, i = bytearray(), 0
        while i < len(self.raw):
            byte = self.raw[i]
            if byte != IAC:
                data.append(byte)
                i += 1
                continue
            if i + 1 >= len(self.raw):
                break
            command = self.raw[i + 1]
            if command == IAC:
                data.append(IAC)
                i += 2
            elif command in (WILL, WONT, DO, DONT):
                if i + 2 >= len(self.raw):
                    break
                self._negotiate(command, self.raw[i + 2])
                i += 3
            else:  # NOP, GA, ...: nothing for a device to do
                i += 2
        self.raw = self.raw[i:]
        self.text += bytes(data)

    def _negotiate(self, command: int, option: int) -> None:
        answer = None
        if command == WILL and option not in self.remote_on:
            if option in (ECHO, SGA):
                self.remote_on.add(option)
                answer = DO
            else:
                answer = DONT
        elif command == WONT and option in self.remote_on:
            self.remote_on.discard(option)
            answer = DONT
        elif command == DO:
            answer = WONT  # we enable nothing on our side
        if answer is not None:
            self.sock.sendall(bytes((IAC, answer, option)))

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.text:
            self._receive()
        got, _, self.text = self.text.partition(marker)
        return got + marker

    def login(self, user: str, password: str) -> None:
        self.read_until(b"login: ")
        self.sock.sendall(user.encode() + b"\r\n")
        self.read_until(b"password: ")
        self.sock.sendall(password.encode() + b"\r\n")
        self.read_until(b"Login OK.  Initiating SIP\r\n")

    def request(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r")  # a bare CR, as devices end SIP2 lines
        return self.read_until(b"\r")[:-1]

    def close(self) -> None:
        self.sock.close()


class SerialSIPClient:
    """The device's end of the serial cable: the pty master."""

    def __init__(self, master: int, timeout: float = TIMEOUT) -> None:
        self.master = master
        self.timeout = timeout
        self.buffer = b""

    def request(self, line: str) -> bytes:
        os.write(self.master, line.encode() + b"\r")
        deadline = time.monotonic() + self.timeout
        while b"\r" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"no reply on the serial line within {self.timeout:g} s; got {self.buffer!r}")
            self.buffer += os.read(self.master, 4096)
        reply, _, self.buffer = self.buffer.partition(b"\r")
        return reply

    def close(self) -> None:
        """The cable stays: the gateway keeps the line open for the next test."""


# --- the circulation, the same on every door ------------------------------------------------

@dataclass(frozen=True)
class Door:
    name: str
    account: str
    institution: str
    item: str
    patron: str
    pin: str
    #: where the item ends after the checkin at this door's institution: MAIN's items
    #: returned elsewhere go in transit home
    final_status: str


DOORS = (
    Door("raw", "sc1", "MAIN", "200001", "100001", "1234", "available"),
    Door("tls", "lpl-sc", "LPL", "200002", "djfiander", "6789", "in_transit"),
    Door("telnet", "sc1", "MAIN", "1565921879", "djfiander", "6789", "available"),
    Door("serial", "scclient", "UWOLS", "0440242746", "100001", "1234", "in_transit"),
)


def circulate(client, door: Door, together: threading.Barrier) -> list[bytes]:
    """17, 11 → 121, 17 shows charged, 09 → 101; every request with AY/AZ."""
    seq, replies = 0, []

    def req(body: str, expect: str) -> bytes:
        nonlocal seq
        seq += 1
        reply = client.request(ed(body, seq))
        assert reply.decode("ascii", "replace").startswith(expect), (door.name, body, reply)
        check_ed(reply, seq)
        replies.append(reply)
        return reply

    inst, item = door.institution, door.item
    before = req(f"17{sip_now()}AO{inst}|AB{item}|AC|", "18")
    assert not before.startswith(b"1804"), (door.name, before)  # not charged yet
    together.wait()  # the four doors check out at the same moment
    out = req(f"11NN{sip_now()}{' ' * 18}AO{inst}|AA{door.patron}|AB{item}|AC|AD{door.pin}|", "121")
    assert f"|AA{door.patron}|".encode() in out and f"|AB{item}|".encode() in out, out
    req(f"17{sip_now()}AO{inst}|AB{item}|AC|", "1804")
    back = req(f"09N{sip_now()}{sip_now()}AP{inst}|AO{inst}|AB{item}|AC|", "101")
    assert f"|AB{item}|".encode() in back, back
    return replies


def open_door(doors: FourDoors, door: Door):
    if door.name == "raw":
        client = SIPClient(doors.raw_port, timeout=TIMEOUT)
        assert client.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
        return client
    if door.name == "tls":
        client = TLSSIPClient(doors.tls_port, doors.pki.ca.cert_path, doors.pki.client)
        # no 93: the certificate is bound to lpl-sc
        status = client.request("9900302.00")
        assert status.startswith(b"98") and b"AOLPL|" in status, status
        return client
    if door.name == "telnet":
        client = TelnetSIPClient(doors.telnet_port)
        client.login("sc1", "pass1")
        return client
    return SerialSIPClient(doors.pty_master)  # no 93: the line is bound by account=scclient


def run_door(doors: FourDoors, door: Door, together: threading.Barrier) -> list[bytes]:
    try:
        client = open_door(doors, door)
        try:
            return circulate(client, door, together)
        finally:
            client.close()
    except BaseException:
        together.abort()  # the other doors stop waiting for this one
        raise


def test_the_same_circulation_on_all_four_doors_at_once(doors: FourDoors) -> None:
    together = threading.Barrier(len(DOORS), timeout=TIMEOUT)
    with ThreadPoolExecutor(max_workers=len(DOORS)) as pool:
        futures = {door.name: pool.submit(run_door, doors, door, together) for door in DOORS}
        transcripts = {name: f.result(timeout=4 * TIMEOUT) for name, f in futures.items()}
    assert all(len(t) == 4 for t in transcripts.values()), transcripts
    # the two transfers tell the device where the item goes
    for name in ("tls", "serial"):
        assert b"|CTMAIN|" in transcripts[name][-1], transcripts[name][-1]

    log = doors.proc.log()
    assert "logged in as 'lpl-sc' (client certificate CN=sorter1,O=Library)" in log, log
    assert "logged in as 'scclient' (listener setting 'account')" in log, log
    assert "telnet login as 'sc1'" in log, log
    for secret in ("pass1", "AD1234", "AD6789"):
        assert secret not in log, secret

    db = sqlite3.connect(f"file:{doors.db_path}?mode=ro", uri=True)
    try:
        for door in DOORS:
            loans = db.execute(
                "SELECT p.barcode, l.account, l.returned_at FROM loans l JOIN items i ON i.id = l.item_id "
                "JOIN patrons p ON p.id = l.patron_id WHERE i.barcode = ? AND l.account = ?",
                (door.item, door.account)).fetchall()
            assert len(loans) == 1, (door, loans)
            patron, account, returned_at = loans[0]
            assert (patron, account) == (door.patron, door.account)
            assert returned_at is not None, door
            logged = db.execute(
                "SELECT operation, patron, institution FROM circulation_log "
                "WHERE item = ? AND account = ? AND ok = 1 ORDER BY id", (door.item, door.account)).fetchall()
            assert logged == [("checkout", door.patron, door.institution),
                              ("checkin", door.patron, door.institution)], (door, logged)
            status = db.execute("SELECT status FROM items WHERE barcode = ?", (door.item,)).fetchone()[0]
            assert status == door.final_status, (door, status)
        assert db.execute(INCONSISTENT_ITEMS_SQL).fetchall() == []
    finally:
        db.close()


# --- TLS: who is let in ---------------------------------------------------------------------

def tls_refused(doors: FourDoors, cert: Issued | None) -> None:
    """The handshake fails: at once (TLS 1.2), or (TLS 1.3, where the client finishes first)
    at the first read, before any reply."""
    try:
        with TLSSIPClient(doors.tls_port, doors.pki.ca.cert_path, cert) as client:
            reply = client.request("9900302.00")
    except (ssl.SSLError, ConnectionError):
        return
    raise AssertionError(f"TLS client with {cert.cert_path if cert else 'no certificate'} was served: {reply!r}")


def test_tls_refuses_no_certificate_another_ca_and_an_expired_one(doors: FourDoors) -> None:
    before = doors.proc.log()
    seen = before.count(REFUSED_LOG)
    tls_refused(doors, None)
    tls_refused(doors, doors.pki.other_client)
    tls_refused(doors, doors.pki.expired_client)
    log = doors.wait_for_log(REFUSED_LOG, seen + 3)[len(before):]
    assert "peer did not return a certificate" in log, log
    assert log.count("certificate verify failed") >= 2, log
    # still serving, on every TCP door
    with TLSSIPClient(doors.tls_port, doors.pki.ca.cert_path, doors.pki.client) as client:
        assert client.request("9900302.00").startswith(b"98")
    with SIPClient(doors.raw_port, timeout=TIMEOUT) as client:
        assert client.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
    assert doors.proc.proc.poll() is None


def test_bound_certificate_cannot_log_in_as_another_account(doors: FourDoors) -> None:
    with TLSSIPClient(doors.tls_port, doors.pki.ca.cert_path, doors.pki.client) as client:
        assert client.request("9300CNsc1|COpass1|CPMAIN|") == b"940"
        # still the certificate's account, and a 93 naming it is fine
        assert b"AOLPL|" in client.request("9900302.00")
        assert client.request("9300CNlpl-sc|CO1234|CPLPL|") == b"941"
    doors.wait_for_log("93 for account 'sc1' on a connection bound to 'lpl-sc'; refused")


# --- openssl s_client, as the README tells people to try it -----------------------------

def s_client(doors: FourDoors, *extra: str) -> tuple[bytes, int | None, bytes]:
    """Runs ``openssl s_client -quiet`` with a 99 on stdin; returns (what came out up to the
    first reply, its exit status if it gave up by itself (else None: we stopped it), stderr)."""
    pki = doors.pki
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{doors.tls_port}", "-CAfile", pki.ca.cert_path,
               *extra, "-quiet"]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, status = b"", None
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(ed("9900302.00", 1).encode() + b"\r")
        proc.stdin.flush()  # stdin stays open: with -quiet it would wait for the gateway to close anyway
        deadline = time.monotonic() + TIMEOUT
        fd = proc.stdout.fileno()
        while b"\r" not in out:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:  # it gave up: let it finish saying why
                status = proc.wait(timeout=TIMEOUT)
                break
            out += chunk
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=TIMEOUT)
    return out, status, err


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_s_client_with_and_without_a_certificate(doors: FourDoors) -> None:
    pki = doors.pki
    out, _, err = s_client(doors, "-cert", pki.client.cert_path, "-key", pki.client.key_path)
    reply = out.partition(b"\r")[0]
    assert reply.startswith(b"98") and b"AOLPL|" in reply, (out, err)
    check_ed(reply, 1)

    out, status, err = s_client(doors)
    assert out == b"", out
    # refused: s_client reports the gateway's alert and gives up by itself
    assert status not in (None, 0), (status, err)
    assert b"alert certificate required" in err or b"handshake failure" in err, err


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_subject_openssl_prints_is_the_one_cert_accounts_matches(tmp_path: Path) -> None:
    """The README tells people to copy the subject from ``openssl x509 -subject -nameopt
    RFC2253`` into cert_accounts: it must be exactly what the gateway compares."""
    subject = ("/DC=org/C=US/ST=Ohio/L=Columbus/street=1 Main St/postalCode=43004/O=Example, Inc./OU=Circ"
               "/businessCategory=Library/title=sorter/GN=Ada/SN=Lovelace/initials=AL/pseudonym=ada"
               "/generationQualifier=III/dnQualifier=q1/serialNumber=A10K3Z9P/UID=k2/CN=sorter1"
               "/emailAddress=it@example.org")
    key, pem = tmp_path / "device.key", tmp_path / "device.pem"
    subprocess.run(["openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "1", "-subj", subject, "-keyout", str(key), "-out", str(pem)],
                   check=True, capture_output=True, timeout=TIMEOUT)
    printed = subprocess.run(["openssl", "x509", "-in", str(pem), "-noout", "-subject", "-nameopt", "RFC2253"],
                             check=True, capture_output=True, text=True, timeout=TIMEOUT).stdout
    cert = crypto.X509.from_cryptography(x509.load_pem_x509_certificate(pem.read_bytes()))

    class Transport:  # what the TLS transport answers once the handshake is done
        def getPeerCertificate(self) -> crypto.X509:
            return cert

    assert printed.strip() == f"subject={peer_subject(Transport())}"


def test_a_tls_client_offering_alpn_is_served_without_a_protocol(doors: FourDoors) -> None:
    """A client library that offers ALPN (h2, http/1.1) to the SIP2 TLS door: no protocol in
    common, so the handshake carries on without one (Twisted's own callback would fail it)."""
    with TLSSIPClient(doors.tls_port, doors.pki.ca.cert_path, doors.pki.client, alpn=["h2", "http/1.1"]) as client:
        assert client.sock.selected_alpn_protocol() is None
        assert client.request("9900302.00").startswith(b"98")
