"""Circuit breakers and failover, driven by a Clock: when a server is taken out, how it is
probed back, where requests go, and which ones may be sent to a second server."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.upstream.breaker import CircuitBreaker, FailoverGroup, Member
from sipgateway.acs.upstream.errors import (
    DeadlinePassed,
    QueueFull,
    ReplyTimeout,
    Unavailable,
)
from sipgateway.sip2 import Message
from tests.upstream.fakes import Behaviour
from tests.upstream.helpers import CHECKIN_FIELDS, CHECKIN_FIXED, LogCapture
from tests.upstream.test_pool import PoolHarness


class Probe:
    def __init__(self) -> None:
        self.answers: list[bool] = []
        self.calls = 0

    def __call__(self) -> Deferred:
        self.calls += 1
        return succeed(self.answers.pop(0) if self.answers else False)


class BreakerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.probe = Probe()
        self.breaker = CircuitBreaker("ils:6001", self.clock, self.probe, threshold=3, probe_interval=5)
        self.changes: list = []
        self.breaker.on_change.append(lambda name, closed, why: self.changes.append((name, closed)))

    def test_consecutive_failures_open_it_and_it_is_logged_once(self):
        log = LogCapture(self)
        self.breaker.record(False, "timeout")
        self.breaker.record(False, "timeout")
        self.assertTrue(self.breaker.allow())
        self.breaker.record(False, "connection refused")
        self.assertFalse(self.breaker.allow())
        for _ in range(10):
            self.breaker.record(False, "more")
        warnings = [x for x in log.lines(LogLevel.warn) if "out of service" in x]
        self.assertEqual(warnings, ["upstream ils:6001: out of service (3 failures in a row, the last: connection "
                                    "refused); probing it every 5 s"])
        self.assertEqual(self.changes, [("ils:6001", False)])

    def test_a_reply_resets_the_count(self):
        for _ in range(5):
            self.breaker.record(False, "x")
            self.breaker.record(False, "x")
            self.breaker.record(True, "reply")
        self.assertTrue(self.breaker.allow())

    def test_probes_every_interval_until_answered(self):
        log = LogCapture(self)
        for _ in range(3):
            self.breaker.record(False, "x")
        self.probe.answers = [False, False, True]
        self.clock.advance(4.9)
        self.assertEqual(self.probe.calls, 0)
        self.clock.advance(0.1)
        self.assertEqual(self.probe.calls, 1)
        self.clock.advance(5)
        self.assertFalse(self.breaker.allow())
        self.clock.advance(5)
        self.assertEqual(self.probe.calls, 3)
        self.assertTrue(self.breaker.allow())
        self.clock.advance(60)
        self.assertEqual(self.probe.calls, 3)  # no probes while closed
        self.assertEqual(self.changes, [("ils:6001", False), ("ils:6001", True)])
        self.assertEqual(len([x for x in log.lines() if "back in service" in x]), 1)

    def test_a_probe_that_breaks_counts_as_unanswered(self):
        breaker = CircuitBreaker("x", self.clock, lambda: fail(RuntimeError("boom")), threshold=1, probe_interval=1)
        breaker.record(False, "x")
        self.clock.advance(3)
        self.assertFalse(breaker.allow())

    def test_stop_ends_the_probes(self):
        for _ in range(3):
            self.breaker.record(False, "x")
        self.breaker.stop()
        self.clock.advance(60)
        self.assertEqual(self.probe.calls, 0)


def member(name: str, clock: Clock, send) -> Member:
    return Member(name, CircuitBreaker(name, clock, lambda: succeed(True), threshold=1, probe_interval=5), send)


class FailoverTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.calls: list[str] = []

    def sender(self, name: str, outcome):
        def send(code, fixed, fields, deadline):
            self.calls.append(name)
            return outcome() if callable(outcome) else succeed(Message("10", {"ok": "1"}, {"AB": name}))
        return send

    def group(self, *outcomes) -> FailoverGroup:
        return FailoverGroup([member(f"s{i}", self.clock, self.sender(f"s{i}", o)) for i, o in enumerate(outcomes)],
                             self.clock)

    def test_first_healthy_server_gets_the_request(self):
        g = self.group(None, None)
        self.assertEqual(self.successResultOf(g.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)).get("AB"), "s0")
        g.members[0].breaker.record(False, "down")
        self.assertIs(g.first_healthy(), g.members[1])
        self.assertEqual(self.successResultOf(g.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)).get("AB"), "s1")
        self.clock.advance(5)  # s0 answers its probe
        self.assertEqual(self.successResultOf(g.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)).get("AB"), "s0")

    def test_not_sent_goes_to_the_next_server(self):
        for error in (Unavailable("no connection"), QueueFull("full")):
            self.calls.clear()
            g = self.group(lambda e=error: fail(e), None)
            self.assertEqual(self.successResultOf(g.request("11", {}, {})).get("AB"), "s1")
            self.assertEqual(self.calls, ["s0", "s1"])

    def test_a_write_with_an_unknown_outcome_is_never_sent_twice(self):
        g = self.group(lambda: fail(ReplyTimeout("late")), None)
        for code in ("11", "09", "29", "37"):
            self.failureResultOf(g.request(code, {}, {}), ReplyTimeout)
        self.assertEqual(self.calls, ["s0"] * 4)

    def test_a_read_with_an_unknown_outcome_is_asked_elsewhere(self):
        g = self.group(lambda: fail(ReplyTimeout("late")), None)
        self.assertEqual(self.successResultOf(g.request("17", {}, {})).get("AB"), "s1")

    def test_deadline_passed_is_not_tried_elsewhere(self):
        g = self.group(lambda: fail(DeadlinePassed("late")), None)
        self.failureResultOf(g.request("17", {}, {}), DeadlinePassed)
        self.assertEqual(self.calls, ["s0"])

    def test_every_server_down(self):
        g = self.group(None, None)
        changes: list[bool] = []
        g.on_change.append(changes.append)
        log = LogCapture(self)
        g.members[0].breaker.record(False, "x")
        self.assertTrue(g.healthy)
        g.members[1].breaker.record(False, "x")
        self.assertFalse(g.healthy)
        f = self.failureResultOf(g.request("09", {}, {}), Unavailable)
        self.assertIn("every upstream is out of service (s0, s1)", str(f.value))
        self.assertEqual(self.calls, [])
        self.clock.advance(5)
        self.assertTrue(g.healthy)
        self.assertEqual(changes, [False, True])
        self.assertEqual(len([x for x in log.lines(LogLevel.warn) if "every upstream is out of service" in x]), 1)


class PoolBreakerTests(SynchronousTestCase):
    def test_a_dead_server_is_taken_out_and_probed_back_in(self):
        h = PoolHarness(self, url="sip2://ils:6001?login=gw&password=secret&pool=1&timeout=2",
                        behaviour=Behaviour(silent_on={"09"}))
        breaker = CircuitBreaker(h.config.server, h.clock, h.pool.probe, threshold=3, probe_interval=5)
        h.pool.on_outcome.append(breaker.record)
        group = FailoverGroup([Member(h.config.server, breaker, h.pool.request)], h.clock)
        h.start()
        # a timeout, then two requests that find the connection still waiting for the late reply
        for error in (ReplyTimeout, DeadlinePassed, DeadlinePassed):
            d = group.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)
            h.advance(2)
            self.failureResultOf(d, error)
        self.assertFalse(group.healthy)
        self.failureResultOf(group.request("09", CHECKIN_FIXED, CHECKIN_FIELDS), Unavailable)
        h.fake.behaviour.silent_on.clear()
        h.advance(30)
        self.assertTrue(group.healthy)
        d = group.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        h.flush()
        self.assertEqual(self.successResultOf(d).code, "10")
