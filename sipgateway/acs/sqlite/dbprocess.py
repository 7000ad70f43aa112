"""``ProcessRunner``: database writes in a child process, reads in the reactor thread.

The gateway starts ``python -m sipgateway.acs.sqlite.worker`` (see worker.py) when its
services start, after twistd has daemonized, and talks to it over the child's stdin and
stdout in frames (frames.py).  Calls made in one reactor turn go out as one frame; each
batch the child commits comes back as one frame, and only then do the Deferreds fire, so
an ok reply still means the work is on disk.

Quick reads still run at once in the reactor thread on a connection of its own
(``InlineReader``); only slow ones, and ones that would hash a password, go to the child.
The child hands back the passwords and PINs it verified, so the next quick read of the same
patron hits the cache here.

If the child dies, every call it had fails with ``ACSUnavailable`` (the devices get failure
replies, 98 says offline) and it is started again, after 1 s and then longer waits.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

import sipgateway
from sipgateway.acs.sqlite.batch import MAX_BATCH, BatchStats
from sipgateway.acs.sqlite.context import Call, Context
from sipgateway.acs.sqlite.errors import ACSUnavailable, unavailable
from sipgateway.acs.sqlite.frames import Answer, FrameError, FrameReader, Setup, encode
from sipgateway.acs.sqlite.runner import INLINE_BUDGET, InlineReader, SyncRunner

log = Logger()

#: waits before starting a dead database process again; the last one repeats
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: how long a stopping gateway waits for the child to finish its jobs before killing it
STOP_TIMEOUT = 30.0
#: the longest stretch of the child's stderr logged as one event
MAX_STDERR_EVENT = 16 * 1024

Spawn = Callable[[ProcessProtocol, list[str], dict[str, str]], Any]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "sipgateway.acs.sqlite.worker"]


def worker_environment() -> dict[str, str]:
    """Our environment, with the directory this package was imported from first on the
    path, so the child runs this very code even when it is not installed."""
    env = dict(os.environ)
    root = str(Path(sipgateway.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


class _DatabaseProtocol(ProcessProtocol):
    def __init__(self, runner: ProcessRunner) -> None:
        self.runner = runner
        self.frames = FrameReader()
        self.stderr = b""

    def outReceived(self, data: bytes) -> None:
        try:
            answers = self.frames.feed(data)
        except FrameError as e:
            log.error("database process sent garbage ({e}); stopping it", e=e)
            self.transport.signalProcess("KILL")
            return
        for answer in answers:
            self.runner._answer(answer)

    def errReceived(self, data: bytes) -> None:
        text = self.stderr + data
        head, sep, rest = text.rpartition(b"\n")
        if len(rest) > MAX_STDERR_EVENT:  # a line without end: log it in pieces
            head, sep, rest = text, b"\n", b""
        self.stderr = rest
        if sep and head:
            log.error("database process: {text}", text=head.decode("utf-8", "replace"))

    def processEnded(self, reason: Failure) -> None:
        if self.stderr:
            log.error("database process: {text}", text=self.stderr.decode("utf-8", "replace"))
            self.stderr = b""
        self.runner._ended(self, reason)


def _spawn_with(reactor) -> Spawn:
    def spawn(protocol: ProcessProtocol, argv: list[str], env: dict[str, str]) -> Any:
        return reactor.spawnProcess(protocol, argv[0], argv, env=env, childFDs={0: "w", 1: "r", 2: "r"})
    return spawn


class ProcessRunner:
    """Runs ``Call``s: reads inline when quick, everything else in the database process."""

    def __init__(self, path: str, reactor, ctx: Context, *, max_batch: int = MAX_BATCH,
                 inline_budget: float = INLINE_BUDGET, spawn: Spawn | None = None,
                 restart_delays: tuple[float, ...] = RESTART_DELAYS, cache_size: int = 8192) -> None:
        self.path = path
        self.reactor = reactor
        self.ctx = ctx
        self.max_batch = max_batch
        self.inline_budget = inline_budget
        self.cache_size = cache_size
        self.restart_delays = restart_delays
        self._spawn_process = spawn if spawn is not None else _spawn_with(reactor)
        self.stats = BatchStats()
        #: the start-up connection for ``run_sync``; closed by ``start`` (twistd may fork between)
        self._direct: SyncRunner | None = None
        self._reader: InlineReader | None = None
        self._child: _DatabaseProtocol | None = None
        self._pending: dict[int, tuple[str, Deferred]] = {}
        self._outgoing: list[tuple] = []
        self._flush_call = None
        self._numbers = itertools.count(1)
        self._started = False
        self._restarts = 0
        self._restart_call = None
        self._kill_call = None
        self._closing = False
        self._finished = False
        self._close_waiters: list[Deferred] = []
        #: the last batch met a database error (locked, full, I/O); cleared by the next good one
        self._database_error = False

    # --- start and stop -----------------------------------------------------------------

    def start(self) -> None:
        """Start the database process (from ``startService``: after twistd daemonized)."""
        if self._started or self._closing:
            return
        self._started = True
        self._close_direct()
        if self.inline_budget > 0:
            self._reader = InlineReader(self.path, self.inline_budget)
        self._spawn()

    def _spawn(self) -> None:
        self._restart_call = None
        child = _DatabaseProtocol(self)
        try:
            self._spawn_process(child, worker_command(), worker_environment())
        except OSError as e:
            log.error("cannot start the database process: {e}", e=e)
            self._schedule_restart()
            return
        setup = Setup(path=self.path, currency=self.ctx.currency, rules=self.ctx.rules,
                      hash_iterations=self.ctx.hash_iterations, cache_size=self.cache_size,
                      secrets_key=self.ctx.secrets.key, max_batch=self.max_batch)
        child.transport.write(encode(setup))
        self._child = child
        self._flush()  # calls made before the start, if any

    def _schedule_restart(self) -> None:
        delay = self.restart_delays[min(self._restarts, len(self.restart_delays) - 1)]
        self._restarts += 1
        log.error("database process: starting it again in {delay:.0f} s", delay=delay)
        self._restart_call = self.reactor.callLater(delay, self._spawn)

    def close(self) -> Deferred:
        """Let the child finish and commit what it was given, then stop it."""
        if self._finished:
            return succeed(None)
        d: Deferred = Deferred()
        self._close_waiters.append(d)
        if self._closing:
            return d
        self._closing = True
        self._close_direct()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._restart_call is not None and self._restart_call.active():
            self._restart_call.cancel()
        if self._child is None:
            self._fail_all("closed")
            self._closed()
            return d
        self._flush()
        self._child.transport.closeStdin()  # end of file: the child finishes its queue and exits
        self._kill_call = self.reactor.callLater(STOP_TIMEOUT, self._kill)
        return d

    def _kill(self) -> None:
        self._kill_call = None
        if self._child is not None:
            log.error("database process did not stop within {s:.0f} s; killing it", s=STOP_TIMEOUT)
            try:
                self._child.transport.signalProcess("KILL")
            except Exception:  # already gone
                pass

    def _closed(self) -> None:
        self._finished = True
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        waiters, self._close_waiters = self._close_waiters, []
        for d in waiters:
            d.callback(None)

    def _close_direct(self) -> None:
        if self._direct is not None:
            self._direct.close()
            self._direct = None

    @property
    def failing(self) -> bool:
        """Closed, the database process down, or its last batch met a database error."""
        return self._closing or (self._started and self._child is None) or self._database_error

    # --- calls ----------------------------------------------------------------------------

    def submit(self, name: str, call: Call, write: bool = True) -> Deferred:
        if self._closing:
            return fail(unavailable(name, "closed"))
        if not write and self._reader is not None:
            d = self._reader.run(name, call)
            if d is not None:
                return d
        if self._child is None and self._started:
            return fail(unavailable(name, "the database process is not running"))
        # before ``start`` (a serial line opened while twistd starts up looks up its account)
        # the call waits in ``_outgoing`` for the database process
        number = next(self._numbers)
        d = Deferred()
        self._pending[number] = (name, d)
        self._outgoing.append((number, name, write, call.fn, call.args, call.terminal, call.now))
        if self._flush_call is None:
            # every call of this reactor turn goes out in one frame
            self._flush_call = self.reactor.callLater(0, self._flush)
        return d

    def _flush(self) -> None:
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        if not self._outgoing or self._child is None:
            return
        jobs, self._outgoing = self._outgoing, []
        try:
            data = encode(jobs)
        except Exception:  # an argument that does not pickle: a bug in the caller; fail only it
            data = b"".join(self._encode_or_fail(job) for job in jobs)
        self._child.transport.write(data)

    def _encode_or_fail(self, job: tuple) -> bytes:
        try:
            return encode([job])
        except Exception as e:
            name, d = self._pending.pop(job[0])
            log.failure("database call {name} cannot be sent", Failure(e), name=name)
            d.errback(unavailable(name, e))
            return b""

    def _answer(self, answer: Answer) -> None:
        self._restarts = 0  # it answers: the next death starts the backoff afresh
        if answer.learned:
            self.ctx.secrets.learn(answer.learned)
        st = self.stats
        st.batches, st.jobs, st.commits, st.largest = answer.batches, answer.jobs, answer.commits, answer.largest
        self._database_error = any(not ok and isinstance(value, ACSUnavailable) for _, ok, value in answer.results)
        pending = self._pending
        for number, ok, value in answer.results:
            entry = pending.pop(number, None)
            if entry is None:
                continue
            if ok:
                entry[1].callback(value)
            else:
                entry[1].errback(value)

    def _fail_all(self, why: str) -> dict[int, tuple[str, Deferred]]:
        self._outgoing = []
        pending, self._pending = self._pending, {}
        for name, d in pending.values():
            d.errback(unavailable(name, why))
        return pending

    def _ended(self, child: _DatabaseProtocol, reason: Failure) -> None:
        if child is not self._child:
            return
        self._child = None
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        pending = self._fail_all("the database process exited")
        if self._closing:
            self._closed()
            return
        how = "exited" if reason.check(ProcessDone) else str(reason.value)
        log.error("database process stopped unexpectedly ({how}); {n} calls failed", how=how, n=len(pending))
        self._schedule_restart()

    # --- start-up, in the calling thread ----------------------------------------------------

    def run_sync(self, name: str, fn: Callable[[sqlite3.Connection], Any], write: bool = True,
                 raw: bool = False) -> Any:
        """Run a job in the calling thread on a connection of its own (start-up and tools)."""
        if self._closing:
            raise unavailable(name, "closed")
        if self._direct is None:
            self._direct = SyncRunner(self.path)
        return self._direct.run_sync(name, fn, write, raw)
