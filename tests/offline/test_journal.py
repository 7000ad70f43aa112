"""The offline journal's state machine: pending -> sent -> done | conflict, sent -> pending,
nothing else; limits; durability across a reopen; remembered device logins."""

from __future__ import annotations

import sqlite3

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.offline import journal as jm
from sipgateway.acs.offline.journal import Entry, Journal, JournalError, Refused
from tests.offline.helpers import T0, database, journal


def accept(j: Journal, clock: Clock, kind: str = jm.CHECKOUT, item: str = "it1", patron: str = "p1",
           most: int = 10) -> Entry | Refused:
    return j.accept(kind, now=clock.seconds(), account="kiosk", institution="MAIN", location="DESK",
                    patron_id=patron if kind == jm.CHECKOUT else "", item_id=item,
                    due_at=clock.seconds() + 86400 if kind == jm.CHECKOUT else None, max_checkouts=most)


class StateMachineTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.path = database(self)
        self.j = journal(self, self.path)

    def test_an_accepted_entry_is_committed_pending_in_acceptance_order(self):
        first = accept(self.j, self.clock, item="it1")
        self.clock.advance(5)
        second = accept(self.j, self.clock, jm.CHECKIN, item="it2")
        other = sqlite3.connect(self.path)  # another connection sees it: it was committed
        self.addCleanup(other.close)
        rows = other.execute("SELECT id, kind, state, item_id, accepted_at FROM offline_journal ORDER BY id").fetchall()
        self.assertEqual(rows, [(first.id, "checkout", "pending", "it1", T0), (second.id, "checkin", "pending", "it2",
                                                                               T0 + 5)])
        self.assertEqual(self.j.next_open(), first)
        self.assertEqual(self.j.open_items(), {"it1": 1, "it2": 1})

    def test_pending_sent_done_with_the_reply_and_counts(self):
        e = accept(self.j, self.clock)
        self.clock.advance(1)
        self.j.mark_sent(e.id, self.clock.seconds())
        self.assertEqual((self.j.next_open().state, self.j.next_open().attempts), ("sent", 1))
        self.clock.advance(1)
        self.j.finish(e.id, jm.DONE, self.clock.seconds(), "121NNY20240506    103000AOMAIN|")
        [done] = self.j.entries()
        self.assertEqual((done.state, done.reply, done.changed_at), ("done", "121NNY20240506    103000AOMAIN|", T0 + 2))
        self.assertIsNone(self.j.next_open())
        self.assertEqual(self.j.open_items(), {})
        self.assertEqual(self.j.counts(), {"pending": 0, "sent": 0, "done": 1, "conflict": 0})

    def test_sent_back_to_pending_then_conflict(self):
        e = accept(self.j, self.clock)
        self.j.mark_sent(e.id, T0)
        self.j.mark_pending(e.id, T0, "not sent: no connection")
        self.assertEqual((self.j.next_open().state, self.j.next_open().note), ("pending", "not sent: no connection"))
        self.j.mark_sent(e.id, T0)
        self.j.finish(e.id, jm.CONFLICT, T0, "120NNN...", "")
        self.assertEqual([x.state for x in self.j.entries()], ["conflict"])
        self.assertEqual(self.j.entries()[0].attempts, 2)

    def test_every_other_transition_is_refused_and_changes_nothing(self):
        e = accept(self.j, self.clock)
        with self.assertRaisesRegex(JournalError, "cannot go from sent to done, it is pending"):
            self.j.finish(e.id, jm.DONE, T0, "")
        with self.assertRaisesRegex(JournalError, "cannot go from sent to pending, it is pending"):
            self.j.mark_pending(e.id, T0, "")
        self.j.mark_sent(e.id, T0)
        with self.assertRaisesRegex(JournalError, "cannot go from pending to sent, it is sent"):
            self.j.mark_sent(e.id, T0)  # never sent twice without being resolved first
        self.j.finish(e.id, jm.DONE, T0, "")
        for move in (lambda: self.j.mark_sent(e.id, T0), lambda: self.j.mark_pending(e.id, T0, ""),
                     lambda: self.j.finish(e.id, jm.CONFLICT, T0, "")):
            self.assertRaises(JournalError, move)
        with self.assertRaisesRegex(JournalError, "done or conflict, not 'pending'"):
            self.j.finish(e.id, jm.PENDING, T0, "")
        with self.assertRaisesRegex(JournalError, "not there"):
            self.j.mark_sent(999, T0)
        self.assertEqual([x.state for x in self.j.entries()], ["done"])

    def test_a_sent_entry_is_still_sent_after_a_reopen(self):
        e = accept(self.j, self.clock)
        self.j.mark_sent(e.id, T0)
        self.j.close()
        again = journal(self, self.path)
        self.assertEqual(again.next_open().state, "sent")

    def test_offline_checkouts_per_patron_are_limited_checkins_are_not(self):
        for item in ("it1", "it2"):
            self.assertIsInstance(accept(self.j, self.clock, item=item, most=2), Entry)
        refused = accept(self.j, self.clock, item="it3", most=2)
        self.assertEqual(refused, Refused("At most 2 checkouts while the library system is offline"))
        self.assertIsInstance(accept(self.j, self.clock, item="it3", patron="p2", most=2), Entry)
        self.assertIsInstance(accept(self.j, self.clock, jm.CHECKIN, item="it1", most=2), Entry)
        self.assertEqual(len(self.j.entries()), 4)

    def test_the_journal_is_bounded(self):
        self.patch(jm, "MAX_OPEN", 2)
        accept(self.j, self.clock, jm.CHECKIN, item="it1")
        accept(self.j, self.clock, jm.CHECKIN, item="it2")
        self.assertEqual(accept(self.j, self.clock, jm.CHECKIN, item="it3"),
                         Refused("The offline store is full; please ask staff"))

    def test_done_entries_are_pruned_after_a_while_conflicts_are_kept(self):
        a, b = accept(self.j, self.clock, item="it1"), accept(self.j, self.clock, item="it2")
        for e, state in ((a, jm.DONE), (b, jm.CONFLICT)):
            self.j.mark_sent(e.id, T0)
            self.j.finish(e.id, state, T0, "")
        self.assertEqual(self.j.prune(T0 + jm.DONE_KEPT_SECONDS - 1), 0)
        self.assertEqual(self.j.prune(T0 + jm.DONE_KEPT_SECONDS + 1), 1)
        self.assertEqual([x.state for x in self.j.entries()], ["conflict"])

    def test_take_pending_marks_only_pending_entries_done(self):
        a, b = accept(self.j, self.clock, item="it1"), accept(self.j, self.clock, item="it2")
        self.j.mark_sent(a.id, T0)
        taken = self.j.take_pending(T0, "exported as a koc file")
        self.assertEqual([e.id for e in taken], [b.id])
        self.assertEqual([(e.state, e.note) for e in self.j.entries()],
                         [("sent", ""), ("done", "exported as a koc file")])

    def test_a_database_without_the_tables_is_refused_when_not_migrating(self):
        import os
        import tempfile
        fd, path = tempfile.mkstemp(suffix=".sqlite3")
        os.close(fd)
        self.addCleanup(os.unlink, path)
        with self.assertRaisesRegex(JournalError, "has no offline journal"):
            Journal.open(path, migrate=False)


class LoginTests(SynchronousTestCase):
    def test_remembered_credentials_are_hashed_and_only_the_last_accepted_match(self):
        path = database(self)
        j = journal(self, path)
        j.remember_login("sorter1", "pw1", T0)
        self.assertTrue(j.check_login("sorter1", "pw1"))
        self.assertFalse(j.check_login("sorter1", "pw2"))
        self.assertFalse(j.check_login("other", "pw1"))
        stored = j.conn.execute("SELECT secret FROM offline_logins").fetchone()[0]
        self.assertTrue(stored.startswith("pbkdf2_sha256$") and "pw1" not in stored)
        j.remember_login("sorter1", "pw2", T0 + 1)
        self.assertFalse(j.check_login("sorter1", "pw1"))
        self.assertTrue(j.check_login("sorter1", "pw2"))

    def test_remembered_logins_are_bounded(self):
        self.patch(jm, "MAX_LOGINS", 2)
        j = journal(self)
        for i in range(3):
            j.remember_login(f"dev{i}", "pw", T0 + i)
        self.assertFalse(j.check_login("dev0", "pw"))
        self.assertTrue(j.check_login("dev2", "pw"))


class RepeatTests(SynchronousTestCase):
    def test_the_same_transaction_sent_again_is_recorded_once(self):
        clock = Clock()
        clock.advance(T0)
        j = journal(self)
        first = accept(j, clock, item="it1", patron="p1")
        again = accept(j, clock, item="it1", patron="p1")
        self.assertEqual((again.id, again.repeated, first.repeated), (first.id, True, False))
        other = accept(j, clock, item="it1", patron="p2")   # another patron: a new transaction
        back = accept(j, clock, jm.CHECKIN, item="it1")
        twice = accept(j, clock, jm.CHECKIN, item="it1")
        self.assertEqual(twice.id, back.id)
        out = accept(j, clock, item="it1", patron="p1")     # out again after the checkin: new
        self.assertEqual([e.id for e in j.entries()], [first.id, other.id, back.id, out.id])
