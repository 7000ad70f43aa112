"""The parent's side of the database process shared by the workers (workers/database.py):
its socket bound once for the whole run and handed to every process it starts, a dead one
started again with growing pauses (afresh once one opened the database), and stopping
that waits for the workers before ending the process's stdin."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from types import SimpleNamespace

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessTerminated
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.sqlite.frames import FrameReader, Ready, Setup
from sipgateway.acs.sqlite.rules import CirculationRules
from sipgateway.workers.database import LISTEN_FD, DatabaseHost
from tests.logcapture import Logged, capture


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.written = b""
        self.stdin_closed = False
        self.signals: list[str] = []

    def write(self, data: bytes) -> None:
        self.written += data

    def closeStdin(self) -> None:  # noqa: N802
        self.stdin_closed = True

    def signalProcess(self, sig: str) -> None:  # noqa: N802
        self.signals.append(sig)


class Reactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[tuple[object, FakeProcess, dict]] = []

    def spawnProcess(self, protocol, executable, argv, env=None, childFDs=None):  # noqa: N802
        process = FakeProcess(1000 + len(self.spawned))
        protocol.makeConnection(process)
        self.spawned.append((protocol, process, childFDs))
        return process


class Workers:
    """The supervisor as the host sees it: ``when_stopped``."""

    def __init__(self) -> None:
        self.stopped: Deferred = Deferred()

    def when_stopped(self) -> Deferred:
        return self.stopped


class DatabaseHostTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = Reactor()
        run_dir = Path(tempfile.mkdtemp(prefix="sipgateway-workers-"))  # short: a UNIX socket path is bounded
        self.addCleanup(shutil.rmtree, run_dir, True)
        acs = SimpleNamespace(path="/srv/lib.sqlite3", ctx=SimpleNamespace(currency="EUR", rules=CirculationRules(),
                                                                           hash_iterations=1000),
                              runner=SimpleNamespace(cache_size=64, max_batch=32))
        self.shared = SimpleNamespace(path=str(run_dir), database=None, secrets_key=None)
        self.workers = Workers()
        self.host = DatabaseHost(self.reactor, acs, self.shared, self.workers)
        gen = capture()
        self.logged: Logged = next(gen)
        self.addCleanup(gen.close)
        self.host.startService()
        self.addCleanup(lambda: self.host.socket.close() if self.host.socket is not None else None)

    def end(self, index: int) -> None:
        protocol, _, _ = self.reactor.spawned[index]
        protocol.processEnded(Failure(ProcessTerminated(signal=9)))

    def test_the_socket_is_the_workers_and_every_process_gets_it_with_its_setup(self) -> None:
        path = os.path.join(self.shared.path, "database.sock")
        self.assertEqual((self.shared.database, self.shared.secrets_key), (path, self.host.setup.secrets_key))
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with socket.socket(socket.AF_UNIX) as worker:
            worker.connect(path)  # waits in the queue for a database process
        _, process, fds = self.reactor.spawned[0]
        self.assertEqual(fds[LISTEN_FD], self.host.socket.fileno())
        (setup,) = FrameReader().feed(process.written)
        self.assertIsInstance(setup, Setup)
        self.assertEqual((setup.path, setup.currency, setup.cache_size, setup.max_batch, setup.listen_fd),
                         ("/srv/lib.sqlite3", "EUR", 64, 32, LISTEN_FD))

    def test_a_dead_process_is_started_again_with_growing_pauses_afresh_once_it_opened_the_database(self) -> None:
        self.end(0)
        self.assertEqual(len(self.logged.lines("the database process of the workers (pid 1000) stopped "
                                               "unexpectedly")), 1)
        self.reactor.advance(0.9)
        self.assertEqual(len(self.reactor.spawned), 1)
        self.reactor.advance(0.1)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.end(1)
        self.reactor.advance(1.0)
        self.assertEqual(len(self.reactor.spawned), 2)  # 2 s the second time
        self.reactor.advance(1.0)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.reactor.spawned[2][0].runner._received(Ready(1, 2, pid=1002))
        self.end(2)
        self.reactor.advance(1.0)
        self.assertEqual(len(self.reactor.spawned), 4)  # it had opened the database: 1 s again
        self.assertEqual(self.host.pid, 1003)

    def test_stopping_waits_for_the_workers_then_ends_stdin_and_waits_for_the_process(self) -> None:
        stopped = self.host.stopService()
        _, process, _ = self.reactor.spawned[0]
        self.assertFalse(process.stdin_closed)  # the workers still send their last calls
        self.workers.stopped.callback(None)
        self.assertTrue(process.stdin_closed)
        self.assertNoResult(stopped)
        self.end(0)  # it committed what it was given and exited
        self.successResultOf(stopped)
        self.assertIsNone(self.host.socket)
        self.reactor.advance(60)
        self.assertEqual(len(self.reactor.spawned), 1)  # not started again
        self.assertEqual(self.logged.lines("stopped unexpectedly"), [])
