"""The database process shared by the workers (sharedserver.py), driven over its socket as
two workers' runners drive it: the jobs of both in one batch with one COMMIT, an outcome
row per worker under its own token (what a worker looks up when the process dies), each
answer with its own calls only and the batch counted once, heartbeats answered to both,
a worker that ends its side answered first, garbage closing one connection only, and the
end of stdin stopping the process once it is done."""

from __future__ import annotations

import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import SQLiteACS, loans, outcomes
from sipgateway.acs.sqlite.context import Call
from sipgateway.acs.sqlite.frames import Answer, FrameReader, JobSpec, Pong, Ready, Setup, encode
from sipgateway.acs.sqlite.rules import CirculationRules
from tests.acs.conftest import FAST, MAIN

WAIT = 20.0


class Peer:
    """One end of a stream of frames (a worker's connection, or the parent's pipes)."""

    def __init__(self, read_fd: int, write=None) -> None:
        self.read_fd = read_fd
        self.write = write
        self.reader = FrameReader()
        self.frames: list = []

    def next(self, kind: type | None = None):
        while True:
            while self.frames:
                frame = self.frames.pop(0)
                if kind is None or isinstance(frame, kind):
                    return frame
            ready, _, _ = select.select([self.read_fd], [], [], WAIT)
            assert ready, "nothing came"
            data = os.read(self.read_fd, 1 << 16)
            if not data:
                return None  # the end of the stream
            self.frames += self.reader.feed(data)


class Worker(Peer):
    def __init__(self, path: str, token: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        super().__init__(self.sock.fileno(), self.sock.sendall)
        self.token = token
        self.write(encode(Setup(path="", currency="USD", rules=CirculationRules(), hash_iterations=FAST,
                                cache_size=16, secrets_key=b"k" * 32, max_batch=64, token=token)))

    def checkout(self, number: int, item: str) -> None:
        request = rq.CheckoutRequest(patron_id="100001", item_id=item, patron_pin="1234")
        self.write(encode([JobSpec.of(number, "checkout", True, Call(loans.checkout, (request,), MAIN,
                                                                        datetime.now()))]))


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Peer, str, Path]]:
    db = tmp_path / "lib.sqlite3"
    acs = SQLiteACS(str(db), None, hash_iterations=FAST)
    acs.seed_demo()
    acs.close()
    path = str(tmp_path / "database.sock")
    listening = socket.socket(socket.AF_UNIX)
    listening.bind(path)
    listening.listen()
    fd = listening.fileno()  # the same number in the process
    proc = subprocess.Popen([sys.executable, "-m", "sipgateway.acs.sqlite.worker"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, pass_fds=[fd])
    listening.close()  # the process has its own
    parent = Peer(proc.stdout.fileno())
    proc.stdin.write(encode(Setup(path=str(db), currency="USD", rules=CirculationRules(), hash_iterations=FAST,
                                  cache_size=16, secrets_key=b"k" * 32, max_batch=64, token="parent",
                                  listen_fd=fd)))
    proc.stdin.flush()
    assert isinstance(parent.next(), Ready)
    try:
        yield proc, parent, path, db
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)


def test_two_workers_jobs_are_one_batch_recorded_under_each_workers_token(shared) -> None:
    proc, _, path, db = shared
    a, b = Worker(path, "token-a"), Worker(path, "token-b")
    assert a.next().pid == b.next().pid == proc.pid  # Ready: where their heartbeats go
    os.kill(proc.pid, signal.SIGSTOP)  # both jobs wait, then are read in one turn
    try:
        a.checkout(7, "200001")
        b.checkout(3, "200002")
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    first, second = a.next(Answer), b.next(Answer)
    assert [(n, v.ok) for n, v in outcomes.decode(first.done)] == [(7, True)] and first.failed == []
    assert [(n, v.ok) for n, v in outcomes.decode(second.done)] == [(3, True)] and second.failed == []
    # one batch of two jobs, counted once: in the figures of the worker whose job came first
    assert sorted((first.stats.batches, second.stats.batches)) == [0, 1]
    assert first.stats.jobs + second.stats.jobs == 2
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT runner, first, last, at FROM call_outcomes").fetchall()
        assert sorted(r[:3] for r in rows) == [("token-a", 7, 7), ("token-b", 3, 3)]
        assert rows[0][3] == rows[1][3]  # one transaction
        # what a worker finds when the process died before answering it
        assert {n: v.item_id for n, v in outcomes.committed(conn, "token-a", {7}).items()} == {7: "200001"}
        assert outcomes.committed(conn, "token-a", {3}) == {}
    finally:
        conn.close()


def test_heartbeats_reach_every_worker_and_the_end_of_stdin_stops_the_process(shared) -> None:
    proc, parent, path, _ = shared
    a, b = Worker(path, "token-a"), Worker(path, "token-b")
    a.next(Ready), b.next(Ready)
    os.kill(proc.pid, signal.SIGUSR1)  # from one worker; two at once would merge into one signal
    assert isinstance(a.next(), Pong) and isinstance(b.next(), Pong)
    proc.stdin.close()
    assert proc.wait(WAIT) == 0
    assert a.next() is None and b.next() is None and parent.next() is None


def test_a_worker_that_ends_its_side_is_answered_then_closed_and_garbage_closes_one_connection(shared) -> None:
    proc, _, path, db = shared
    a, b = Worker(path, "token-a"), Worker(path, "token-b")
    a.next(Ready), b.next(Ready)
    a.checkout(1, "200001")
    a.sock.shutdown(socket.SHUT_WR)  # a stopping worker: everything sent is answered, then the end
    assert [n for n, _ in outcomes.decode(a.next(Answer).done)] == [1]
    assert a.next() is None
    b.write(b"\x00\x00\x00\x05garbage")
    assert b.next() is None  # its connection alone is closed
    c = Worker(path, "token-c")
    assert isinstance(c.next(), Ready)
    c.checkout(1, "200002")
    assert [n for n, _ in outcomes.decode(c.next(Answer).done)] == [1]
    assert proc.poll() is None
