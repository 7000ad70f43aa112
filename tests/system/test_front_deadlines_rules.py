"""A front gateway (the real twistd) forwarding to a library system's SIP2 server: a device's
deadline shorter than a deliberately slow server (the device gets its failure reply in time,
the late answer is logged and dropped), and a sorter account whose rewrite rules derive the
sort bin CL from the destination CT that a back gateway (the SQLite demo) sends."""

from __future__ import annotations

import socketserver
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from sipgateway.sip2 import format_message, parse, sip_date
from tests.system.process import GatewayProcess, SIPClient, free_port

DATE = "20240105    101500"
NOW = sip_date(datetime(2024, 1, 5, 10, 15))
#: how long the slow server takes over a checkout (seconds)
SLOW = 2.5


class SlowServer(socketserver.ThreadingTCPServer):
    """A SIP2 server that logs in at once, answers 17 at once and a checkout only after
    ``SLOW`` seconds; it records the requests it received."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SlowHandler)
        self.received: list[str] = []
        self.answered_late = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _SlowHandler(socketserver.StreamRequestHandler):
    server: SlowServer

    def handle(self) -> None:
        buffer = b""
        while True:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            buffer += chunk
            while b"\r" in buffer:
                line, _, buffer = buffer.partition(b"\r")
                line = line.strip(b"\n")
                if line:
                    self.answer(parse(line, verify=False))

    def answer(self, msg) -> None:
        self.server.received.append(msg.code)
        if msg.code == "93":
            reply = format_message("94", {"ok": "1"}, {})
        elif msg.code == "11":
            time.sleep(SLOW)
            reply = format_message("12", {"ok": "1", "renewal_ok": "N", "magnetic_media": "N", "desensitize": "Y",
                                          "transaction_date": NOW},
                                   {"AO": "MAIN", "AA": msg.get("AA"), "AB": msg.get("AB"), "AJ": "Slow book",
                                    "AH": "2024-02-05"})
        elif msg.code == "17":
            reply = format_message("18", {"circulation_status": "03", "security_marker": "00", "fee_type": "01",
                                          "transaction_date": NOW}, {"AB": msg.get("AB"), "AJ": "Quick book"})
        else:
            reply = format_message("96", {}, {})
        self.wfile.write(reply + b"\r")
        if msg.code == "11":
            self.server.answered_late.set()


@pytest.fixture
def slow_server() -> Iterator[SlowServer]:
    server = SlowServer()
    yield server
    server.close()


@pytest.fixture
def running() -> Iterator[list[GatewayProcess]]:
    procs: list[GatewayProcess] = []
    yield procs
    for proc in reversed(procs):
        proc.stop()


def front(workdir: Path, procs: list, config: str) -> int:
    """A front gateway with ``config`` (its {port} filled in) and a new database of its own."""
    workdir.mkdir()
    port = free_port()
    (workdir / "front.ini").write_text(config.format(port=port), encoding="utf-8")
    procs.append(GatewayProcess(workdir, ["--config", str(workdir / "front.ini"), "--database",
                                          "sqlite:front.sqlite3", "--init"], [port]).start())
    return port


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def test_a_device_deadline_shorter_than_a_slow_library_system(tmp_path, slow_server, running) -> None:
    port = front(tmp_path / "front", running, f"""\
[upstream]
servers = sip2://127.0.0.1:{slow_server.port}?timeout=30

[listener:sorters]
listen = sip:tcp:{{port}}:interface=127.0.0.1
deadline = 1000
""")
    proc = running[0]
    with SIPClient(port) as c:
        assert c.request("9300CNsorter|COpw|CPMAIN|") == b"941"
        started = time.monotonic()
        reply = c.request(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|")
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"the failure reply came after {elapsed:.3f} s"  # the device's deadline
        assert reply.startswith(b"120N") and b"|AB200001|" in reply, reply
        assert slow_server.received == ["93", "11"]
        wait_for(slow_server.answered_late.is_set, "the slow server answered")
        wait_for(lambda: "late answer to a 11 from sorter after the device was told it failed" in proc.log(),
                 "the late answer logged")
        # the late 12 was dropped: the device's next request gets its own reply, and nothing else came
        assert c.request(f"17{DATE}AOMAIN|AB200002|AC|").startswith(b"1803")
        assert c.buffer == b""


def test_a_sorter_gets_its_sort_bin_from_the_destination_through_a_front_gateway(tmp_path, running) -> None:
    (tmp_path / "back").mkdir()
    back_port = free_port()
    running.append(GatewayProcess(tmp_path / "back", ["--database", f"sqlite:{tmp_path / 'back' / 'back.sqlite3'}",
                                                      "--demo", "--listen",
                                                      f"sip:tcp:{back_port}:interface=127.0.0.1"],
                                  [back_port]).start())
    port = front(tmp_path / "front", running, f"""\
[upstream]
servers = sip2://127.0.0.1:{back_port}

[listener:sorters]
listen = sip:tcp:{{port}}:interface=127.0.0.1

[account:sc1]
deadline = 5000
rules =
    # sort bin by destination: other libraries' items to bin 7, the rest to 1
    table bins LPL -> 7
    table bins UWOLS -> 8
    table bins * -> 1
    reply 10 set CL from bins CT
    reply 10 replace AF "Please hand this item to staff" "Sorted"
""")
    with SIPClient(port) as c:
        assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
        reply = c.request(f"09N{DATE}{DATE}APMAIN|AOMAIN|AB400001|AC|").decode()
        assert reply.startswith("10"), reply
        fields = parse(reply.encode()).fields
        assert (fields.get("CT"), fields.get("CL"), fields.get("AF")) == ("LPL", "7", ["Sorted (returns to LPL)"])
    db = sqlite3.connect(tmp_path / "back" / "back.sqlite3")   # the back applied the checkin
    try:
        assert db.execute("SELECT status, destination_location FROM items WHERE barcode = '400001'").fetchall() == [
            ("in_transit", "LPL")]
    finally:
        db.close()
