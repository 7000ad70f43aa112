"""The one database process of ``--workers N`` on ``sqlite:``, run by the parent.

Every worker's runner connects to it over ``database.sock`` in the workers' private
directory (acs/sqlite/sharedclient.py and sharedserver.py), so all of them share one
writing connection, one queue and one group commit, instead of N processes taking turns
at the file's write lock.  The parent binds the socket and keeps it for the whole run,
hands it to each database process it starts, and starts a dead one again after 1 s, then
2, 5, 10, 30 and 60 s if it keeps dying (a process that opened the database starts that
count afresh); the workers' connections wait in the socket's queue meanwhile.  Stopping
waits for the workers to stop (each first gets the answers of everything it sent), then
closes the process's stdin: it commits what it was given and exits.

Only for ``sqlite:``: a backend whose workers keep their own connections (PostgreSQL) has
nothing here (``shared_database``)."""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from sipgateway.acs.sqlite.batch import MAX_BATCH
from sipgateway.acs.sqlite.childprocess import DatabaseProtocol, worker_command, worker_environment
from sipgateway.acs.sqlite.frames import Ready, Setup, encode

log = Logger()

#: waits before starting a dead database process again; the last one repeats
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: how long stopping waits for the database process to commit and exit before killing it
STOP_TIMEOUT = 30.0
#: the descriptor of the listening socket in the database process
LISTEN_FD = 3
#: connections waiting for a database process being started
BACKLOG = 256


def shared_database(backend: Any) -> Any:
    """The SQLite library system a backend runs on (the embedded one, or a front gateway's
    own database), to be shared by the workers; None: the workers keep their own."""
    from sipgateway.acs.sqlite.backend import SQLiteACS
    from sipgateway.acs.sqlite.dbprocess import ProcessRunner

    acs = getattr(getattr(backend, "own", backend), "acs", None)
    if isinstance(acs, SQLiteACS) and isinstance(acs.runner, ProcessRunner) and os.path.isfile(acs.path):
        return acs  # a database process on an SQLite file
    return None


class DatabaseHost(Service):
    """Runs the shared database process while the gateway runs."""

    def __init__(self, reactor: Any, acs: Any, shared: Any, supervisor: Any = None) -> None:
        self.reactor = reactor
        #: what the database process opens, as the start-up ACS opened it
        self.setup = Setup(path=acs.path, currency=acs.ctx.currency, rules=acs.ctx.rules,
                           hash_iterations=acs.ctx.hash_iterations, cache_size=acs.runner.cache_size,
                           secrets_key=os.urandom(32), max_batch=getattr(acs.runner, "max_batch", MAX_BATCH),
                           token=os.urandom(8).hex(), listen_fd=LISTEN_FD)
        #: the workers' private directory (parent.RunDirectory): the socket goes there, and the
        #: workers learn its path and the secrets key from it
        self.shared = shared
        #: the workers: stopping waits for them
        self.supervisor = supervisor
        self.socket: socket.socket | None = None
        self.child: DatabaseProtocol | None = None
        #: the database process's, while it runs (and in the log line of its death)
        self.pid: int | None = None
        self.restarts = 0
        self._restart: Any = None
        self._stopping = False
        self._exit_waiters: list[Deferred] = []

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        super().startService()
        self._stopping = False
        path = os.path.join(self.shared.path, "database.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        os.chmod(path, 0o600)
        sock.listen(BACKLOG)
        self.socket = sock
        self.shared.database, self.shared.secrets_key = path, self.setup.secrets_key
        self._spawn()

    def _spawn(self) -> None:
        self._restart = None
        child = DatabaseProtocol(self)
        try:
            self.reactor.spawnProcess(child, worker_command()[0], worker_command(), env=worker_environment(),
                                      childFDs={0: "w", 1: "r", 2: "r", LISTEN_FD: self.socket.fileno()})
        except OSError as e:
            log.error("cannot start the database process of the workers: {e}", e=e)
            self._schedule()
            return
        child.transport.write(encode(self.setup))  # stdin then stays open: its end tells it to stop
        self.child = child
        self.pid = child.transport.pid
        log.info("started the database process of the workers (pid {pid})", pid=self.pid)

    def _schedule(self) -> None:
        delay = RESTART_DELAYS[min(self.restarts, len(RESTART_DELAYS) - 1)]
        self.restarts += 1
        log.error("database process of the workers: starting it again in {delay:g} s", delay=delay)
        self._restart = self.reactor.callLater(delay, self._spawn)

    # --- what DatabaseProtocol tells its runner -----------------------------------------------

    def _received(self, frame: object) -> None:
        if isinstance(frame, Ready):
            self.restarts = 0  # it opened the database: the next death starts the pauses afresh

    def _ended(self, child: DatabaseProtocol, reason: Failure) -> None:
        if child is not self.child:
            return
        self.child = None
        waiters, self._exit_waiters = self._exit_waiters, []
        for d in waiters:
            d.callback(None)
        if self._stopping:
            return
        how = "exited" if reason.check(ProcessDone) else str(reason.value)
        log.error("the database process of the workers (pid {pid}) stopped unexpectedly ({how}); each worker "
                  "answers the writes it had as the database records them", pid=self.pid, how=how)
        self._schedule()

    # --- stopping ---------------------------------------------------------------------------

    def stopService(self) -> Deferred:  # noqa: N802
        super().stopService()
        self._stopping = True
        if self._restart is not None and self._restart.active():
            self._restart.cancel()
        workers = self.supervisor.when_stopped() if self.supervisor is not None else succeed(None)
        return workers.addCallback(lambda _: self._stop_child()).addBoth(self._close_socket)

    def _stop_child(self) -> Deferred:
        if self.child is None:
            return succeed(None)
        d: Deferred = Deferred()
        self._exit_waiters.append(d)
        child = self.child
        child.transport.closeStdin()  # end of file: it runs what it was given, then exits
        kill = self.reactor.callLater(STOP_TIMEOUT, self._kill, child)
        return d.addBoth(lambda result: (kill.cancel() if kill.active() else None, result)[1])

    def _kill(self, child: DatabaseProtocol) -> None:
        log.error("the database process of the workers did not stop within {s:.0f} s; killing it", s=STOP_TIMEOUT)
        try:
            child.transport.signalProcess("KILL")
        except Exception:  # already gone
            pass

    def _close_socket(self, result: object) -> object:
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        return result
