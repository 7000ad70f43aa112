"""Connections to one server: login once per connection, dispatch, the bounded queue,
deadlines ("not sent" versus "outcome unknown"), reconnect with backoff and re-login."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import LogLevel
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.upstream.errors import (
    ConnectionLost,
    DeadlinePassed,
    LoginRefused,
    NotSent,
    OutcomeUnknown,
    QueueFull,
    ReplyTimeout,
    Unavailable,
)
from sipgateway.acs.upstream.pool import UpstreamPool
from sipgateway.acs.upstream.url import parse_url
from tests.upstream.fakes import Behaviour, FakeUpstream, MemoryEndpoint
from tests.upstream.helpers import CHECKIN_FIELDS, CHECKIN_FIXED, LogCapture

CHECKOUT_FIXED = {"sc_renewal_policy": "N", "no_block": "N", "transaction_date": "20240506    103000",
                  "nb_due_date": " " * 18}


def checkout_fields(item: str = "it2", patron: str = "p1") -> dict:
    return {"AO": "MAIN", "AA": patron, "AB": item, "AC": ""}


class PoolHarness:
    """A pool to a fake upstream over iosim, driven by one Clock."""

    def __init__(self, testcase, url: str = "sip2://ils.example.org:6001?login=gw&password=secret&pool=2&timeout=5",
                 behaviour: Behaviour | None = None, **pool_kw) -> None:
        self.clock = Clock()
        self.fake = FakeUpstream(behaviour, self.clock)
        self.endpoint = MemoryEndpoint(self.fake)
        self.config = parse_url(url)
        self.pool = UpstreamPool(self.config, self.clock, self.endpoint, **pool_kw)
        self.outcomes: list[tuple[bool, str]] = []
        self.pool.on_outcome.append(lambda ok, why: self.outcomes.append((ok, why)))
        testcase.addCleanup(self.pool.stop)

    def flush(self) -> None:
        self.endpoint.flush()

    def advance(self, seconds: float, step: float = 0.5) -> None:
        left = seconds
        while left > 1e-9:
            dt = min(step, left)
            self.clock.advance(dt)
            self.flush()
            left -= dt

    def start(self) -> None:
        self.pool.start()
        self.flush()

    def checkout(self, item: str = "it2", deadline: float | None = None):
        return self.pool.request("11", CHECKOUT_FIXED, checkout_fields(item), deadline)


class LoginAndDispatchTests(SynchronousTestCase):
    def test_pool_connections_log_in_once_each(self):
        h = PoolHarness(self)
        h.start()
        logins = [m for m in h.fake.received if m.code == "93"]
        self.assertEqual([(m.get("CN"), m.get("CO")) for m in logins], [("gw", "secret")] * 2)
        self.assertEqual(h.pool.ready_connections, 2)
        d = h.checkout()
        h.flush()
        msg = self.successResultOf(d)
        self.assertEqual((msg.code, msg.fixed["ok"]), ("12", "1"))
        self.assertEqual(h.fake.codes(), ["93", "93", "11"])
        self.assertEqual(h.outcomes, [(True, "reply")])

    def test_requests_beyond_the_free_connections_wait_their_turn(self):
        h = PoolHarness(self, behaviour=Behaviour(delay=1.0))
        h.start()
        h.advance(1)
        ds = [h.checkout(item) for item in ("it1", "it2", "it3")]
        h.flush()
        self.assertEqual(h.fake.codes().count("11"), 2)  # two connections, two in flight
        h.advance(1)
        self.assertEqual(h.fake.codes().count("11"), 3)
        h.advance(1)
        self.assertEqual([self.successResultOf(d).get("AB") for d in ds], ["it1", "it2", "it3"])

    def test_full_queue_fails_at_once(self):
        h = PoolHarness(self, behaviour=Behaviour(delay=1.0), max_queue=1)
        h.start()
        h.advance(1)
        ds = [h.checkout() for _ in range(3)]
        f = self.failureResultOf(h.checkout(), QueueFull)
        self.assertIsInstance(f.value, NotSent)
        h.advance(3)
        for d in ds:
            self.successResultOf(d)


class DeadlineTests(SynchronousTestCase):
    def test_deadline_already_passed_is_not_sent(self):
        h = PoolHarness(self)
        h.start()
        h.clock.advance(10)
        self.failureResultOf(h.checkout(deadline=9.0), DeadlinePassed)
        h.flush()
        self.assertNotIn("11", h.fake.codes())

    def test_deadline_passing_in_the_queue_is_never_sent(self):
        h = PoolHarness(self, url="sip2://h:1?login=gw&password=secret&pool=1&timeout=5",
                        behaviour=Behaviour(delay=2.0))
        h.start()
        h.advance(2)
        first = h.checkout("it1")
        queued = h.checkout("it2", deadline=h.clock.seconds() + 1.0)
        h.advance(1)
        f = self.failureResultOf(queued, DeadlinePassed)
        self.assertIsInstance(f.value, NotSent)
        h.advance(3)
        self.successResultOf(first)
        self.assertEqual([m.get("AB") for m in h.fake.received if m.code == "11"], ["it1"])

    def test_sent_then_no_answer_is_outcome_unknown(self):
        h = PoolHarness(self, behaviour=Behaviour(silent_on={"11"}))
        h.start()
        d = h.checkout(deadline=h.clock.seconds() + 1.0)
        h.advance(1)
        f = self.failureResultOf(d, ReplyTimeout)
        self.assertIsInstance(f.value, OutcomeUnknown)
        self.assertNotIsInstance(f.value, NotSent)
        self.assertEqual(h.outcomes[-1][0], False)


class ReconnectTests(SynchronousTestCase):
    def test_backoff_1_2_5_10_30_60_and_one_log_line_per_streak(self):
        h = PoolHarness(self, url="sip2://h:1?login=gw&password=secret&pool=1")
        log = LogCapture(self)
        h.endpoint.refuse = True
        h.start()
        attempts = []
        for _ in range(200):
            h.clock.advance(1)
            attempts.append(h.endpoint.attempts)
        times = [t + 1 for t in range(200) if attempts[t] != (attempts[t - 1] if t else 1)]
        self.assertEqual(times, [1, 3, 8, 18, 48, 108, 168])
        warnings = [line for line in log.lines(LogLevel.warn) if "cannot connect" in line]
        self.assertEqual(len(warnings), 1)
        self.assertIn("trying again after 1, 2, 5, 10, 30, then every 60 s", warnings[0])
        h.endpoint.refuse = False
        h.clock.advance(60)
        h.flush()
        self.assertEqual(h.pool.ready_connections, 1)
        self.assertIn("connected and logged in again", log.text())

    def test_no_connection_fails_at_once_as_not_sent(self):
        h = PoolHarness(self)
        h.endpoint.refuse = True
        h.start()
        f = self.failureResultOf(h.checkout(), Unavailable)
        self.assertIn("no connection (cannot connect", str(f.value))

    def test_dropped_connection_is_reopened_and_logged_in_again(self):
        h = PoolHarness(self, url="sip2://h:1?login=gw&password=secret&pool=1", behaviour=Behaviour(drop_on={"09"}))
        h.start()
        d = h.pool.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        h.flush()
        self.failureResultOf(d, ConnectionLost)
        self.assertEqual(h.pool.ready_connections, 0)
        h.advance(1)
        self.assertEqual(h.pool.ready_connections, 1)
        self.assertEqual(h.fake.codes(), ["93", "09", "93"])
        d = h.checkout()
        h.flush()
        self.successResultOf(d)

    def test_refused_login_is_retried_with_backoff_and_logged_once_without_the_password(self):
        h = PoolHarness(self, url="sip2://h:1?login=gw&password=wrong&pool=2")
        log = LogCapture(self)
        h.start()
        self.assertEqual(h.pool.ready_connections, 0)
        f = self.failureResultOf(h.checkout(), Unavailable)
        self.assertIn("login refused", str(f.value))
        h.advance(20)
        warnings = [line for line in log.lines(LogLevel.warn) if "login refused" in line]
        self.assertEqual(len(warnings), 1)
        self.assertIn("as 'gw'", warnings[0])
        self.assertNotIn("wrong", log.text().replace("wrong_", ""))
        self.assertGreater(h.fake.codes().count("93"), 4)
        self.assertTrue(all(ok is False for ok, _ in h.outcomes))

    def test_a_close_on_the_login_is_a_refused_login(self):
        h = PoolHarness(self, url="sip2://h:1?login=gw&password=secret&pool=1",
                        behaviour=Behaviour(close_on_login=True))
        h.start()
        self.assertEqual(h.pool.ready_connections, 0)
        self.assertEqual(h.outcomes, [(False, "the server closed the connection on our login")])
        f = self.failureResultOf(h.checkout(), Unavailable)
        self.assertIn("11 not sent: no connection (the server closed the connection on our login)", str(f.value))

    def test_stop_fails_queued_requests_and_closes(self):
        h = PoolHarness(self, url="sip2://h:1?login=gw&password=secret&pool=1", behaviour=Behaviour(delay=1.0))
        h.start()
        h.advance(1)
        first, queued = h.checkout("it1"), h.checkout("it2")
        h.flush()
        h.pool.stop()
        h.flush()
        self.failureResultOf(queued, Unavailable)
        self.failureResultOf(first, ConnectionLost)
        self.failureResultOf(h.checkout(), Unavailable)

    def test_a_request_cut_short_by_stop_is_not_held_against_the_server(self):
        # a device that hangs up closes its own connection (pass-through): the server did nothing wrong
        h = PoolHarness(self, url="sip2://h:1?login=gw&password=secret&pool=1", behaviour=Behaviour(delay=1.0))
        h.start()
        h.advance(1)
        in_flight = h.checkout("it1")
        h.flush()
        h.pool.stop()
        h.flush()
        self.failureResultOf(in_flight, ConnectionLost)
        self.assertEqual(h.outcomes, [])  # no failure held against the server


class ProbeTests(SynchronousTestCase):
    def test_probe_opens_a_connection_at_once_and_sends_a_99(self):
        h = PoolHarness(self, url="sip2://h:1?login=gw&password=secret&pool=1")
        h.endpoint.refuse = True
        h.start()
        self.assertFalse(self.successResultOf(h.pool.probe()))
        h.endpoint.refuse = False
        d = h.pool.probe()  # well before the backoff's next attempt
        h.flush()
        self.assertTrue(self.successResultOf(d))
        self.assertEqual(h.fake.codes(), ["93", "99"])

    def test_lazy_pool_refused_login_is_final(self):
        h = PoolHarness(self, url="sip2://h:1", login=({"uid_algorithm": "0", "pwd_algorithm": "0"},
                                                        {"CN": "sorter1", "CO": "bad"}), lazy=True)
        d = h.pool.connect_now()
        h.flush()
        self.failureResultOf(d, LoginRefused)
        attempts = h.endpoint.attempts
        self.failureResultOf(h.checkout(), LoginRefused)
        self.assertEqual(h.endpoint.attempts, attempts)
