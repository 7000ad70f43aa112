"""``OfflineACS`` around a real ``UpstreamACS`` talking to a fake library system over iosim:
going offline, what devices are told, the journal written before the answer, saved answers,
the item gate, replay when the library system is back, and pass-through logins offline."""

from __future__ import annotations

from datetime import datetime

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.interface import IACS
from sipgateway.acs.offline import answers as a
from sipgateway.acs.offline.acs import OfflineACS
from sipgateway.acs.offline.runner import AsyncJournal, run_inline
from sipgateway.acs.upstream.backend import UpstreamACS
from sipgateway.acs.upstream.url import parse_url
from sipgateway.config.offline import OfflineConfig, OfflinePolicy
from sipgateway.sip2 import sip_date
from tests.offline.helpers import T0, database, journal
from tests.upstream.fakes import Behaviour, FakeUpstream, MemoryEndpoint
from tests.upstream.helpers import LogCapture

KIOSK = m.Terminal(account="kiosk", institution="MAIN", location="DESK", address="10.0.0.5")
STAFF = m.Terminal(account="staff", institution="MAIN", location="DESK")
ACCEPT = OfflinePolicy(accept=True, loan_days=7, max_checkouts=2, items=("it*",))
CONFIG = OfflineConfig(default=OfflinePolicy(), accounts=(("kiosk", ACCEPT),), replay_login="gw",
                       replay_password="secret")


class Base(SynchronousTestCase):
    query = "login=gw&password=secret&timeout=5"

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.logs = LogCapture(self)
        self.path = database(self)
        self.server = FakeUpstream(Behaviour(), self.clock)
        self.endpoint = MemoryEndpoint(self.server)
        upstream = UpstreamACS([parse_url(f"sip2://ils:6001?{self.query}")], self.clock,
                               endpoint_for=lambda reactor, config: self.endpoint, breaker_threshold=1,
                               probe_interval=5.0)
        self.journal = journal(self, self.path)
        self.acs = OfflineACS(upstream, AsyncJournal(self.journal, run=run_inline), CONFIG, self.clock,
                              open_items=self.journal.open_items())
        self.acs.startService()
        self.addCleanup(self.acs.stopService)
        self.endpoint.flush()

    def flush(self, d=None):
        for _ in range(3):
            self.endpoint.flush()
        return d

    def go_down(self) -> None:
        self.endpoint.refuse = True
        for pump in self.endpoint.pumps:
            pump.serverIO.loseConnection()
        self.flush()
        for _ in range(5):
            if not self.acs.online:
                break
            if self.acs.upstream.pooled:
                d = self.acs.upstream.item_information(KIOSK, rq.ItemInformationRequest("x"))
            else:
                d = self.acs.upstream.open_session("x").login(rq.LoginRequest("sorter1", "pw1"), None)
            d.addErrback(lambda f: None)
            self.clock.advance(1)
            self.flush()
        self.assertFalse(self.acs.online)
        self.down_at = self.clock.seconds()

    def come_back(self) -> None:
        self.endpoint.refuse = False
        for _ in range(30):
            self.clock.advance(1)
            self.flush()
        self.assertTrue(self.acs.online)

    def states(self) -> list[tuple[str, str, str]]:
        return [(e.kind, e.item_id, e.state) for e in self.journal.entries()]


class OfflineTests(Base):
    def test_it_is_an_iacs_and_forwards_while_in_service(self):
        verifyObject(IACS, self.acs)
        r = self.successResultOf(self.flush(self.acs.checkout(KIOSK, rq.CheckoutRequest("p1", "it1"))))
        self.assertTrue(r.ok)
        self.assertEqual(self.server.received[-1].code, "11")
        self.assertEqual(self.journal.entries(), [])

    def test_98_offline_says_online_n_and_the_accounts_policy(self):
        self.go_down()
        kiosk = self.successResultOf(self.acs.status(KIOSK, rq.StatusRequest()))
        self.assertEqual((kiosk.online, kiosk.checkin_ok, kiosk.checkout_ok, kiosk.offline_ok, kiosk.renewal_ok),
                         (False, True, True, True, False))
        self.assertEqual(kiosk.messages.screen, (a.OFFLINE_ACCEPTING,))
        staff = self.successResultOf(self.acs.status(STAFF, rq.StatusRequest()))
        self.assertEqual((staff.online, staff.checkin_ok, staff.checkout_ok, staff.offline_ok),
                         (False, False, False, False))

    def test_a_checkout_offline_is_journaled_before_it_is_answered_ok_with_the_offline_due_date(self):
        self.go_down()
        r = self.successResultOf(self.acs.checkout(KIOSK, rq.CheckoutRequest("p1", "it1", "1234")))
        due = datetime(2024, 5, 13, 23, 59)  # 7 days, end of the day
        self.assertEqual((r.ok, r.patron_id, r.item_id, r.due_date, r.desensitize), (True, "p1", "it1", due, True))
        self.assertEqual(r.messages.screen, (a.ACCEPTED_CHECKOUT,))
        [e] = self.journal.entries()
        self.assertEqual((e.kind, e.state, e.patron_id, e.item_id, e.account, e.accepted_at, e.due_at),
                         ("checkout", "pending", "p1", "it1", "kiosk", self.down_at, due.timestamp()))
        r = self.successResultOf(self.acs.checkin(KIOSK, rq.CheckinRequest("it2")))
        self.assertEqual((r.ok, r.resensitize, r.messages.screen), (True, True, (a.ACCEPTED_CHECKIN,)))
        self.assertIn("accepted offline (entry", self.logs.text())
        self.assertNotIn("1234", self.logs.text())

    def test_what_the_policy_does_not_allow_is_refused_clearly(self):
        self.go_down()
        cases = [
            (STAFF, "checkout", rq.CheckoutRequest("p1", "it1"), a.NOT_OFFLINE),
            (KIOSK, "checkout", rq.CheckoutRequest("p1", "dvd1"), a.NOT_THIS_ITEM),
            (KIOSK, "renew", rq.CheckoutRequest("p1", "it1"), a.NO_RENEWAL),
            (KIOSK, "checkin", rq.CheckinRequest("it1", cancel=True), a.NOT_OFFLINE),
            (KIOSK, "hold", rq.HoldRequest(mode=rq.HoldMode.ADD, patron_id="p1", item_id="it1"), a.NOT_OFFLINE),
        ]
        for terminal, method, request, screen in cases:
            r = self.successResultOf(getattr(self.acs, method)(terminal, request))
            self.assertEqual((r.ok, r.messages.screen), (False, (screen,)), method)
        self.assertEqual(self.journal.entries(), [])

    def test_the_per_patron_limit_is_refused_with_its_reason(self):
        self.go_down()
        for item in ("it1", "it2"):
            self.assertTrue(self.successResultOf(self.acs.checkout(KIOSK, rq.CheckoutRequest("p1", item))).ok)
        r = self.successResultOf(self.acs.checkout(KIOSK, rq.CheckoutRequest("p1", "it3")))
        self.assertEqual((r.ok, r.messages.screen),
                         (False, ("At most 2 checkouts while the library system is offline",)))

    def test_reads_answer_from_saved_answers_marked_in_af_or_say_nothing_is_known(self):
        online = self.successResultOf(self.flush(self.acs.item_information(KIOSK, rq.ItemInformationRequest("it1"))))
        self.go_down()
        saved = self.successResultOf(self.acs.item_information(KIOSK, rq.ItemInformationRequest("it1")))
        self.assertEqual((saved.item_id, saved.title), ("it1", online.title))
        self.assertEqual(saved.messages.screen[-1],
                         a.SAVED_NOTE.format(at=datetime.fromtimestamp(T0).strftime("%Y-%m-%d %H:%M")))
        unknown = self.successResultOf(self.acs.item_information(KIOSK, rq.ItemInformationRequest("it2")))
        self.assertEqual((unknown.item_id, unknown.messages.screen), ("it2", (a.NO_SAVED_ANSWER,)))
        patron = self.successResultOf(self.acs.patron_status(KIOSK, rq.PatronStatusRequest("p1")))
        self.assertEqual(patron.messages.screen, (a.NO_SAVED_ANSWER,))

    def test_back_in_service_the_journal_is_replayed_with_no_block_and_original_dates(self):
        self.go_down()
        self.successResultOf(self.acs.checkout(KIOSK, rq.CheckoutRequest("p1", "it1")))
        self.clock.advance(60)
        self.successResultOf(self.acs.checkout(KIOSK, rq.CheckoutRequest("p1", "it2")))
        self.assertEqual(dict(self.acs.waiting), {"it1": 1, "it2": 1})
        before = len(self.server.received)
        self.come_back()
        sent = [msg for msg in self.server.received[before:] if msg.code == "11"]
        self.assertEqual([(x.get("AB"), x.fixed["no_block"], x.fixed["transaction_date"]) for x in sent],
                         [("it1", "Y", sip_date(datetime.fromtimestamp(self.down_at))),
                          ("it2", "Y", sip_date(datetime.fromtimestamp(self.down_at + 60)))])
        self.assertEqual(sent[0].fixed["nb_due_date"], sip_date(datetime(2024, 5, 13, 23, 59)))
        self.assertEqual(self.states(), [("checkout", "it1", "done"), ("checkout", "it2", "done")])
        self.assertEqual(dict(self.acs.waiting), {})
        self.assertEqual(sorted(self.server.library.loans), ["it1", "it2"])

    def test_online_writes_for_an_item_with_entries_waiting_are_refused(self):
        self.go_down()
        self.successResultOf(self.acs.checkin(KIOSK, rq.CheckinRequest("it1")))
        self.endpoint.refuse = False
        self.acs.replayer.stop()  # hold the replay back: the entry stays pending
        self.come_back()
        r = self.successResultOf(self.acs.checkout(KIOSK, rq.CheckoutRequest("p1", "it1")))
        self.assertEqual((r.ok, r.messages.screen), (False, (a.WAITING,)))
        other = self.successResultOf(self.flush(self.acs.checkout(KIOSK, rq.CheckoutRequest("p1", "it2"))))
        self.assertTrue(other.ok)

    def test_entries_left_by_an_earlier_run_gate_their_items_from_the_start(self):
        self.journal.accept("checkin", now=T0, account="kiosk", institution="MAIN", location="", patron_id="",
                            item_id="it3", due_at=None, max_checkouts=1)
        acs = OfflineACS(self.acs.upstream, AsyncJournal(self.journal, run=run_inline), CONFIG, self.clock,
                         open_items=self.journal.open_items())
        self.assertEqual(dict(acs.waiting), {"it3": 1})


class PassThroughTests(Base):
    query = "timeout=5"

    def test_a_device_accepted_upstream_logs_in_again_offline_with_the_same_credentials_only(self):
        first = self.acs.open_session("10.0.0.5")
        self.assertTrue(self.successResultOf(self.flush(first.login(rq.LoginRequest("sorter1", "pw1", "S1"), None))))
        stored = self.journal.conn.execute("SELECT login, secret FROM offline_logins").fetchall()
        self.assertEqual([row[0] for row in stored], ["sorter1"])
        self.assertNotIn("pw1", stored[0][1])
        self.go_down()
        again = self.acs.open_session("10.0.0.5")
        self.assertTrue(self.successResultOf(again.login(rq.LoginRequest("sorter1", "pw1", "S1"), None)))
        self.assertFalse(self.successResultOf(again.login(rq.LoginRequest("sorter1", "wrong", "S1"), None)))
        self.assertFalse(self.successResultOf(again.login(rq.LoginRequest("gw", "secret", "S1"), None)))
        self.assertIn("logged in offline", self.logs.text())
        self.assertNotIn("pw1", self.logs.text())

    def test_a_device_logged_in_offline_is_logged_in_upstream_when_it_is_back(self):
        first = self.acs.open_session("10.0.0.5")
        self.successResultOf(self.flush(first.login(rq.LoginRequest("sorter1", "pw1", "S1"), None)))
        self.go_down()
        device = self.acs.open_session("10.0.0.5")
        self.assertTrue(self.successResultOf(device.login(rq.LoginRequest("sorter1", "pw1", "S1"), None)))
        r = self.successResultOf(device.checkin(KIOSK, rq.CheckinRequest("it3")))
        self.assertEqual(r.messages.screen, (a.ACCEPTED_CHECKIN,))
        self.come_back()
        d = self.flush(device.item_information(KIOSK, rq.ItemInformationRequest("it1")))
        self.assertEqual(self.successResultOf(d).item_id, "it1")
        logins = [x.get("CN") for x in self.server.received if x.code == "93"]
        self.assertEqual(logins[-2:], ["gw", "sorter1"])  # the replay's own login, then the device's
        self.assertEqual(self.states(), [("checkin", "it3", "conflict")])  # it3 was not on loan


class WiringTests(SynchronousTestCase):
    def test_open_offline_wraps_an_upstream_with_the_journal_of_the_database(self):
        from twisted.internet.testing import MemoryReactorClock

        from sipgateway.acs.offline.wiring import open_offline
        reactor = MemoryReactorClock()
        path = database(self)
        j = journal(self, path)
        j.accept("checkin", now=T0, account="k", institution="MAIN", location="", patron_id="", item_id="it9",
                 due_at=None, max_checkouts=1)
        upstream = UpstreamACS([parse_url("sip2://ils:6001?login=gw&password=secret")], reactor)
        acs = open_offline(upstream, CONFIG, path, reactor)
        self.addCleanup(acs.journal.journal.close)
        self.assertIs(acs.upstream, upstream)
        self.assertEqual(dict(acs.waiting), {"it9": 1})
        self.assertIs(acs.open_session("peer"), acs)  # pooled mode: one shared backend

    def test_pass_through_mode_that_accepts_offline_needs_the_replay_login(self):
        from twisted.internet.testing import MemoryReactorClock

        from sipgateway.acs.offline.wiring import open_offline
        from sipgateway.config import ConfigError
        reactor = MemoryReactorClock()
        upstream = UpstreamACS([parse_url("sip2://ils:6001")], reactor)
        with self.assertRaisesRegex(ConfigError, r"\[upstream\] offline_replay_login: missing"):
            open_offline(upstream, OfflineConfig(default=ACCEPT), database(self), reactor)


class RepeatTests(Base):
    def test_a_checkout_sent_again_offline_is_answered_alike_and_replayed_once(self):
        self.go_down()
        one = self.successResultOf(self.acs.checkout(KIOSK, rq.CheckoutRequest("p1", "it1")))
        two = self.successResultOf(self.acs.checkout(KIOSK, rq.CheckoutRequest("p1", "it1")))
        self.assertEqual((two.ok, two.due_date), (True, one.due_date))
        self.assertEqual(dict(self.acs.waiting), {"it1": 1})
        before = len(self.server.received)
        self.come_back()
        self.assertEqual([x.code for x in self.server.received[before:]].count("11"), 1)
        self.assertEqual(dict(self.acs.waiting), {})
