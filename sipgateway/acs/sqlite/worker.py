"""The database process: ``python -m sipgateway.acs.sqlite.worker``, started by the gateway.

It owns the writing connection.  Jobs arrive as frames on stdin; everything that has
arrived while the last batch committed becomes the next batch (group commit, up to
``max_batch`` jobs), run by ``run_batch`` in one transaction with one COMMIT; then one
``Answer`` frame goes back on the pipe.  A reply leaves the gateway only after that answer,
so an ok reply means the work is on disk.

Why a process and not a thread: a checkout is about a hundred microseconds of Python and
SQL, and in a thread it competed with the reactor for the one GIL, so the two never ran at
once.  Here they run on two cores.  When the gateway dies (even ``kill -9``) stdin reaches
end of file: the process finishes the jobs it has and exits.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import traceback
from collections import deque
from datetime import datetime

from sipgateway.acs.sqlite.batch import BatchStats, Job, run_batch_or_fail
from sipgateway.acs.sqlite.context import Call, Context
from sipgateway.acs.sqlite.credentials import VerifiedSecrets
from sipgateway.acs.sqlite.errors import ACSUnavailable
from sipgateway.acs.sqlite.frames import Answer, FrameReader, JobSpec, Setup, encode
from sipgateway.acs.sqlite.schema import open_for_writing

READ_SIZE = 1 << 20


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _sendable(answer: Answer) -> bytes:
    """The answer frame; a value that does not pickle (a bug's odd exception) becomes a
    RuntimeError naming it, instead of losing the whole batch."""
    try:
        return encode(answer)
    except Exception:
        fixed = []
        for number, ok, value in answer.results:
            try:
                pickle.dumps(value)
            except Exception as e:
                ok, value = False, RuntimeError(f"{type(value).__name__} could not be sent: {e}")
            fixed.append((number, ok, value))
        answer.results = fixed
        return encode(answer)


class Worker:
    def __init__(self, setup: Setup, in_fd: int, out_fd: int) -> None:
        self.setup = setup
        self.in_fd = in_fd
        self.out_fd = out_fd
        # never a new empty file in place of a missing one, never a read-only connection
        # (writes would fail until the process is restarted): refusing here makes the gateway
        # start the process again, with growing pauses, until the file can be written
        self.conn = open_for_writing(setup.path)
        self.ctx = Context(clock=datetime.now, currency=setup.currency, rules=setup.rules,
                           secrets=VerifiedSecrets(setup.cache_size, key=setup.secrets_key, record=True),
                           hash_iterations=setup.hash_iterations)
        self.stats = BatchStats()
        self.reader = FrameReader()
        self.queue: deque[JobSpec] = deque()
        self.eof = False

    def _read(self, block: bool) -> None:
        if not block and not select.select([self.in_fd], [], [], 0)[0]:
            return
        data = os.read(self.in_fd, READ_SIZE)
        if not data:
            self.eof = True
            return
        for frame in self.reader.feed(data):
            self.queue.extend(JobSpec(*spec) for spec in frame)

    def serve(self) -> None:
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
        ctx = self.ctx
        jobs = [Job(s.name, Call(s.fn, s.args, s.terminal, s.now, ctx), s.write) for s in specs]
        outcomes = run_batch_or_fail(self.conn, jobs, self.stats, traceback.print_exc)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if not outcome.ok and not isinstance(outcome.value, ACSUnavailable):
                # a bug in a job: its traceback exists only here, so it is logged from here
                print(f"database process: {job.name} failed", file=sys.stderr)
                traceback.print_exception(outcome.value, file=sys.stderr)
        sys.stderr.flush()
        st = self.stats
        answer = Answer([(s.number, o.ok, o.value) for s, o in zip(specs, outcomes, strict=True)],
                        ctx.secrets.drain(), st.batches, st.jobs, st.commits, st.largest)
        _write_all(self.out_fd, _sendable(answer))

    def close(self) -> None:
        self.conn.close()


def _first_frame(in_fd: int, reader: FrameReader) -> list:
    frames: list = []
    while not frames:
        data = os.read(in_fd, READ_SIZE)
        if not data:
            return []
        frames = reader.feed(data)
    return frames


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
        worker = Worker(frames[0], in_fd, out_fd)
    except Exception as e:
        print(f"database process: cannot open {frames[0].path}: {e}", file=sys.stderr)
        return 1
    worker.reader = reader
    for frame in frames[1:]:
        worker.queue.extend(JobSpec(*spec) for spec in frame)
    try:
        worker.serve()
    except BrokenPipeError:
        pass  # the gateway is gone; what was committed stays committed
    finally:
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
