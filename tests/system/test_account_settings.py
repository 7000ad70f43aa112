"""Account settings of the config file that the database does not hold (``terminator``,
``checked_in_ok``), through the real twistd and its database process."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.system.process import GatewayProcess, free_port

DATE = "20240105    101500"


class CRLFClient:
    """Reads replies up to CR LF: what Koha's sip_cli_emulator waits for."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def request(self, line: str) -> bytes:
        self.sock.sendall(line.encode() + b"\r")
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed by the gateway; got {self.buffer!r}")
            self.buffer += chunk
        reply, _, self.buffer = self.buffer.partition(b"\r\n")
        assert b"\r" not in reply, reply
        return reply


@pytest.fixture
def gateway(tmp_path: Path):
    port = free_port()
    config = tmp_path / "gw.ini"
    config.write_text(f"[listener:raw]\nlisten = sip:tcp:{port}:interface=127.0.0.1\n"
                      "[account:koha]\npassword = kohapw\ninstitution = MAIN\n"
                      "terminator = CRLF\nchecked_in_ok = no\n"
                      "[account:sc1]\nterminator = CRLF\n")  # settings only: sc1 is a demo account
    proc = GatewayProcess(tmp_path, ["--config", str(config), "--database", "sqlite:gw.sqlite3", "--demo"],
                          [port]).start()
    proc.port = port
    yield proc
    proc.stop()


def test_config_account_settings_reach_the_session_and_the_database_process(gateway: GatewayProcess) -> None:
    checkin = f"09N{DATE}{DATE}APMAIN|AOMAIN|AB200002|AC|"
    koha = CRLFClient(gateway.port)
    assert koha.request("9300CNkoha|COkohapw|CPMAIN|") == b"941"
    reply = koha.request(checkin)  # 200002 is not on loan
    assert reply.startswith(b"100YNY") and b"|AFThis item was not checked out|" in reply
    demo = CRLFClient(gateway.port)
    assert demo.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
    assert demo.request(checkin).startswith(b"101YNN")  # sc1 keeps the default, checked_in_ok = yes
    # the audit lines say what each device was told
    deadline = time.monotonic() + 10
    while "audit 09 ok account=sc1" not in gateway.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = gateway.log()
    assert "(koha): audit 09 refused account=koha location=MAIN patron=- item=200002" in log
    assert "(sc1): audit 09 ok account=sc1 location=MAIN patron=- item=200002" in log
