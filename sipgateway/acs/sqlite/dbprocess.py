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

Every call has a deadline (``Call.deadline``: when the gateway must have answered it).  At
its deadline a call not yet sent fails, never sent; a read already sent fails (its late
answer is dropped); a write already sent is held: its reply waits for its outcome, ok if
it committed, failure if the child dropped it (the child runs no job whose deadline has
passed).  So a failure reply always means "not applied" (``ACSTimeout`` when the deadline
did it).

Once a second the gateway sends the child a heartbeat (SIGUSR1, answered by a thread of
the child's own even while a batch runs).  While a heartbeat is overdue, or a call sent is
past its deadline, or the child reports its database file deleted or replaced, the runner
is ``failing`` (98 says offline) and new calls fail at once, not sent.  A child that does
not answer while writes wait for their outcome is killed.

If the child dies, the calls it had fail with ``ACSUnavailable``, except the writes it was
given: each batch records its answer in the database in its own transaction
(outcomes.py), so the gateway looks them up there and answers the ones that committed with
their value.  The child is started again, after 1 s and then longer waits.
"""

from __future__ import annotations

import os
import pickle
import signal
import sqlite3
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ProcessDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.acs.model import ACSTimeout
from sipgateway.acs.postgresql import is_url, password_for
from sipgateway.acs.sqlite import outcomes
from sipgateway.acs.sqlite.batch import MAX_BATCH, BatchStats
from sipgateway.acs.sqlite.childprocess import (
    DatabaseProtocol,
    Spawn,
    spawn_with,
    worker_command,
    worker_environment,
)
from sipgateway.acs.sqlite.context import Call, Context
from sipgateway.acs.sqlite.errors import ACSUnavailable, unavailable
from sipgateway.acs.sqlite.frames import Answer, JobSpec, Pong, Ready, Setup, encode
from sipgateway.acs.sqlite.inflight import Flight, InFlight
from sipgateway.acs.sqlite.runner import INLINE_BUDGET, Direct, InlineReader

__all__ = ["ProcessRunner", "Spawn", "worker_command", "worker_environment"]

log = Logger()

#: waits before starting a dead database process again; the last one repeats
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: how long a stopping gateway waits for the child to finish its jobs before killing it
STOP_TIMEOUT = 30.0
#: seconds between heartbeats
HEARTBEAT_INTERVAL = 1.0
#: a heartbeat unanswered this long (seconds) means the database process does not answer
HEARTBEAT_OVERDUE = 2.0
#: how long (seconds) a new database process may take to open the database
STARTUP_TIMEOUT = 10.0
#: how long (seconds) the outcome of a dead process's writes is looked for before given up
RECOVERY_LIMIT = 60.0


class ProcessRunner:
    """Runs ``Call``s: reads inline when quick, everything else in the database process."""

    #: every call is answered by its deadline, except a write the child has: see IACS
    answers_by_deadline = True

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
        self._spawn_process = spawn if spawn is not None else spawn_with(reactor)
        self.stats = BatchStats()
        #: names our calls in the database's outcome records (outcomes.py)
        self.token = os.urandom(8).hex()
        #: the start-up connection for ``run_sync``; closed by ``start`` (twistd may fork between)
        self._direct: Direct | None = None
        self._reader: InlineReader | None = None
        self._child: DatabaseProtocol | None = None
        self._calls = InFlight(reactor, self._check_stuck)
        self._flush_call = None
        self._tick_call = None
        self._started = False
        self._restarts = 0
        self._restart_call = None
        self._kill_call = None
        self._closing = False
        self._finished = False
        self._close_waiters: list[Deferred] = []
        #: the last batch met a database error (locked, full, I/O); cleared by the next good one
        self._database_error = False
        # how the child is doing
        self._ready = False                  # it opened the database (it sent ``Ready``)
        self._spawned_at = 0.0
        self._ping_sent: float | None = None  # a heartbeat not answered yet
        self._silent = False                 # a heartbeat (or ``Ready``) is overdue
        self._file_problem: str | None = None
        self._killing = False
        #: writes of a dead child whose outcome is looked up in the database, and since when
        self._recovering: dict[int, Flight] = {}
        self._recovering_since = 0.0

    # --- start and stop -----------------------------------------------------------------

    def start(self) -> None:
        """Start the database process (from ``startService``: after twistd daemonized)."""
        if self._started or self._closing:
            return
        self._started = True
        self._close_direct()
        if self.inline_budget > 0 and not is_url(self.path):  # PostgreSQL: a read is a round trip, not inline
            self._reader = InlineReader(self.path, self.inline_budget)
        self._spawn()
        self._tick_call = self.reactor.callLater(HEARTBEAT_INTERVAL, self._tick)

    def _spawn(self) -> None:
        self._restart_call = None
        child = DatabaseProtocol(self)
        try:
            self._spawn_process(child, worker_command(), worker_environment())
        except OSError as e:
            log.error("cannot start the database process: {e}", e=e)
            self._schedule_restart()
            return
        setup = Setup(path=self.path, currency=self.ctx.currency, rules=self.ctx.rules,
                      hash_iterations=self.ctx.hash_iterations, cache_size=self.cache_size,
                      secrets_key=self.ctx.secrets.key, max_batch=self.max_batch, token=self.token,
                      password=password_for(self.path))
        child.transport.write(encode(setup))
        self._child = child
        self._ready = self._silent = self._killing = False
        self._ping_sent = None
        self._spawned_at = self.reactor.seconds()
        # calls wait in ``_calls.outgoing`` until it has opened the database (``Ready``)

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
            self._closed()
            return d
        self._flush(force=True)  # if it has not opened the database yet, it runs them once it has
        self._child.transport.closeStdin()  # end of file: the child finishes its queue and exits
        self._kill_call = self.reactor.callLater(STOP_TIMEOUT, self._kill)
        return d

    def _kill(self) -> None:
        self._kill_call = None
        if self._child is not None:
            log.error("database process did not stop within {s:.0f} s; killing it", s=STOP_TIMEOUT)
            self._signal("KILL")

    def _signal(self, sig: str | int) -> None:
        try:
            self._child.transport.signalProcess(sig)
        except Exception:  # already gone
            pass

    def _closed(self) -> None:
        self._finished = True
        for call in (self._kill_call, self._tick_call):
            if call is not None and call.active():
                call.cancel()
        self._tick_call = None
        self._calls.fail_all("closed")
        self._calls.stop()
        for flight in self._recovering.values():
            flight.d.errback(unavailable(flight.name, "the gateway stopped before its outcome was known"))
        self._recovering.clear()
        waiters, self._close_waiters = self._close_waiters, []
        for d in waiters:
            d.callback(None)

    def _close_direct(self) -> None:
        if self._direct is not None:
            self._direct.close_connection()
            self._direct = None

    @property
    def ready(self) -> bool:
        """The database process has opened the database and takes calls."""
        return self._ready

    @property
    def failing(self) -> bool:
        """Closed, the database process down or not answering, its database file gone, or
        its last batch met a database error: 98 reports the ACS offline."""
        return (self._closing or (self._started and self._child is None) or self._database_error
                or self._silent or bool(self._calls.late) or self._file_problem is not None)

    def problem(self) -> str | None:
        """Why calls fail or wait now, in one line (the admin listener's /readyz), or None."""
        if not self._started or self._closing or self._child is None:
            return "the database process is not running"
        if self._database_error:
            return "the database process's last transaction met a database error (locked, disk full or I/O)"
        return self._unreachable() or (None if self._ready else "the database process has not opened the database")

    def _unreachable(self) -> str | None:
        """Why calls cannot be sent to the child now (they fail at once, not applied)."""
        if self._file_problem is not None:
            return f"the database file {self.path} {self._file_problem}"
        if self._silent or self._calls.late:
            return "the database process does not answer"
        return None

    # --- calls ----------------------------------------------------------------------------

    def submit(self, name: str, call: Call, write: bool = True) -> Deferred:
        if self._closing:
            return fail(unavailable(name, "closed"))
        if not write and self._reader is not None and self._file_problem is None:
            d = self._reader.run(name, call)
            if d is not None:
                return d
        if self._started:
            if self._child is None:
                return fail(unavailable(name, "the database process is not running"))
            why = self._unreachable()
            if why is not None:
                return fail(unavailable(name, why))
        # before ``start`` (a serial line opened while twistd starts up looks up its account)
        # and until the child has opened the database, the call waits to be sent
        d = self._calls.add(name, call, write)
        if self._flush_call is None and self._ready:
            # every call of this reactor turn goes out in one frame
            self._flush_call = self.reactor.callLater(0, self._flush)
        return d

    def _flush(self, force: bool = False) -> None:
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        if self._child is None or not (self._ready or force):
            return
        jobs = self._calls.to_send()
        if not jobs:
            return
        try:
            data = encode(jobs)
        except Exception:  # an argument that does not pickle: a bug in the caller; fail only it
            data = b"".join(self._encode_or_fail(job) for job in jobs)
        self._child.transport.write(data)

    def _encode_or_fail(self, job: JobSpec) -> bytes:
        try:
            return encode([job])
        except Exception as e:
            name = self._calls.fail_unsendable(job.number, e)
            log.failure("database call {name} cannot be sent", Failure(e), name=name)
            return b""

    # --- what the child says ----------------------------------------------------------------

    def _received(self, frame: object) -> None:
        self._ping_sent = None   # any frame shows it is alive
        if self._silent:
            self._silent = False
            log.info("database process answers again")
        if isinstance(frame, Answer):
            self._answer(frame)
        elif isinstance(frame, Pong):
            self._file_state(frame.file_problem)
        elif isinstance(frame, Ready):
            self._opened(frame)
        else:
            log.error("database process sent a {kind}; stopping it", kind=type(frame).__name__)
            self._signal("KILL")

    def _opened(self, ready: Ready) -> None:
        self._ready = True
        reader = self._reader
        if reader is not None and reader.identity != (ready.device, ready.inode):
            # the file at the path was replaced and this child opened the new one: read it too
            log.warn("database file {path} is not the file read so far; reading the one now there", path=self.path)
            reader.close()
            self._reader = InlineReader(self.path, self.inline_budget)
        self._flush()

    def _file_state(self, problem: str | None) -> None:
        if problem == self._file_problem:
            return
        self._file_problem = problem
        if problem is not None:
            log.critical("The database file {path} {problem} while sipgateway runs: every write gets a failure "
                         "reply (nothing is written) and 98 says the library system is offline. Put the same file "
                         "back at {path} to resume, or restore the database there and restart sipgateway.",
                         path=self.path, problem=problem)
        else:
            log.warn("database file {path} is back; serving again", path=self.path)

    def _answer(self, answer: Answer) -> None:
        self._restarts = 0  # it answers: the next death starts the backoff afresh
        if answer.learned:
            self.ctx.secrets.learn(answer.learned)
        self.stats = answer.stats
        self._file_state(answer.file_problem)
        # the file's trouble is tracked by itself; a deadline passing is not a database error
        self._database_error = answer.file_problem is None and any(
            isinstance(value, ACSUnavailable) and not isinstance(value, ACSTimeout) for _, value in answer.failed)
        settle = self._calls.settle
        for number, value in outcomes.decode(answer.done):
            settle(number, True, value)
        for number, error in answer.failed:
            settle(number, False, error)

    # --- heartbeats ---------------------------------------------------------------------------

    def _tick(self) -> None:
        self._tick_call = self.reactor.callLater(HEARTBEAT_INTERVAL, self._tick)
        if self._recovering:
            self._recover()
        if self._child is None or self._closing:
            return
        now = self.reactor.seconds()
        if not self._ready:
            if now - self._spawned_at > STARTUP_TIMEOUT:
                self._go_silent(f"has not opened the database within {STARTUP_TIMEOUT:.0f} s")
        elif self._ping_sent is None:
            self._ping_sent = now
            self._signal(signal.SIGUSR1)
        elif now - self._ping_sent > HEARTBEAT_OVERDUE:
            self._go_silent(f"has not answered a heartbeat for {now - self._ping_sent:.0f} s")
        self._check_stuck()

    def _go_silent(self, why: str) -> None:
        if not self._silent:
            self._silent = True
            log.error("database process {why}: 98 says offline and calls fail until it answers", why=why)

    def _check_stuck(self) -> None:
        """A child that does not answer while writes wait for their outcome is killed: then
        the database says which of them committed (``_recover``)."""
        if not self._silent or self._killing or self._child is None:
            return
        held = self._calls.held()
        if held:
            self._killing = True
            log.error("database process does not answer and {n} writes past their deadline wait for their "
                      "outcome: killing it to learn which of them committed", n=held)
            self._signal("KILL")

    # --- a dead child --------------------------------------------------------------------------

    def _ended(self, child: DatabaseProtocol, reason: Failure) -> None:
        if child is not self._child:
            return
        self._child = None
        self._ready = self._silent = False
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        # the writes it was given may have committed: the database knows
        sent_writes = self._calls.take_sent_writes()
        failed = self._calls.fail_all("the database process exited")
        if not self._closing:
            how = "exited" if reason.check(ProcessDone) else str(reason.value)
            log.error("database process stopped unexpectedly ({how}); {n} calls failed, {w} writes looked up",
                      how=how, n=failed, w=len(sent_writes))
        if sent_writes:
            self._recovering.update(sent_writes)
            self._recovering_since = self.reactor.seconds()
            self._recover()
        if self._closing:
            self._closed()
        else:
            self._schedule_restart()

    def _recover(self) -> None:
        """Answer the writes a dead child had: ok with the recorded value when they
        committed, failure ("not applied") when they did not."""
        flights = self._recovering
        try:
            found = outcomes.lookup(self.path, self.token, set(flights))
        except (sqlite3.Error, OSError, pickle.UnpicklingError) as e:
            if self.reactor.seconds() - self._recovering_since < RECOVERY_LIMIT:
                log.warn("database process died; cannot read the outcome of {n} writes yet ({e}); trying again",
                         n=len(flights), e=e)
                return
            log.error("database process died; the outcome of {n} writes is unknown ({e}); they get failure replies",
                      n=len(flights), e=e)
            self._recovering = {}
            for flight in flights.values():
                flight.d.errback(unavailable(flight.name, f"its outcome is unknown ({e})"))
            return
        self._recovering = {}
        found = found or {}
        log.warn("database process died with {n} writes in flight: {c} had committed (ok replies), {f} had not "
                 "(failure replies)", n=len(flights), c=len(found), f=len(flights) - len(found))
        for number, flight in flights.items():
            if number in found:
                flight.d.callback(found[number])
            else:
                flight.d.errback(unavailable(flight.name, "the database process exited before applying it"))

    # --- start-up, in the calling thread ----------------------------------------------------

    def run_sync(self, name: str, fn: Callable[[sqlite3.Connection], Any], write: bool = True,
                 raw: bool = False) -> Any:
        """Run a job in the calling thread on a connection of its own (start-up and tools)."""
        if self._closing:
            raise unavailable(name, "closed")
        if self._direct is None:
            self._direct = Direct(self.path)
        return self._direct.run_sync(name, fn, write, raw)
