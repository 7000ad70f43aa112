"""Crash safety: checkouts and checkins from several connections, ``kill -9`` of twistd at
a random moment, restart, and every transaction whose ok reply was received is in the
database; nothing is half applied. Repeated several times in one run."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import threading
from pathlib import Path

from sipgateway.acs.sqlite import INCONSISTENT_ITEMS_SQL
from tests.system.process import GatewayProcess, SIPClient, free_port, wait_gone

DATE = "20240105    101500"
ITEMS = ["200001", "200002", "1565921879", "0440242746", "660"]
ROUNDS = 3


class Worker(threading.Thread):
    """Alternates checkout and checkin of its own item until the gateway dies."""

    def __init__(self, port: int, item: str, stop: threading.Event, progress: threading.Semaphore) -> None:
        super().__init__(daemon=True)
        self.port, self.item, self.stop, self.progress = port, item, stop, progress
        self.acknowledged: str | None = None   # "out" or "in": the last state the gateway confirmed
        self.in_flight: str | None = None      # a request sent whose reply never came
        self.done = 0

    def run(self) -> None:
        try:
            with SIPClient(self.port, timeout=5) as c:
                if c.request("9300CNsc1|COpass1|CPMAIN|") != b"941":
                    return
                state = self._current(c)
                for _ in range(100_000):  # bounded; the kill ends it long before
                    if self.stop.is_set():
                        return
                    if state == "in":
                        self.in_flight = "out"
                        reply = c.request(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB{self.item}|AC|AD1234|")
                        ok = reply.startswith(b"121")
                    else:
                        self.in_flight = "in"
                        reply = c.request(f"09N{DATE}{DATE}APMAIN|AOMAIN|AB{self.item}|AC|")
                        ok = reply.startswith(b"101")
                    assert ok, reply
                    state = self.acknowledged = self.in_flight
                    self.in_flight = None
                    self.done += 1
                    self.progress.release()
        except (OSError, ConnectionError):
            return  # killed under us: whatever was in flight may or may not be applied

    def _current(self, c: SIPClient) -> str:
        reply = c.request(f"17{DATE}AOMAIN|AB{self.item}|AC|")
        return "out" if reply[2:4] == b"04" else "in"


def item_states(port: int) -> dict[str, str]:
    with SIPClient(port) as c:
        assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
        states = {}
        for item in ITEMS:
            reply = c.request(f"17{DATE}AOMAIN|AB{item}|AC|")
            states[item] = {b"04": "out", b"03": "in"}.get(reply[2:4], reply.decode())
        return states


def test_kill_9_loses_no_acknowledged_transaction(tmp_path: Path) -> None:
    port = free_port()
    args = ["--listen", f"sip:tcp:{port}:interface=127.0.0.1", "--database", "sqlite:crash.sqlite3", "--demo"]
    rng = random.Random(4242)
    total = 0
    for _round in range(ROUNDS):
        proc = GatewayProcess(tmp_path, args, [port]).start()
        stop = threading.Event()
        progress = threading.Semaphore(0)
        workers = [Worker(port, item, stop, progress) for item in ITEMS]
        for w in workers:
            w.start()
        # a random moment in the middle of the traffic: after a random number of transactions
        for _ in range(rng.randint(20, 400)):
            assert progress.acquire(timeout=30), "the load stalled"
        database_process = proc.children()
        assert len(database_process) == 1, database_process
        proc.kill9()
        # the database process sees end of file on its pipe, commits what it has and exits
        assert wait_gone(database_process) == [], "the database process outlived kill -9 of twistd"
        stop.set()
        for w in workers:
            w.join(timeout=10)
        total += sum(w.done for w in workers)

        proc = GatewayProcess(tmp_path, args, [port]).start()
        try:
            states = item_states(port)
        finally:
            proc.stop()
        for w in workers:
            if w.in_flight is None and w.acknowledged is not None:
                assert states[w.item] == w.acknowledged, (w.item, w.acknowledged, states)
            else:
                assert states[w.item] in ("in", "out"), states
        assert_consistent(tmp_path / "crash.sqlite3")
    assert total > 0, "no transaction completed before the kills"


def assert_consistent(path: Path) -> None:
    """No half-applied transaction: an item is charged exactly when it has an open loan."""
    db = sqlite3.connect(path)
    try:
        db.execute("pragma integrity_check").fetchone()
        rows = db.execute(INCONSISTENT_ITEMS_SQL).fetchall()
        assert rows == [], rows
    finally:
        db.close()



def test_sigterm_to_every_process_as_systemd_stops_a_unit_is_left_to_twistd(tmp_path: Path) -> None:
    port = free_port()
    proc = GatewayProcess(tmp_path, ["--listen", f"sip:tcp:{port}:interface=127.0.0.1", "--database",
                                     "sqlite:term.sqlite3", "--demo"], [port]).start()
    try:
        database_process = proc.children()
        assert len(database_process) == 1
        with SIPClient(port) as c:
            assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
            os.kill(database_process[0], signal.SIGTERM)
            # the database process ignored it: it still commits and answers
            reply = c.request(f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|")
            assert reply.startswith(b"121"), reply
    finally:
        proc.stop()    # SIGTERM to twistd: it closes the pipe, the database process exits
    assert wait_gone(database_process) == []
    assert "database process" not in proc.log()
