"""The database process: ``python -m sipgateway.acs.sqlite.worker``, started by the gateway.

It owns the writing connection.  Jobs arrive as frames on stdin; everything that has
arrived while the last batch committed becomes the next batch (group commit, up to
``max_batch`` jobs), run by ``run_batch`` in one transaction with one COMMIT; then one
``Answer`` frame goes back on the pipe.  A reply leaves the gateway only after that answer,
so an ok reply means the work is on disk.

A job whose deadline has passed when its batch starts is not run (its failure reply has
been sent).  Each batch that writes records its answer in the database before COMMIT
(outcomes.py), so that the gateway can tell what committed if we die before answering.
Before each batch and after each COMMIT, and on each heartbeat, the path must still name
the file we opened: if the file was deleted or replaced, nothing is written or acknowledged.

Why a process and not a thread: a checkout is about a hundred microseconds of Python and
SQL, and in a thread it competed with the reactor for the one GIL, so the two never ran at
once.  Here they run on two cores.  When the gateway dies (even ``kill -9``) stdin reaches
end of file: the process finishes the jobs it has and exits.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Sequence
from datetime import datetime

from sipgateway.acs.postgresql import is_url
from sipgateway.acs.postgresql.target import remember
from sipgateway.acs.sqlite import outcomes
from sipgateway.acs.sqlite.batch import BatchStats, Job, Outcome, run_batch_or_fail
from sipgateway.acs.sqlite.context import Call, Context
from sipgateway.acs.sqlite.credentials import VerifiedSecrets
from sipgateway.acs.sqlite.errors import ACSUnavailable, OutcomeUnknown, deadline_passed, unavailable
from sipgateway.acs.sqlite.frames import Answer, FrameReader, JobSpec, Pong, Ready, Setup, encode, encode_answer
from sipgateway.acs.sqlite.schema import open_for_writing

READ_SIZE = 1 << 20
#: the gateway's heartbeat: a signal, so that a thread of ours answers it while a batch runs
HEARTBEAT_SIGNAL = signal.SIGUSR1
#: the values of a batch in which nothing succeeded
NOTHING = outcomes.encode([])


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def file_identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


class Worker:
    def __init__(self, setup: Setup, in_fd: int, out_fd: int) -> None:
        self.setup = setup
        self.in_fd = in_fd
        self.out_fd = out_fd
        # never a new empty file in place of a missing one, never a read-only connection
        # (writes would fail until the process is restarted): refusing here makes the gateway
        # start the process again, with growing pauses, until the file can be written
        self.postgresql = is_url(setup.path)
        remember(setup.path, setup.password)
        self.conn = open_for_writing(setup.path)
        #: the file we opened; the path must still name it (``file_problem``); PostgreSQL has no file
        self.identity = (0, 0) if self.postgresql else file_identity(setup.path)
        self.ctx = Context(clock=datetime.now, currency=setup.currency, rules=setup.rules,
                           secrets=VerifiedSecrets(setup.cache_size, key=setup.secrets_key, record=True),
                           hash_iterations=setup.hash_iterations)
        self.stats = BatchStats()
        self.reader = FrameReader()
        self.queue: deque[JobSpec] = deque()
        self.eof = False
        self._out = threading.Lock()   # answers (this thread) and pongs (the heartbeat thread)
        self._pruned = 0.0             # time.monotonic() of the last pruning of the outcome records

    def send(self, frame: object, data: bytes | None = None) -> None:
        data = encode(frame) if data is None else data
        with self._out:
            _write_all(self.out_fd, data)

    def file_problem(self) -> str | None:
        """What is wrong with the database file: deleted, or the path now names another
        file (replaced); None when the path still names the file we have open."""
        if self.postgresql:
            return None
        try:
            identity = file_identity(self.setup.path)
        except FileNotFoundError:
            return "was deleted"
        except OSError as e:
            return f"cannot be checked ({e.strerror or e})"
        return None if identity == self.identity else "was replaced by another file"

    def _heartbeats(self) -> None:
        try:
            while True:
                signal.sigwait({HEARTBEAT_SIGNAL})
                self.send(Pong(self.file_problem()))
        except OSError:  # the gateway is gone
            return

    def start_heartbeats(self) -> None:
        """Answer the gateway's heartbeat signal from a thread of our own, then say we are
        ready (the gateway sends no heartbeat before that: the signal would kill us)."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {HEARTBEAT_SIGNAL})  # for every thread: only sigwait takes it
        threading.Thread(target=self._heartbeats, name="heartbeats", daemon=True).start()
        self.send(Ready(*self.identity))

    def _read(self, block: bool) -> None:
        if not block and not select.select([self.in_fd], [], [], 0)[0]:
            return
        data = os.read(self.in_fd, READ_SIZE)
        if not data:
            self.eof = True
            return
        for frame in self.reader.feed(data):
            self.queue.extend(frame)

    def serve(self) -> None:
        self.start_heartbeats()
        while True:
            # wait for work only when there is none; otherwise take what has arrived meanwhile
            self._read(block=not self.queue and not self.eof)
            if not self.queue:
                if self.eof:
                    return
                continue
            batch = [self.queue.popleft() for _ in range(min(len(self.queue), self.setup.max_batch))]
            self._run(batch)

    def _run(self, specs: list[JobSpec]) -> None:
        # a job past its deadline is not run: the gateway has failed it (a read) or holds its
        # reply (a write) until we say it was not applied
        now = time.time()
        failed: list[tuple[int, BaseException]] = [(s.number, deadline_passed(s.name)) for s in specs
                                                   if s.deadline is not None and s.deadline <= now]
        if failed:
            specs = [s for s in specs if s.deadline is None or s.deadline > now]
        problem = self.file_problem()
        if problem is not None:  # never write into a file that is no longer the database
            failed += [(s.number, _file_error(s.name, self.setup.path, problem)) for s in specs]
            specs = []
        done = NOTHING
        if specs:
            done, problem = self._run_jobs(specs, failed)
        answer = Answer(done, failed, self.ctx.secrets.drain(), self.stats, problem)
        self.send(answer, encode_answer(answer))

    def _run_jobs(self, specs: list[JobSpec], failed: list[tuple[int, BaseException]]) -> tuple[bytes, str | None]:
        """Run the jobs in one transaction; the encoded values of those that succeeded
        (failures go to ``failed``) and what is wrong with the database file after COMMIT."""
        ctx = self.ctx
        jobs = [Job(s.name, Call(s.fn, s.args, s.terminal, s.now, ctx), s.write) for s in specs]
        recorded: list = []   # [encoded values, how many], when the batch recorded them

        def record(conn, results: Sequence[Outcome]) -> None:
            values = [(s.number, o.value) for s, o in zip(specs, results, strict=True) if o.ok]
            data = outcomes.encode(values)
            outcomes.record(conn, self.setup.token, specs[0].number, specs[-1].number, time.time(), data)
            if time.monotonic() - self._pruned >= outcomes.PRUNE_EVERY:
                self._pruned = time.monotonic()
                outcomes.prune(conn, time.time())
            recorded[:] = [data, len(values)]

        writes = any(s.write for s in specs)
        results = run_batch_or_fail(self.conn, jobs, self.stats, traceback.print_exc, record if writes else None)
        if any(isinstance(outcome.value, OutcomeUnknown) for outcome in results):
            # PostgreSQL lost the connection during COMMIT: answering "failed" could be false, so we
            # exit, and the gateway reads which writes committed from the database (outcomes.py)
            print("database process: the connection to the database was lost during COMMIT; exiting so that "
                  "the gateway reads which writes committed", file=sys.stderr, flush=True)
            os._exit(3)
        report_failed_jobs(jobs, results)
        values = []
        for spec, outcome in zip(specs, results, strict=True):
            (values if outcome.ok else failed).append((spec.number, outcome.value))
        problem = self.file_problem()
        if problem is not None:
            failed.extend((spec.number, lost_with_file(spec, self.setup.path, problem))
                          for spec, outcome in zip(specs, results, strict=True) if outcome.ok)
            return NOTHING, problem
        if recorded and recorded[1] == len(values):
            return recorded[0], None    # the very bytes recorded (COMMIT can only lose values)
        return outcomes.encode(values), None

    def close(self) -> None:
        self.conn.close()


def _file_error(operation: str, path: str, problem: str, outcome: str = "nothing was changed") -> ACSUnavailable:
    return unavailable(operation, f"the database file {path} {problem}; {outcome}")


def lost_with_file(spec: JobSpec, path: str, problem: str) -> ACSUnavailable:
    """A job that succeeded while the file stopped being the database: committed, if at
    all, into a file that is no longer the database, so lost with it."""
    return _file_error(spec.name, path, f"{problem} while it ran", "it is not in the database")


def report_failed_jobs(jobs: Sequence[Job], results: Sequence[Outcome]) -> None:
    """A bug in a job (not a refusal of the database): its traceback exists only in this
    process, so it is logged from here."""
    for job, outcome in zip(jobs, results, strict=True):
        if not outcome.ok and not isinstance(outcome.value, ACSUnavailable):
            print(f"database process: {job.name} failed", file=sys.stderr)
            traceback.print_exception(outcome.value, file=sys.stderr)
    sys.stderr.flush()


def _first_frame(in_fd: int, reader: FrameReader) -> list:
    frames: list = []
    while not frames:
        data = os.read(in_fd, READ_SIZE)
        if not data:
            return []
        frames = reader.feed(data)
    return frames


def _shared(setup: Setup, in_fd: int, out_fd: int) -> Worker:
    """The database process of every worker of ``--workers N`` (sharedserver.py)."""
    import socket

    from sipgateway.acs.sqlite.sharedserver import SharedWorker

    return SharedWorker(setup, in_fd, out_fd, socket.socket(fileno=setup.listen_fd))


def main() -> int:
    # Ctrl-C in the operator's terminal and systemd's stop (SIGTERM to every process of the
    # unit) reach us together with twistd, which then stops us by closing stdin once its
    # calls are answered: the signals are twistd's, and obeying them would fail its calls
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # frames go to a private copy of stdout; fd 1 becomes stderr, so a stray print()
    # anywhere cannot corrupt the pipe
    out_fd = os.dup(1)
    os.dup2(2, 1)
    in_fd = 0
    reader = FrameReader()
    frames = _first_frame(in_fd, reader)
    if not frames or not isinstance(frames[0], Setup):
        print("database process: no setup frame; exiting", file=sys.stderr)
        return 2
    try:
        worker = Worker(frames[0], in_fd, out_fd) if frames[0].listen_fd is None else _shared(frames[0], in_fd, out_fd)
    except Exception as e:
        print(f"database process: cannot open {frames[0].path}: {e}", file=sys.stderr)
        return 1
    worker.reader = reader
    for frame in frames[1:]:
        worker.queue.extend(frame)
    try:
        worker.serve()
    except BrokenPipeError:
        pass  # the gateway is gone; what was committed stays committed
    finally:
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
