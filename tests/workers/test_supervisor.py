"""The parent's supervisor, on a Clock: workers started with their setup, a dead one started
again after growing pauses (afresh after a stable run), none while stopping, SIGHUP passed
on, the workers' log events published as the parent's own."""

from __future__ import annotations

import os
import socket

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.task import Clock
from twisted.logger import LogLevel, eventAsJSON
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.config import load
from sipgateway.workers import supervisor
from sipgateway.workers.setup import read_setup
from sipgateway.workers.supervisor import RESTART_DELAYS, STABLE_AFTER, STOP_TIMEOUT, Supervisor
from tests.logcapture import Logged, capture


class FakeProcess:
    """What ``spawnProcess`` hands the protocol: its stdin and its signals are recorded."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.stdin = b""
        self.signals: list[str] = []

    def write(self, data: bytes) -> None:
        self.stdin += data

    def signalProcess(self, sig: str) -> None:  # noqa: N802 - Twisted's name
        self.signals.append(sig)


class FakePort:
    def __init__(self, fd: int, family: int) -> None:
        self._fd, self._family = fd, family

    def fileno(self) -> int:
        return self._fd

    def family(self) -> int:
        return self._family


class SupervisorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.spawned: list[tuple[object, FakeProcess, dict]] = []
        self.dead: list[int] = []
        config = load(None, listen=["sip:tcp:6001", "sip:serial:/dev/ttyS0", "telnet:tcp:6002"], workers="2")
        ports = {0: FakePort(40, socket.AF_INET), 2: FakePort(41, socket.AF_INET6)}
        self.sup = Supervisor(self.clock, config, ports, spawn=self.spawn, env={"X": "1"},
                              on_death=self.dead.append)
        gen = capture()
        self.logged: Logged = next(gen)
        self.addCleanup(gen.close)

    def spawn(self, protocol, executable, argv, env, child_fds) -> FakeProcess:
        process = FakeProcess(1000 + len(self.spawned))
        self.spawned.append((protocol, process, child_fds))
        assert argv[1:] == ["-m", "sipgateway.workers.child"] and env["X"] == "1"
        protocol.makeConnection(process)
        return process

    def die(self, n: int, reason: Failure | None = None) -> None:
        protocol = self.sup.slots[n - 1].protocol
        protocol.processEnded(reason or Failure(ProcessTerminated(signal=9)))

    def test_starts_each_worker_with_its_setup_and_the_held_sockets(self) -> None:
        self.sup.startService()
        self.assertEqual(len(self.spawned), 2)
        for n, (_, process, child_fds) in enumerate(self.spawned, start=1):
            self.assertEqual(child_fds, {0: "w", 1: "r", 2: "r", 3: 40, 4: 41})
            r, w = os.pipe()
            os.write(w, process.stdin)
            os.close(w)
            setup = read_setup(r)
            os.close(r)
            self.assertEqual((setup.index, setup.count), (n, 2))
            self.assertEqual(setup.fds, {0: (3, socket.AF_INET), 2: (4, socket.AF_INET6)})
            self.assertEqual(setup.config, self.sup.config)
        self.assertEqual(self.sup.pids, {1: 1000, 2: 1001})

    def test_a_dead_worker_is_started_again_after_growing_pauses(self) -> None:
        self.sup.startService()
        for delay in (*RESTART_DELAYS, RESTART_DELAYS[-1]):
            before = len(self.spawned)
            self.die(1)
            self.assertIsNone(self.sup.slots[0].protocol)
            self.clock.advance(delay - 0.01)
            self.assertEqual(len(self.spawned), before, delay)
            self.clock.advance(0.01)
            self.assertEqual(len(self.spawned), before + 1, delay)
        self.assertEqual(self.sup.slots[1].pid, 1001)  # the other one was left alone
        self.assertEqual(self.dead, [1000, 1002, 1003, 1004, 1005, 1006, 1007])
        self.assertEqual(len(self.logged.lines("worker 1 (pid 1000) stopped unexpectedly")), 1)

    def test_a_worker_that_ran_a_while_starts_the_backoff_afresh(self) -> None:
        self.sup.startService()
        self.die(1)
        self.clock.advance(RESTART_DELAYS[0])
        self.die(1)
        self.clock.advance(RESTART_DELAYS[1])
        self.clock.advance(STABLE_AFTER)
        before = len(self.spawned)
        self.die(1, Failure(ProcessDone(0)))
        self.clock.advance(RESTART_DELAYS[0])
        self.assertEqual(len(self.spawned), before + 1)
        self.assertTrue(self.logged.lines("(exited)"))

    def test_stopping_terminates_the_workers_and_starts_none_again(self) -> None:
        self.sup.startService()
        self.die(2)  # a restart is pending
        d = self.sup.stopService()
        self.assertEqual(self.spawned[0][1].signals, ["TERM"])
        self.assertNoResult(d)
        self.die(1, Failure(ProcessDone(0)))
        self.successResultOf(d)
        self.clock.advance(max(RESTART_DELAYS) + STOP_TIMEOUT)
        self.assertEqual(len(self.spawned), 2)

    def test_workers_that_do_not_stop_are_killed(self) -> None:
        self.sup.startService()
        d = self.sup.stopService()
        self.clock.advance(STOP_TIMEOUT)
        self.assertEqual([p.signals for _, p, _ in self.spawned], [["TERM", "KILL"], ["TERM", "KILL"]])
        self.die(1)
        self.die(2)
        self.successResultOf(d)

    def test_sighup_is_passed_on_to_every_running_worker(self) -> None:
        self.sup.startService()
        self.die(2)
        self.sup.forward_hup()
        self.assertEqual(self.spawned[0][1].signals, ["HUP"])
        self.assertEqual(self.spawned[1][1].signals, [])
        self.assertEqual(self.logged.lines("SIGHUP received; forwarding it to 1 workers (pids 1000)"),
                         ["SIGHUP received; forwarding it to 1 workers (pids 1000)"])

    def test_log_events_of_a_worker_are_published_with_its_name(self) -> None:
        self.sup.startService()
        protocol = self.spawned[0][0]
        event = {"log_format": "{peer}: logged in", "peer": "127.0.0.1:5", "log_level": LogLevel.info,
                 "log_namespace": "sipgateway.session", "log_time": 1.0}
        data = ("\x1e" + eventAsJSON(event) + "\n").encode()
        protocol.outReceived(data[:10])
        self.assertEqual(self.logged.lines("logged in"), [])  # half a line: waits for the rest
        protocol.outReceived(data[10:] + b"stray print\n")
        (relayed,) = [e for e in self.logged.events if e.get("peer") == "127.0.0.1:5"]
        self.assertEqual(relayed["log_system"], "worker 1 pid 1000")
        self.assertEqual(relayed["log_level"], LogLevel.info)
        (stray,) = [e for e in self.logged.events if e.get("text") == "stray print"]
        self.assertEqual((stray["log_level"], stray["log_system"]), (LogLevel.error, "worker 1 pid 1000"))
        protocol.errReceived(b"Traceback (most recent call last):\n  boom")
        protocol.processEnded(Failure(ProcessTerminated(exitCode=1)))  # what it left unfinished is logged
        self.assertEqual([e["text"] for e in self.logged.events if e.get("log_level") == LogLevel.error
                          and "text" in e], ["stray print", "Traceback (most recent call last):", "  boom"])

    def test_a_line_without_end_is_bounded(self) -> None:
        self.sup.startService()
        protocol = self.spawned[0][0]
        protocol.errReceived(b"x" * (supervisor.MAX_LINE + 1))
        self.assertEqual(len(self.logged.lines("x" * supervisor.MAX_LINE)), 1)
        self.assertEqual(protocol._err, b"")


class SetupTests(SynchronousTestCase):
    def test_a_worker_without_a_whole_setup_says_so(self) -> None:
        r, w = os.pipe()
        os.write(w, b"\x00\x00\x01\x00abc")
        os.close(w)
        with self.assertRaisesRegex(ValueError, "closed the pipe"):
            read_setup(r)
        os.close(r)


class WhenStoppedTests(SynchronousTestCase):
    setUp, spawn, die = SupervisorTests.setUp, SupervisorTests.spawn, SupervisorTests.die  # noqa: N815

    def test_what_stops_after_the_workers_waits_until_every_one_has_exited(self) -> None:
        self.sup.startService()
        self.sup.stopService()
        after = self.sup.when_stopped()  # the shared database process, the private directory
        self.die(1, Failure(ProcessDone(0)))
        self.assertNoResult(after)
        self.die(2, Failure(ProcessDone(0)))
        self.successResultOf(after)
        self.successResultOf(self.sup.when_stopped())  # none left: at once
