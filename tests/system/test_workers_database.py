"""``--workers 2`` on ``sqlite:``: one database process, run by the parent, takes the calls of
both workers; killed with ``kill -9`` while devices on both workers check items out and in,
it is started again, every reply says what happened (an ok is in the database once, a
failure is not in it), and the devices carry on."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

from tests.system.process import GatewayProcess, SIPClient, children_of, free_port, wait_gone
from tests.system.test_workers import TIMEOUT, Workers, database_processes

OPS_AFTER = 4  # ok replies each device gets after the kill, from the new database process


def loans_of(db: Path, item: str) -> tuple[int, bool]:
    """How many loans the item ever had, and whether one is open."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT l.returned_at IS NULL FROM loans l JOIN items i ON i.id = l.item_id "
                            "WHERE i.barcode = ?", (item,)).fetchall()
    finally:
        conn.close()
    return len(rows), any(open_ for (open_,) in rows)


class Device(threading.Thread):
    """Checks its item out and in, again and again; a failure is asked again (with another
    transaction date: a request repeated byte for byte would be answered from the last reply)."""

    def __init__(self, client: SIPClient, item: str, first: int) -> None:
        super().__init__(daemon=True)
        self.client, self.item = client, item
        self.serial = first
        self.checkouts_ok = 0
        self.on_loan = False
        self.failures = 0
        self.ok_since_kill = 0
        self.killed = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def date(self) -> str:
        self.serial += 1
        return f"20240105    {self.serial // 3600 % 24:02d}{self.serial // 60 % 60:02d}{self.serial % 60:02d}"

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.on_loan:
                    reply = self.client.request(f"09N{self.date()}{self.date()}APMAIN|AOMAIN|AB{self.item}|AC|")
                    ok = reply.startswith(b"101")
                else:
                    reply = self.client.request(f"11NN{self.date()}{' ' * 18}AOMAIN|AA100001|AB{self.item}|AC|"
                                                "AD1234|")
                    ok = reply.startswith(b"121")
                    self.checkouts_ok += ok
                if ok:
                    self.on_loan = not self.on_loan
                    self.ok_since_kill += self.killed.is_set()
                else:
                    self.failures += 1
                    time.sleep(0.05)
        except BaseException as e:  # seen by the test
            self.error = e


def test_one_database_process_for_both_workers_and_a_killed_one_answers_what_happened(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "gw.sqlite3"
    proc = GatewayProcess(tmp_path, ["--workers", "2", "--database", f"sqlite:{db}", "--demo", "--listen",
                                     f"sip:tcp:{port}:interface=127.0.0.1"], [port])
    devices: list[Device] = []
    spare: list[SIPClient] = []
    try:
        proc.start()
        workers = Workers(proc, port)
        pids = set(workers.serving().values())
        parent = proc.proc.pid
        (database,) = database_processes(parent)
        assert sorted(children_of(parent)) == sorted([*pids, database])
        assert all(children_of(pid) == [] for pid in pids)  # no database process of their own

        by_worker: dict[int, SIPClient] = {}
        while set(by_worker) != pids:  # a device on each worker
            assert len(spare) < 60, "every connection went to one worker"
            client, pid = workers.session()
            if pid in by_worker:
                spare.append(client)
            else:
                by_worker[pid] = client
        devices = [Device(client, item, first) for (client, item, first) in
                   zip(by_worker.values(), ("200001", "200002"), (0, 40000), strict=True)]
        for device in devices:
            device.start()
        deadline = time.monotonic() + TIMEOUT
        while min(d.checkouts_ok for d in devices) < 2:
            assert time.monotonic() < deadline and not any(d.error for d in devices), [d.error for d in devices]
            time.sleep(0.01)

        os.kill(database, signal.SIGKILL)  # while both devices have calls on their way
        for device in devices:
            device.killed.set()
        assert wait_gone([database]) == []
        deadline = time.monotonic() + 2 * TIMEOUT
        while min(d.ok_since_kill for d in devices) < OPS_AFTER:
            assert time.monotonic() < deadline and not any(d.error for d in devices), [d.error for d in devices]
            time.sleep(0.05)
        for device in devices:
            device.stop.set()
            device.join(TIMEOUT)
            assert not device.is_alive() and device.error is None

        (again,) = database_processes(parent)
        assert again != database and sorted(children_of(parent)) == sorted([*pids, again])
        assert "the database process of the workers (pid" in proc.log() and "stopped unexpectedly" in proc.log()
        for device in devices:
            # every ok checkout is one loan, every failure none; the item is out iff the last ok said so
            assert loans_of(db, device.item) == (device.checkouts_ok, device.on_loan)
    finally:
        for device in devices:
            device.stop.set()
        for client in [*spare, *(d.client for d in devices)]:
            client.close()
        if proc.proc is not None:
            proc.stop()
