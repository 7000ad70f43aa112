"""``UpstreamACS``: model requests forwarded to a fake library system and its replies read
back, in pooled and in pass-through mode; deadlines, cached reads, failover and 98 from
the upstream's health.  Driven by a Clock over iosim."""

from __future__ import annotations

from datetime import datetime

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.interface import IACS
from sipgateway.acs.upstream.backend import CACHED_NOTE, OutcomeNotKnown, UpstreamACS, UpstreamUnavailable
from sipgateway.acs.upstream.url import parse_url
from sipgateway.sip2 import checksum
from tests.upstream.fakes import Behaviour, FakeUpstream, MemoryEndpoint
from tests.upstream.helpers import LogCapture

T0 = datetime(2024, 5, 6, 10, 30).timestamp()
MAIN = m.Terminal(account="sc1", institution="MAIN", location="DESK")


class Upstreams:
    """Fake servers and the endpoints UpstreamACS connects to them through."""

    def __init__(self, clock: Clock, *behaviours: Behaviour) -> None:
        self.servers = [FakeUpstream(b, clock) for b in behaviours]
        self.endpoints = [MemoryEndpoint(s) for s in self.servers]

    def endpoint_for(self, reactor, config):
        return self.endpoints[int(config.port) - 6001]

    def flush(self) -> None:
        for e in self.endpoints:
            e.flush()


class PooledTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.logs = LogCapture(self)

    def backend(self, *behaviours: Behaviour, query: str = "login=gw&password=secret&timeout=5") -> UpstreamACS:
        self.up = Upstreams(self.clock, *(behaviours or (Behaviour(),)))
        urls = [parse_url(f"sip2://ils:{6001 + i}?{query}") for i in range(len(self.up.servers))]
        acs = UpstreamACS(urls, self.clock, endpoint_for=self.up.endpoint_for, probe_interval=5.0)
        acs.startService()
        self.addCleanup(acs.stopService)
        self.up.flush()
        return acs

    def pump(self, d):
        self.up.flush()
        return d

    def test_it_is_an_iacs_and_forwards_a_checkout_with_the_devices_identity(self):
        acs = self.backend()
        verifyObject(IACS, acs)
        r = self.successResultOf(self.pump(acs.checkout(MAIN, rq.CheckoutRequest("p1", "it1", "1234"))))
        self.assertTrue(r.ok)
        self.assertEqual((r.patron_id, r.item_id), ("p1", "it1"))
        sent = self.up.servers[0].received[-1]
        self.assertEqual((sent.code, sent.get("AO"), sent.get("AA"), sent.get("AB"), sent.get("AD")),
                         ("11", "MAIN", "p1", "it1", "1234"))
        self.assertEqual(self.up.servers[0].received[0].get("CN"), "gw")  # the pool logged in as login=

    def test_a_write_past_its_deadline_is_never_sent(self):
        acs = self.backend()
        sent_before = len(self.up.servers[0].received)
        late = MAIN.until(self.clock.seconds() - 1)
        self.failureResultOf(self.pump(acs.checkout(late, rq.CheckoutRequest("p1", "it1"))), m.ACSTimeout)
        self.assertEqual(len(self.up.servers[0].received), sent_before)

    def test_a_write_sent_but_unanswered_fails_and_its_late_answer_is_logged(self):
        acs = self.backend()
        self.up.servers[0].behaviour.delay = 3.0  # logged in already: now it answers slowly
        d = self.pump(acs.checkout(MAIN.until(self.clock.seconds() + 1), rq.CheckoutRequest("p1", "it1")))
        self.clock.advance(1.0)
        self.up.flush()
        self.failureResultOf(d, OutcomeNotKnown)
        self.clock.advance(2.0)
        self.up.flush()
        self.assertTrue(any("late answer to a 11 from sc1 after the device was told it failed" in line
                            for line in self.logs.lines()))

    def test_a_slow_item_lookup_is_answered_from_the_last_answer_marked_cached(self):
        acs = self.backend()
        first = self.successResultOf(self.pump(acs.item_information(MAIN, rq.ItemInformationRequest("it1"))))
        self.up.servers[0].behaviour.delay = 3.0
        d = self.pump(acs.item_information(MAIN.until(self.clock.seconds() + 1), rq.ItemInformationRequest("it1")))
        self.clock.advance(1.0)
        self.up.flush()
        cached = self.successResultOf(d)
        self.assertEqual(cached.item_id, first.item_id)
        self.assertEqual(cached.messages.screen[-1], CACHED_NOTE)

    def test_the_same_reply_reads_as_the_same_answer_and_a_changed_one_afresh(self):
        # the session's reply memo keys on the answer's identity: the same reply line must
        # give the same answer object (no parse, no read), a different line a new answer
        acs = self.backend(query="login=gw&password=secret&timeout=5&checksum=none")
        ask = rq.ItemInformationRequest("it2")
        first = self.successResultOf(self.pump(acs.item_information(MAIN, ask)))
        again = self.successResultOf(self.pump(acs.item_information(MAIN, ask)))
        self.assertIs(again, first)
        self.assertEqual(first.title, "Ulysses")
        self.up.servers[0].library.titles["it2"] = "Ulysses (2nd ed.)"
        changed = self.successResultOf(self.pump(acs.item_information(MAIN, ask)))
        self.assertEqual(changed.title, "Ulysses (2nd ed.)")
        self.assertEqual(len([r for r in self.up.servers[0].received if r.code == "17"]), 3)  # all were asked

    def test_reads_in_the_same_second_are_written_alike_with_their_own_sequence_numbers(self):
        acs = self.backend()
        ask = rq.ItemInformationRequest("it2")
        for n in range(3):
            self.successResultOf(self.pump(acs.item_information(MAIN, ask)))
            if n == 1:
                self.clock.advance(1.0)  # the third in the next second
        raw = [line for line in self.up.servers[0].raw if line.startswith(b"17")]
        self.assertEqual(len(raw), 3)
        when = [line[2:20] for line in raw]
        self.assertEqual(when[0], when[1])
        self.assertNotEqual(when[2], when[1])  # a new second: a new transaction date
        self.assertEqual([line[line.index(b"AY"):line.index(b"AY") + 3] for line in raw], [b"AY1", b"AY2", b"AY3"])
        for line in raw:  # each with its own correct checksum
            body = line.rstrip(b"\r")
            self.assertEqual(body[-4:].decode(), checksum(body[:-4]))

    def test_a_slow_lookup_of_something_never_seen_fails(self):
        acs = self.backend()
        self.up.servers[0].behaviour.delay = 3.0
        d = self.pump(acs.item_information(MAIN.until(self.clock.seconds() + 1), rq.ItemInformationRequest("it9")))
        self.clock.advance(1.0)
        self.up.flush()
        self.assertIsNotNone(self.failureResultOf(d))

    def test_98_reports_the_upstreams_health(self):
        acs = self.backend()
        status = self.successResultOf(self.pump(acs.status(MAIN, rq.StatusRequest())))
        self.assertTrue(status.online)
        for endpoint in self.up.endpoints:
            endpoint.refuse = True
        for pump in self.up.endpoints[0].pumps:
            pump.serverIO.loseConnection()
        self.up.flush()
        for _ in range(10):  # connections fail until the breaker opens
            self.clock.advance(60)
            self.up.flush()
            acs.checkout(MAIN, rq.CheckoutRequest("p1", "it1")).addErrback(lambda f: None)
            self.up.flush()
        status = self.successResultOf(acs.status(MAIN, rq.StatusRequest()))
        self.assertFalse(status.online)
        self.assertEqual(status.messages.screen, ("The library system is offline",))

    def test_failover_to_the_second_server_when_the_first_is_down(self):
        acs = self.backend(Behaviour(), Behaviour())
        self.up.endpoints[0].refuse = True
        for pump in self.up.endpoints[0].pumps:
            pump.serverIO.loseConnection()
        self.up.flush()
        r = self.successResultOf(self.pump(acs.item_information(MAIN, rq.ItemInformationRequest("it1"))))
        self.assertEqual(r.item_id, "it1")
        self.assertEqual(self.up.servers[1].received[-1].code, "17")

    def test_mixed_modes_are_refused(self):
        with self.assertRaises(ValueError):
            UpstreamACS([parse_url("sip2://a:1?login=x&password=y"), parse_url("sip2://b:2")], self.clock)


class PassThroughTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.up = Upstreams(self.clock, Behaviour())
        self.acs = UpstreamACS([parse_url("sip2://ils:6001?timeout=5")], self.clock, endpoint_for=self.up.endpoint_for)
        self.acs.startService()
        self.addCleanup(self.acs.stopService)

    def test_each_device_logs_in_upstream_with_its_own_93_and_uses_its_own_connection(self):
        one, two = self.acs.open_session("a"), self.acs.open_session("b")
        d1 = one.login(rq.LoginRequest("sorter1", "pw1", "S1"), None)
        d2 = two.login(rq.LoginRequest("gw", "wrong", "S2"), None)
        self.up.flush()
        self.assertTrue(self.successResultOf(d1))
        self.assertFalse(self.successResultOf(d2))
        self.up.servers[0].library.loans["it2"] = ("p1", datetime(2024, 5, 27))
        r = one.checkin(MAIN, rq.CheckinRequest("it2"))
        self.up.flush()
        self.assertTrue(self.successResultOf(r).ok)
        self.assertEqual(self.up.servers[0].library.loans, {})
        self.failureResultOf(two.checkin(MAIN, rq.CheckinRequest("it2")), UpstreamUnavailable)
        logins = [msg for msg in self.up.servers[0].received if msg.code == "93"]
        self.assertEqual([(x.get("CN"), x.get("CP")) for x in logins], [("sorter1", "S1"), ("gw", "S2")])
        self.assertEqual(len(self.up.servers[0].connections), 2)
        self.successResultOf(one.close())
        self.up.flush()
