"""``--workers 2``: the real twistd serves one port from two worker processes; a worker
killed with ``kill -9`` is started again while the other serves; SIGHUP reaches both.

Which process serves a connection is read from /proc: the socket whose local port is the
gateway's and whose remote port is the client's, and the worker holding it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.process import GatewayProcess, SIPClient, children_of, free_port, wait_gone

TIMEOUT = 20.0
SERVING = re.compile(r"\[worker (\d) pid (\d+)\] worker \1 of 2 serving")


class Workers:
    def __init__(self, proc: GatewayProcess, port: int) -> None:
        self.proc = proc
        self.port = port

    def wait_for(self, pattern: re.Pattern[str] | str, count: int = 1) -> list:
        """The matches of ``pattern`` once the log has ``count`` of them (bounded polling)."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + TIMEOUT
        while True:
            found = regex.findall(self.proc.log())
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} x {regex.pattern!r} not in the log:\n{self.proc.log()}")
            time.sleep(0.05)

    def serving(self, count: int = 2) -> dict[int, int]:
        """Worker number -> pid, from the last ``serving`` line of each, once there are ``count``."""
        return {int(n): int(pid) for n, pid in self.wait_for(SERVING, count)}

    def session(self) -> tuple[SIPClient, int]:
        """A logged-in client and the pid of the worker serving it."""
        client = SIPClient(self.port, timeout=TIMEOUT)
        assert client.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
        status = client.request("9900302.00")
        assert status.startswith(b"98"), status
        return client, serving_pid(self.port, client.sock.getsockname()[1], children_of(self.proc.proc.pid))


def database_processes(parent: int) -> list[int]:
    """The parent's children that are database processes (not workers)."""
    return [pid for pid in children_of(parent)
            if b"sipgateway.acs.sqlite.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def _socket_inode(local_port: int, remote_port: int) -> str:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
            return fields[9]
    raise AssertionError(f"no socket 127.0.0.1:{local_port} <- :{remote_port} in /proc/net/tcp")


def serving_pid(port: int, client_port: int, pids: list[int]) -> int:
    """The one of ``pids`` holding the gateway's end of the connection from ``client_port``."""
    link = f"socket:[{_socket_inode(port, client_port)}]"
    holders = []
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == link:
                    holders.append(pid)
                    break
            except OSError:
                continue
    assert len(holders) == 1, (link, pids, holders)
    return holders[0]


def ask_worker(pid: int, index: int, question: str) -> dict:
    """Ask worker ``index`` over its socket in the workers' private directory (found from
    the shared file the worker has open), as another worker does (sipgateway/workers/peers.py)."""
    (run_dir,) = {os.path.dirname(os.readlink(fd)) for fd in Path(f"/proc/{pid}/fd").iterdir()
                  if os.readlink(fd).endswith("/generation")}
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(TIMEOUT)
        s.connect(os.path.join(run_dir, f"worker-{index}.sock"))
        s.sendall(struct.pack(">I", len(question)) + question.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    (length,) = struct.unpack(">I", data[:4])
    assert len(data) == 4 + length
    return json.loads(data[4:])


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    port = free_port()
    proc = GatewayProcess(tmp_path, ["--workers", "2", "--listen", f"sip:tcp:{port}:interface=127.0.0.1"], [port])
    try:
        proc.start()
        yield Workers(proc, port)
    finally:
        if proc.proc is not None:
            proc.stop()


def test_two_processes_serve_and_a_killed_worker_is_replaced_while_the_other_serves(workers: Workers) -> None:
    pids = workers.serving()
    assert sorted(pids) == [1, 2] and len(set(pids.values())) == 2
    (database,) = database_processes(workers.proc.proc.pid)  # sqlite: one, shared by the workers
    assert sorted(children_of(workers.proc.proc.pid)) == sorted([*pids.values(), database])

    first, first_pid = workers.session()
    assert first_pid in pids.values()
    # the worker lists its session, with its pid, to the other workers (/sessions across workers)
    index = next(n for n, pid in pids.items() if pid == first_pid)
    (listed,) = ask_worker(first_pid, index, "sessions")["answer"]
    assert listed["worker"] == first_pid and listed["account"] == "sc1" and listed["served"] == 2
    assert listed["peer"].endswith(f"127.0.0.1:{first.sock.getsockname()[1]}")
    other_pid = next(pid for pid in pids.values() if pid != first_pid)
    os.kill(first_pid, signal.SIGKILL)
    assert wait_gone([first_pid]) == []
    # the other worker serves at once, before the dead one is started again (1 s later)
    second, second_pid = workers.session()
    assert second_pid == other_pid
    with pytest.raises((ConnectionError, OSError)):
        first.request("9900302.00")  # its worker is gone: the device reconnects
    first.close()
    workers.wait_for(rf"worker \d \(pid {first_pid}\) stopped unexpectedly")
    replaced = workers.serving(3)
    new_pid = next(pid for pid in replaced.values() if pid not in pids.values())
    assert sorted(children_of(workers.proc.proc.pid)) == sorted([other_pid, new_pid, database])

    # and the replacement serves: kill the other one, and new sessions land on it
    os.kill(other_pid, signal.SIGKILL)
    assert wait_gone([other_pid]) == []
    third, third_pid = workers.session()
    assert third_pid == new_pid
    assert len({first_pid, second_pid, third_pid}) == 3  # three processes served in turn
    for client in (second, third):
        client.close()
    workers.serving(4)  # the second one is back too


def test_sighup_reaches_every_worker(workers: Workers) -> None:
    pids = workers.serving()
    os.kill(workers.proc.proc.pid, signal.SIGHUP)
    workers.wait_for(r"SIGHUP received; forwarding it to 2 workers")
    for n, pid in pids.items():
        workers.wait_for(rf"\[worker {n} pid {pid}\] SIGHUP received")
    assert sorted(children_of(workers.proc.proc.pid)) == sorted([*pids.values(), *database_processes(
        workers.proc.proc.pid)])  # none of them died of it
    client, _ = workers.session()
    client.close()


def test_workers_stop_when_the_parent_is_killed(workers: Workers) -> None:
    pids = list(workers.serving().values())
    assert [child for pid in pids for child in children_of(pid)] == []  # no database process of their own
    databases = database_processes(workers.proc.proc.pid)
    assert len(databases) == 1  # the one the parent runs for them
    workers.proc.kill9()
    # the end of their stdin tells them, and the database process, which finishes and exits
    assert wait_gone(pids + databases) == []


def test_start_up_errors_are_the_one_line_of_a_single_gateway(tmp_path: Path) -> None:
    import socket
    import subprocess

    from tests.system.process import TWISTD

    def start(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([TWISTD, "-n", "--pidfile=", "--logfile=-", "sipgateway", "--workers", "2", *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)

    missing = start("--database", f"sqlite:{tmp_path}/none.sqlite3", "--listen", f"sip:tcp:{free_port()}")
    assert missing.returncode != 0
    assert missing.stderr.strip().endswith("none.sqlite3 does not exist; start once with --init to create an empty "
                                           "library database there (or with --demo for the demo library)")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = start("--listen", f"sip:tcp:{port}:interface=127.0.0.1")
        # the admin listener's port is bound by the parent too, with a single gateway's line
        admin_in_use = start("--listen", f"sip:tcp:{free_port()}:interface=127.0.0.1", "--admin",
                             f"tcp:{port}:interface=127.0.0.1")
    assert in_use.returncode != 0
    assert in_use.stderr.strip() == (f"sipgateway: listener sip:tcp:{port}:interface=127.0.0.1: port {port} is "
                                     "already in use on 127.0.0.1 (another gateway or program listens there)")
    assert admin_in_use.returncode != 0
    assert admin_in_use.stderr.strip() == (f"sipgateway: listener admin (tcp:{port}:interface=127.0.0.1): port "
                                           f"{port} is already in use on 127.0.0.1 (another gateway or program "
                                           "listens there)")
    assert not list(tmp_path.glob("twistd.pid"))


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        assert response.status == 200
        return response.read()


def _requests_total(admin: str) -> dict[tuple[str, str], float]:
    """sipgateway_requests_total by (code, outcome), summed over listeners and accounts."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(_get(admin + "/metrics").decode("utf-8")):
        for s in family.samples:
            if s.name == "sipgateway_requests_total":
                key = (s.labels["code"], s.labels["outcome"])
                found[key] = found.get(key, 0) + s.value
    return found


def test_the_admin_listener_shows_every_workers_sessions_and_sums_their_figures(tmp_path: Path) -> None:
    port, admin_port = free_port(), free_port()
    proc = GatewayProcess(tmp_path, ["--workers", "2", "--listen", f"sip:tcp:{port}:interface=127.0.0.1",
                                     "--admin", f"tcp:{admin_port}:interface=127.0.0.1"], [port, admin_port])
    admin = f"http://127.0.0.1:{admin_port}"
    clients: dict[SIPClient, int] = {}
    try:
        proc.start()
        workers = Workers(proc, port)
        pids = set(workers.serving().values())
        while set(clients.values()) != pids:  # until both workers hold sessions
            assert len(clients) < 60, f"every connection went to one worker: {clients.values()}"
            client, pid = workers.session()
            clients[client] = pid
        by_port = {client.sock.getsockname()[1]: pid for client, pid in clients.items()}
        for _ in range(4):  # whichever worker answers, every worker's sessions, each with its worker
            listed = json.loads(_get(admin + "/sessions"))
            assert {int(v["peer"].rsplit(":", 1)[1]): v["worker"] for v in listed} == by_port
            assert {v["account"] for v in listed} == {"sc1"} and {v["served"] for v in listed} == {2}
        assert _requests_total(admin) == {("93", "ok"): len(clients), ("99", "ok"): len(clients)}

        # a worker killed: the other answers meanwhile, its figures stay counted, and once
        # started again its new sessions are listed with its new pid
        dead = next(iter(pids))
        os.kill(dead, signal.SIGKILL)
        assert wait_gone([dead]) == []
        alive = (pids - {dead}).pop()
        for client in [c for c, pid in clients.items() if pid == dead]:
            with pytest.raises((ConnectionError, OSError)):
                client.request("9900302.00")
            client.close()
            del clients[client]
        listed = json.loads(_get(admin + "/sessions"))
        assert {v["worker"] for v in listed} == {alive}
        new_pid = next(pid for pid in workers.serving(3).values() if pid not in pids)
        while new_pid not in clients.values():  # devices reconnect: some land on the new worker
            assert len(clients) < 120, "no connection went to the new worker"
            client, pid = workers.session()
            clients[client] = pid
        listed = json.loads(_get(admin + "/sessions"))
        assert {v["worker"] for v in listed} == {alive, new_pid}
        # the dead worker's counts as of the scrape before its death stay in the sums
        opened = len(by_port) + len(clients) - len([pid for pid in by_port.values() if pid == alive])
        assert _requests_total(admin) == {("93", "ok"): opened, ("99", "ok"): opened}
    finally:
        for client in clients:
            client.close()
        if proc.proc is not None:
            proc.stop()
