"""Login lockouts and PIN locks with the real twistd: keyed on the device, kept in the
database (so they survive a restart), lifted by ``sipgateway unlock`` on the running
gateway, and the same for the telnet door."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.system.process import BIN, GatewayProcess, SIPClient, free_port

DATE = "20240105    101500"
LOGIN = "9300CNsc1|COpass1|CPMAIN|"
WRONG = "9300CNsc1|COnot-the-password|CPMAIN|"
PIN_LOCKED = b"AFToo many wrong PINs: PIN entry is locked for this card; please see staff|"


class ClientFrom(SIPClient):
    """A SIP client whose connection comes from ``source`` (any 127/8 address is loopback)."""

    def __init__(self, port: int, source: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10.0, source_address=(source, 0))
        self.buffer = b""


def start(tmp_path: Path) -> tuple[GatewayProcess, int, int]:
    sip, telnet = free_port(), free_port()
    proc = GatewayProcess(tmp_path, ["--listen", f"sip:tcp:{sip}:interface=127.0.0.1",
                                     "--listen", f"telnet:tcp:{telnet}:interface=127.0.0.1",
                                     "--database", "sqlite:gw.sqlite3", "--demo"], [sip, telnet]).start()
    return proc, sip, telnet


def unlock(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "sipgateway"), "unlock", *args, "--database",
                           f"sqlite:{tmp_path / 'gw.sqlite3'}"], capture_output=True, text=True, timeout=60)


def telnet_login(port: int, user: str, password: str) -> bytes:
    """Log in at the telnet prompt; what the gateway answered after the password."""
    with socket.create_connection(("127.0.0.1", port), timeout=10.0) as sock:
        sock.sendall(f"{user}\r\n{password}\r\n".encode())
        seen = b""
        deadline = time.monotonic() + 10
        while b"Login OK" not in seen and b"Invalid login" not in seen and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            seen += chunk
        return seen


def pin_status(client: SIPClient, pin: str) -> bytes:
    return client.request(f"23001{DATE}AOMAIN|AA100001|AC|AD{pin}|")


def test_wrong_passwords_lock_out_only_that_device_until_unlocked(tmp_path: Path) -> None:
    proc, sip, telnet = start(tmp_path)
    try:
        with SIPClient(sip) as c:
            for _ in range(12):
                assert c.request(WRONG) == b"940"
            assert c.request(LOGIN) == b"940"  # locked out: the right password is refused too
        assert b"Invalid login" in telnet_login(telnet, "sc1", "pass1")  # the telnet door shares the lockout
        with ClientFrom(sip, "127.0.0.2") as other:  # another device with the same account is not
            assert other.request(LOGIN) == b"941"

        listed = unlock(tmp_path, "--list")
        assert listed.returncode == 0, listed.stderr
        assert "login from address with account 127.0.0.1 (sc1): LOCKED until" in listed.stdout
        lifted = unlock(tmp_path, "127.0.0.1")
        assert lifted.returncode == 0, lifted.stderr
        assert "cleared login from address with account 127.0.0.1 (sc1): was LOCKED" in lifted.stdout

        with SIPClient(sip) as c:  # the running gateway sees it at once
            assert c.request(LOGIN) == b"941"
        assert b"Login OK" in telnet_login(telnet, "sc1", "pass1")
        assert unlock(tmp_path, "127.0.0.1").returncode == 1  # nothing left to lift
    finally:
        proc.stop()
    log = proc.log()
    assert "login locked out for address and account 127.0.0.1 (sc1) after 10 failed logins" in log
    assert "pass1" not in log and "not-the-password" not in log


def test_login_lockouts_and_pin_locks_survive_a_restart(tmp_path: Path) -> None:
    proc, sip, _ = start(tmp_path)
    try:
        with SIPClient(sip) as c:
            for _ in range(10):
                assert c.request(WRONG) == b"940"
        with ClientFrom(sip, "127.0.0.2") as kiosk:
            assert kiosk.request(LOGIN) == b"941"
            for n in range(10):
                reply = pin_status(kiosk, f"{9000 + n}")
                assert b"|BLY|CQN|" in reply, reply
            reply = pin_status(kiosk, "1234")  # the right PIN, refused while locked
            assert b"|BLY|CQN|" in reply and PIN_LOCKED in reply, reply
    finally:
        proc.stop()
    first_log = proc.log()
    assert first_log.count("PIN checks locked for patron ****01 for 3600 s after 10 wrong PINs") == 1
    assert "100001" not in first_log and "9001" not in first_log

    again = GatewayProcess(tmp_path, proc.args, proc.wait_ports).start()
    try:
        with SIPClient(sip) as c:
            assert c.request(LOGIN) == b"940"
        with ClientFrom(sip, "127.0.0.2") as kiosk:
            assert kiosk.request(LOGIN) == b"941"
            assert PIN_LOCKED in pin_status(kiosk, "1234")
            assert unlock(tmp_path, "100001").returncode == 0
            assert b"|BLY|CQY|" in pin_status(kiosk, "1234")
    finally:
        again.stop()
