"""Asking every worker at once (/sessions across workers): answers gathered by pid, a worker
that is gone or silent left out and named in the log, answers bounded."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.model import Account
from sipgateway.workers import peers as peers_module
from sipgateway.workers.peers import Peers, session_summary
from sipgateway.workers.ports import Adoption
from tests.logcapture import Logged, capture


class Network:
    """Workers in one process; a connection is an in-memory pump (iosim)."""

    def __init__(self, clock: Clock, count: int) -> None:
        self.clock = clock
        self.pumps: list[iosim.IOPump] = []
        self.down: set[int] = set()
        self.silent: set[int] = set()
        self.workers = [Peers(clock, "/nonexistent", n, count, 1000 + n, connect=self.connect)
                        for n in range(1, count + 1)]

    def connect(self, index: int, factory) -> Deferred:
        if index in self.down:
            return fail(ConnectionRefusedError("no such socket"))
        client = factory.buildProtocol(None)
        if index in self.silent:  # connected, never answers
            client.makeConnection(iosim.FakeTransport(client, isServer=False))
            return succeed(client)
        server_factory = type("F", (), {"peers": self.workers[index - 1]})()
        server = peers_module._Answering()
        server.factory = server_factory
        self.pumps.append(iosim.connect(server, iosim.FakeTransport(server, isServer=True),
                                        client, iosim.FakeTransport(client, isServer=False)))
        return succeed(client)

    def flush(self) -> None:
        for pump in self.pumps:
            pump.flush()


class PeersTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.net = Network(self.clock, 3)
        for worker in self.net.workers:
            worker.answers["sessions"] = (lambda w: lambda: [f"session of {w.pid}"])(worker)
        gen = capture()
        self.logged: Logged = next(gen)
        self.addCleanup(gen.close)

    def test_every_worker_answers_by_pid(self) -> None:
        d = self.net.workers[1].ask_all("sessions")
        self.net.flush()
        self.assertEqual(self.successResultOf(d), {1001: ["session of 1001"], 1002: ["session of 1002"],
                                                   1003: ["session of 1003"]})

    def test_a_worker_gone_or_silent_is_left_out_and_named(self) -> None:
        self.net.down.add(1)
        self.net.silent.add(3)
        d = self.net.workers[1].ask_all("sessions")
        self.net.flush()
        self.assertNoResult(d)
        self.clock.advance(peers_module.TIMEOUT)
        self.assertEqual(self.successResultOf(d), {1002: ["session of 1002"]})
        self.assertEqual(len(self.logged.lines("worker 1 did not answer 'sessions'")), 1)
        self.assertEqual(len(self.logged.lines("worker 3 did not answer 'sessions'")), 1)

    def test_an_unknown_question_or_a_broken_answer_is_an_error_not_a_crash(self) -> None:
        self.net.workers[2].answers["sessions"] = lambda: 1 / 0
        d = self.net.workers[0].ask_all("sessions")
        self.net.flush()
        self.assertEqual(sorted(self.successResultOf(d)), [1001, 1002])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)  # logged where it broke, with its traceback
        self.assertEqual(len(self.logged.lines("worker 3 did not answer 'sessions': ZeroDivisionError: division by "
                                               "zero")), 1)
        self.assertEqual(json.loads(self.net.workers[0].answer("nothing")), {"pid": 1001, "error": "no answer to "
                                                                                                 "'nothing'"})

    def test_answers_and_questions_are_bounded(self) -> None:
        self.assertEqual(peers_module._Asking.MAX_LENGTH, peers_module.MAX_ANSWER)
        server = peers_module._Answering()
        server.factory = type("F", (), {"peers": self.net.workers[0]})()
        transport = iosim.FakeTransport(server, isServer=True)
        server.makeConnection(transport)
        server.dataReceived(b"\x00\x01\x00\x00" + b"x" * 10)  # 64 KiB announced: refused
        self.assertTrue(transport.disconnecting)

    def test_a_workers_gateway_lists_its_sessions_with_its_pid(self) -> None:
        """As /sessions shows a session on one process, with ``"worker": PID`` added."""
        from sipgateway.sessioninfo import local_time
        from sipgateway.settings import ListenerSettings

        session = type("S", (), {"peer": "raw 10.0.0.5:4000", "account": Account("sc1", "MAIN"), "terminal": None,
                                 "since": 5.0, "served": 2, "last_code": "99", "last_at": 6.0,
                                 "settings": ListenerSettings(name="raw")})()
        gateway = type("G", (), {"sessions": {session}})()
        peers = self.net.workers[0]
        Adoption(self.clock, {}, first=True, pid=1001, peers=peers).serving(gateway)
        self.assertEqual((gateway.worker, gateway.peers), (1001, peers))
        self.assertEqual(peers.local("sessions"), [session_summary(session, 1001)])
        self.assertEqual(session_summary(session, 1001), {
            "listener": "raw", "peer": "10.0.0.5:4000", "account": "sc1", "terminal": None, "since": local_time(5.0),
            "served": 2, "last_code": "99", "last_at": local_time(6.0), "worker": 1001})
