"""The database process shared by the worker processes of ``--workers N`` on ``sqlite:``.

The parent of the workers starts it (workers/database.py) with a listening UNIX socket in
the workers' private directory (``Setup.listen_fd``); every worker's runner connects to it
and speaks the very frames it speaks to a database process of its own (frames.py): its
``Setup`` first (only its token is used: the process was opened by the parent's), then
lists of ``JobSpec``; it gets ``Ready`` (with this process's pid, for its heartbeats), an
``Answer`` per batch that had its jobs, and a ``Pong`` for every heartbeat.

What a database process guarantees holds for each worker: the jobs that arrived from all
of them while the last batch committed are the next batch (one transaction, one COMMIT);
a job past its deadline is not run; each batch records, before COMMIT, one outcome row per
worker in it under that worker's token and call numbers (outcomes.py), so that a worker
whose connection ends (this process died) looks its writes up as it does today.  A
connection is closed only between batches, and the jobs of a worker whose connection
broke are dropped before the next batch, never run after it looked them up.  A worker that
ends its side (stopping) gets the answers of everything it sent, then the end of the
connection.  Heartbeat signals merge when two workers send them at once, so each is
answered to every worker.  The batch figures (``BatchStats``) are counted once, in the
figures of the worker whose job came first, so that the workers' /metrics add up to this
process's.  The end of stdin (the parent stopping, or gone) ends the process once its
queue is done, as for a database process of one gateway.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Sequence

from sipgateway.acs.sqlite import outcomes
from sipgateway.acs.sqlite.batch import BatchStats, Job, Outcome, run_batch_or_fail
from sipgateway.acs.sqlite.context import Call
from sipgateway.acs.sqlite.errors import deadline_passed
from sipgateway.acs.sqlite.frames import (
    Answer,
    FrameError,
    FrameReader,
    JobSpec,
    Pong,
    Ready,
    Setup,
    encode,
    encode_answer,
)
from sipgateway.acs.sqlite.worker import (
    HEARTBEAT_SIGNAL,
    NOTHING,
    READ_SIZE,
    Worker,
    _file_error,
    lost_with_file,
    report_failed_jobs,
)

#: seconds a worker may leave our answers unread before its connection is dropped
SEND_TIMEOUT = 10.0


class Client:
    """One worker's connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader()
        #: its runner's token (from its Setup); None until that has arrived
        self.token: str | None = None
        self.stats = BatchStats()
        #: it ended its side: answered what it sent, then closed
        self.eof = False
        #: its connection broke: its queued jobs are dropped, nothing more is sent
        self.broken = False
        self.queued = 0


class SharedWorker(Worker):
    def __init__(self, setup: Setup, in_fd: int, out_fd: int, listening: socket.socket) -> None:
        super().__init__(setup, in_fd, out_fd)
        self.listening = listening
        listening.setblocking(False)
        self.clients: dict[int, Client] = {}
        #: every worker's calls, each with the connection it came on (Worker.serve takes batches)
        self.queue: deque[tuple[Client, JobSpec]] = deque()  # type: ignore[assignment]

    # --- the connections ----------------------------------------------------------------------

    def _send_to(self, client: Client, data: bytes) -> None:
        with self._out:
            if client.broken:
                return
            try:
                client.sock.sendall(data)
            except OSError:  # gone, or not reading: dropped (its jobs too) before the next batch
                client.broken = True

    def _heartbeats(self) -> None:
        while True:
            signal.sigwait({HEARTBEAT_SIGNAL})
            data = encode(Pong(self.file_problem()))
            for client in list(self.clients.values()):
                if client.token is not None:
                    self._send_to(client, data)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listening.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.settimeout(SEND_TIMEOUT)  # for sending; we read only what select says is there
            self.clients[sock.fileno()] = Client(sock)

    def _receive(self, client: Client) -> None:
        try:
            data = client.sock.recv(READ_SIZE)
        except (TimeoutError, OSError):
            data = b""
        if not data:
            client.eof = True
            return
        try:
            frames = client.reader.feed(data)
        except FrameError as e:
            print(f"database process: a worker sent garbage ({e}); closing its connection", file=sys.stderr)
            client.broken = True
            return
        for frame in frames:
            if client.token is None:
                if not isinstance(frame, Setup):
                    print("database process: a worker did not start with its setup; closing its connection",
                          file=sys.stderr)
                    client.broken = True
                    return
                client.token = frame.token
                self._send_to(client, encode(Ready(*self.identity, pid=os.getpid())))
                continue
            for spec in frame:
                self.queue.append((client, spec))
            client.queued += len(frame)

    def _tidy(self) -> None:
        """Between batches: drop what broken connections had queued, close the connections
        that are done (broken, or ended and answered)."""
        if any(c.broken for c in self.clients.values()):
            self.queue = deque((c, s) for c, s in self.queue if not c.broken)
        for fd, client in list(self.clients.items()):
            if client.broken or (client.eof and client.queued == 0):
                del self.clients[fd]
                with self._out:
                    client.broken = True
                    client.sock.close()

    def _poll(self, block: bool) -> None:
        watched = [self.in_fd, self.listening, *(c.sock for c in self.clients.values() if not c.eof)]
        readable, _, _ = select.select(watched, [], [], None if block else 0)
        for source in readable:
            if source is self.listening:
                self._accept()
            elif source == self.in_fd:
                if not os.read(self.in_fd, READ_SIZE):
                    self.eof = True  # the parent: nothing is sent on stdin after the setup
            else:
                self._receive(self.clients[source.fileno()])

    def _read(self, block: bool) -> None:  # Worker.serve's wait for calls, from every worker
        self._tidy()
        self._poll(block=block and not self.queue)

    def _run(self, batch: list[tuple[Client, JobSpec]]) -> None:  # type: ignore[override]
        self._run_shared(batch)

    # --- a batch ------------------------------------------------------------------------------

    def _run_shared(self, batch: list[tuple[Client, JobSpec]]) -> None:
        clients = list(dict.fromkeys(client for client, _ in batch))
        failed: dict[Client, list[tuple[int, BaseException]]] = {client: [] for client in clients}
        now = time.time()
        live = []
        for client, spec in batch:
            client.queued -= 1
            if spec.deadline is not None and spec.deadline <= now:
                failed[client].append((spec.number, deadline_passed(spec.name)))
            else:
                live.append((client, spec))
        problem = self.file_problem()
        if problem is not None:  # never write into a file that is no longer the database
            for client, spec in live:
                failed[client].append((spec.number, _file_error(spec.name, self.setup.path, problem)))
            live = []
        done: dict[Client, bytes] = {}
        if live:
            done, problem = self._run_jobs_of(live, failed)
        learned = self.ctx.secrets.drain()
        for client in clients:
            answer = Answer(done.get(client, NOTHING), failed[client], learned, client.stats, problem)
            self._send_to(client, encode_answer(answer))

    def _run_jobs_of(self, live: list[tuple[Client, JobSpec]],
                     failed: dict[Client, list[tuple[int, BaseException]]]) -> tuple[dict[Client, bytes], str | None]:
        """``Worker._run_jobs`` for several workers: one transaction, an outcome row each."""
        ctx = self.ctx
        jobs = [Job(s.name, Call(s.fn, s.args, s.terminal, s.now, ctx), s.write) for _, s in live]
        recorded: dict[Client, tuple[bytes, int]] = {}

        def record(conn, results: Sequence[Outcome]) -> None:
            values: dict[Client, list] = {}
            numbers: dict[Client, list[int]] = {}
            for (client, spec), outcome in zip(live, results, strict=True):
                numbers.setdefault(client, []).append(spec.number)
                if outcome.ok:
                    values.setdefault(client, []).append((spec.number, outcome.value))
            at = time.time()
            for client, theirs in numbers.items():
                data = outcomes.encode(values.get(client, []))
                outcomes.record(conn, client.token or "", min(theirs), max(theirs), at, data)
                recorded[client] = (data, len(values.get(client, [])))
            if time.monotonic() - self._pruned >= outcomes.PRUNE_EVERY:
                self._pruned = time.monotonic()
                outcomes.prune(conn, at)

        writes = any(s.write for _, s in live)
        stats = live[0][0].stats  # the batch counted once: in the figures of its first worker
        results = run_batch_or_fail(self.conn, jobs, stats, traceback.print_exc, record if writes else None)
        report_failed_jobs(jobs, results)
        values: dict[Client, list] = {}
        for (client, spec), outcome in zip(live, results, strict=True):
            if outcome.ok:
                values.setdefault(client, []).append((spec.number, outcome.value))
            else:
                failed[client].append((spec.number, outcome.value))
        problem = self.file_problem()
        if problem is not None:
            for (client, spec), outcome in zip(live, results, strict=True):
                if outcome.ok:
                    failed[client].append((spec.number, lost_with_file(spec, self.setup.path, problem)))
            return {}, problem
        done = {}
        for client, theirs in values.items():
            kept = recorded.get(client)
            done[client] = kept[0] if kept is not None and kept[1] == len(theirs) else outcomes.encode(theirs)
        return done, None

