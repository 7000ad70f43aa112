"""Replaying the journal to a (fake) library system: order, the SIP2 fields of a replay,
conflicts kept, and exactly once across a crash between sending and storing the answer."""

from __future__ import annotations

from datetime import datetime

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.offline import journal as jm
from sipgateway.acs.offline.replay import DEFAULT_RETRY, Replayer
from sipgateway.acs.offline.runner import AsyncJournal, run_inline
from sipgateway.sip2 import sip_date
from tests.offline.helpers import T0, FakeLibrary, database, journal
from tests.upstream.helpers import LogCapture

DUE = T0 + 14 * 86400


def stamp(seconds: float) -> str:
    return sip_date(datetime.fromtimestamp(seconds))


class ReplayTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.path = database(self)
        self.lib = FakeLibrary()
        self.healthy = True
        self.closed: list[int] = []
        self.logs = LogCapture(self)

    def journal(self) -> jm.Journal:
        return journal(self, self.path)

    def replayer(self) -> Replayer:
        r = Replayer(AsyncJournal(self.journal(), run=run_inline), self.lib.send, self.clock, lambda: self.healthy,
                     on_closed=lambda e: self.closed.append(e.id))
        self.addCleanup(r.stop)
        return r

    def accept(self, kind: str, item: str, patron: str = "p1", at: float | None = None) -> jm.Entry:
        j = self.journal()
        entry = j.accept(kind, now=at or self.clock.seconds(), account="kiosk", institution="MAIN", location="DESK",
                         patron_id=patron if kind == jm.CHECKOUT else "", item_id=item,
                         due_at=DUE if kind == jm.CHECKOUT else None, max_checkouts=10)
        j.close()
        return entry

    def run_out(self, r: Replayer) -> None:
        for _ in range(100):
            self.clock.advance(1)
        self.assertFalse(r._busy)

    def states(self) -> list[str]:
        return [e.state for e in self.journal().entries()]

    def test_entries_are_replayed_in_order_with_no_block_their_date_and_due_date(self):
        self.accept(jm.CHECKOUT, "it1", at=T0 - 60)
        self.accept(jm.CHECKIN, "it1", at=T0 - 30)
        self.accept(jm.CHECKOUT, "it2", at=T0 - 10)
        r = self.replayer()
        r.start()
        self.run_out(r)
        self.assertEqual(self.lib.applied, [
            f"checkout it1 p1 {stamp(T0 - 60)} {stamp(DUE)} Y",
            f"checkin it1 {stamp(T0 - 30)} Y",
            f"checkout it2 p1 {stamp(T0 - 10)} {stamp(DUE)} Y"])
        checkin = self.lib.requests[1]
        self.assertEqual((checkin.fixed["return_date"], checkin.get("AP"), checkin.get("AO")),
                         (stamp(T0 - 30), "DESK", "MAIN"))
        self.assertEqual(self.states(), ["done", "done", "done"])
        self.assertTrue(self.journal().entries()[0].reply.startswith("121NNY"))
        self.assertEqual(len(self.closed), 3)

    def test_one_at_a_time_with_a_pause_between_entries(self):
        for item in ("it1", "it2", "it3"):
            self.accept(jm.CHECKOUT, item)
        r = self.replayer()
        r.start()
        self.assertEqual(len(self.lib.requests), 1)
        self.clock.advance(r.pause)
        self.assertEqual(len(self.lib.requests), 2)

    def test_a_refusal_is_a_conflict_logged_and_kept_and_the_replay_goes_on(self):
        self.lib.blocked.add("p9")
        self.accept(jm.CHECKOUT, "it1", patron="p9")
        self.accept(jm.CHECKIN, "it3")  # not on loan: checked in elsewhere meanwhile
        self.accept(jm.CHECKOUT, "it2")
        r = self.replayer()
        r.start()
        self.run_out(r)
        self.assertEqual(self.states(), ["conflict", "conflict", "done"])
        first = self.journal().entries()[0]
        self.assertIn("AFPatron blocked", first.reply)
        self.assertIn("conflict", self.logs.text())
        self.assertIn("Patron blocked", self.logs.text())

    def test_nothing_is_sent_while_unhealthy_and_a_kick_resumes(self):
        self.accept(jm.CHECKOUT, "it1")
        self.healthy = False
        r = self.replayer()
        r.start()
        self.clock.advance(DEFAULT_RETRY * 3)
        self.assertEqual(self.lib.requests, [])
        self.healthy = True
        r.kick()
        self.assertEqual(self.states(), ["done"])

    def test_not_sent_goes_back_to_pending_and_is_sent_later(self):
        self.accept(jm.CHECKOUT, "it1")
        self.lib.down = True
        r = self.replayer()
        r.start()
        [e] = self.journal().entries()
        self.assertEqual((e.state, e.attempts), ("pending", 1))
        self.assertIn("not sent", e.note)
        self.lib.down = False
        self.clock.advance(DEFAULT_RETRY)
        self.assertEqual(self.states(), ["done"])
        self.assertEqual(len(self.lib.applied), 1)

    def test_applied_but_unanswered_is_resolved_by_asking_never_sent_twice(self):
        self.accept(jm.CHECKOUT, "it1")
        self.accept(jm.CHECKIN, "it2")
        self.lib.loans["it2"] = "p5"
        self.lib.crash_after = True   # the checkout is applied, its answer lost
        r = self.replayer()
        r.start()
        self.assertEqual(self.states(), ["sent", "pending"])
        self.run_out(r)
        self.assertEqual([m.code for m in self.lib.requests], ["11", "63", "09"])
        self.assertEqual([a.split()[:2] for a in self.lib.applied], [["checkout", "it1"], ["checkin", "it2"]])
        first = self.journal().entries()[0]
        self.assertEqual((first.state, first.note), ("done", "found on loan to the patron after an unknown outcome"))

    def test_lost_before_it_arrived_is_resolved_by_asking_then_sent_again(self):
        self.accept(jm.CHECKIN, "it1")
        self.lib.loans["it1"] = "p1"
        self.lib.crash_before = True
        r = self.replayer()
        r.start()
        self.run_out(r)
        self.assertEqual([m.code for m in self.lib.requests], ["09", "17", "09"])
        self.assertEqual(len(self.lib.applied), 1)
        self.assertEqual(self.states(), ["done"])

    def test_a_gateway_killed_between_send_and_reply_applies_each_entry_once_after_restart(self):
        for applied_first in (True, False):
            for crash_on in (1, 2, 3):  # killed while entry 1, 2 or 3 waits for its answer
                with self.subTest(crash_on=crash_on, applied_first=applied_first):
                    self.setUp()
                    self.accept(jm.CHECKOUT, "it1")
                    self.accept(jm.CHECKOUT, "it2")
                    self.accept(jm.CHECKIN, "it1")
                    self.lib.hang_on, self.lib.hang_applies = crash_on, applied_first
                    r = self.replayer()
                    r.start()
                    for _ in range(10):
                        self.clock.advance(1)
                    self.assertTrue(r._busy)  # waiting for an answer that never comes
                    self.assertEqual(self.states()[crash_on - 1], "sent")
                    r.stop()  # the process is gone: nothing of it survives but the database
                    self.lib.hang_on = None
                    again = self.replayer()
                    again.start()
                    self.run_out(again)
                    self.assertEqual([a.split()[:2] for a in self.lib.applied],
                                     [["checkout", "it1"], ["checkout", "it2"], ["checkin", "it1"]])
                    self.assertEqual(self.states(), ["done", "done", "done"])

    def test_checkout_whose_outcome_cannot_be_told_is_a_conflict_for_staff(self):
        self.accept(jm.CHECKOUT, "it1")
        self.lib.hang_on, self.lib.hang_applies = 1, False
        r = self.replayer()
        r.start()
        r.stop()
        self.lib.hang_on = None
        # the library system applied nothing, yet says the patron has 3 loans and lists none
        real = self.lib.answer

        def cut_short(msg):
            reply = real(msg)
            if msg.code == "63":
                reply.fixed["charged_items_count"] = "0003"
            return reply

        self.lib.answer = cut_short
        again = self.replayer()
        again.start()
        self.run_out(again)
        [e] = self.journal().entries()
        self.assertEqual(e.state, "conflict")
        self.assertIn("check by hand", e.note)
        self.assertEqual(self.lib.applied, [])
