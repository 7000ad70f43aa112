"""Usage figures: counted in memory per day, institution, listener, account, terminal,
code and outcome, written in batches to the database, kept when a write fails, bounded."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs import model as m
from sipgateway.acs.sqlite import SQLiteACS
from sipgateway.settings import ListenerSettings
from sipgateway.usagefigures import MAX_TERMINAL, UsageFigures, rows
from tests.acs.conftest import FAST
from tests.logcapture import capture

captured_events = contextmanager(capture)

MONDAY = datetime(2026, 3, 2, 23, 59, 59).timestamp()
TERMINAL = m.Terminal(account="sc1", institution="MAIN", location="desk-1")


def session(clock: Clock, terminal: m.Terminal | None = TERMINAL, listener: str = "sip") -> SimpleNamespace:
    """What the observer reads of a session: ``last_at`` (set just before observers are told),
    its terminal (None before login) and its listener's name."""
    return SimpleNamespace(last_at=clock.seconds(), terminal=terminal, settings=ListenerSettings(name=listener))


class Store:
    """A store whose writes the test answers."""

    def __init__(self) -> None:
        self.writes: list[tuple[tuple, str]] = []
        self.pending: list[Deferred] = []

    def __call__(self, figures: tuple, keep_from: str) -> Deferred:
        self.writes.append((figures, keep_from))
        d: Deferred = Deferred()
        self.pending.append(d)
        return d


class CountingTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(MONDAY)
        self.store = Store()
        self.usage = UsageFigures(self.clock, self.store, interval=10, max_figures=4, keep_days=30)

    def served(self, code: str, outcome: str = "ok", **kw) -> None:
        self.usage.served(session(self.clock, **kw), code, outcome, 0.001)

    def test_requests_are_counted_per_figure_and_written_every_interval(self) -> None:
        self.usage.startService()
        self.served("11")
        self.served("11")
        self.served("11", "refused")
        self.served("93", terminal=None, listener="tls")
        self.clock.advance(1)  # 00:00:00 Tuesday: a new day
        self.served("09")
        self.assertEqual(self.store.writes, [])
        self.clock.advance(9)
        [(figures, keep_from)] = self.store.writes
        self.assertEqual(sorted(figures), [
            ("2026-03-02", "", "tls", "", "", "93", "ok", 1),
            ("2026-03-02", "MAIN", "sip", "sc1", "desk-1", "11", "ok", 2),
            ("2026-03-02", "MAIN", "sip", "sc1", "desk-1", "11", "refused", 1),
            ("2026-03-03", "MAIN", "sip", "sc1", "desk-1", "09", "ok", 1),
        ])
        self.assertEqual(keep_from, "2026-02-01")
        self.assertEqual(self.usage.counts, {})

    def test_an_unknown_code_is_counted_as_other(self) -> None:
        self.served("x\ufffd", "bad", terminal=None)
        self.usage.flush()
        [(figures, _)] = self.store.writes
        self.assertEqual(figures, (("2026-03-02", "", "sip", "", "", "??", "bad", 1),))

    def test_a_failed_write_keeps_its_counts_for_the_next(self) -> None:
        self.served("11")
        self.usage.flush()
        self.served("11")
        with captured_events() as events:
            self.store.pending[0].errback(RuntimeError("database is locked"))
        self.assertEqual([e["log_format"] for e in events.events if "usage" in e["log_format"]],
                         ["usage figures: cannot write them to the database ({why}); kept to try again"])
        self.usage.flush()
        self.assertEqual(self.store.writes[1][0], (("2026-03-02", "MAIN", "sip", "sc1", "desk-1", "11", "ok", 2),))

    def test_a_full_table_is_written_at_once_and_lost_requests_are_logged(self) -> None:
        for code in ("11", "09", "17", "23"):
            self.served(code)
        self.assertEqual(self.store.writes, [])
        self.served("63")  # a fifth figure: the four are written, the fifth is kept
        self.assertEqual(len(self.store.writes[0][0]), 4)
        self.assertEqual(list(self.usage.counts.values()), [1])
        for code in ("11", "09", "17", "23"):  # full again while the write is under way
            self.served(code)
        self.assertEqual(self.usage.lost, 1)
        self.assertEqual(len(self.usage.counts), 4)
        self.store.pending[0].callback(4)
        with captured_events() as events:
            self.usage.flush()
        self.assertIn("usage figures: {n} requests were not counted: more than {max} different figures within "
                      "{s:.0f} s", [e["log_format"] for e in events.events])
        self.assertEqual(self.usage.lost, 0)

    def test_stopping_writes_what_is_left_after_the_write_under_way(self) -> None:
        self.usage.startService()
        self.served("11")
        self.usage.flush()
        self.served("09")
        stopped = self.usage.stopService()
        self.assertEqual(len(self.store.writes), 1)
        self.store.pending[0].callback(1)
        self.assertEqual(self.store.writes[1][0], (("2026-03-02", "MAIN", "sip", "sc1", "desk-1", "09", "ok", 1),))
        self.assertFalse(stopped.called)
        self.store.pending[1].callback(1)
        self.assertTrue(stopped.called)

    def test_long_terminal_locations_are_cut_and_added_up(self) -> None:
        long = "x" * (MAX_TERMINAL + 5)
        counts = {("d", "i", "l", "a", long, "11", "ok"): 1, ("d", "i", "l", "a", long + "y", "11", "ok"): 2}
        self.assertEqual(rows(counts), (("d", "i", "l", "a", "x" * MAX_TERMINAL, "11", "ok", 3),))


class DatabaseTests(SynchronousTestCase):
    def setUp(self) -> None:
        folder = tempfile.TemporaryDirectory()
        self.addCleanup(folder.cleanup)
        path = Path(folder.name) / "gw.sqlite3"
        self.acs = SQLiteACS.synchronous(str(path), hash_iterations=FAST)
        self.addCleanup(self.acs.close)

    def table(self) -> list[tuple]:
        return [tuple(r) for r in self.acs.runner.conn.execute("SELECT * FROM usage_figures ORDER BY day, code")]

    def test_counts_are_added_to_the_figures_and_old_days_dropped(self) -> None:
        clock = Clock()
        clock.advance(MONDAY)
        usage = UsageFigures(clock, self.acs.record_usage, keep_days=1)
        self.acs.runner.conn.execute("INSERT INTO usage_figures VALUES ('2026-02-28', 'MAIN', 'sip', 'sc1', "
                                     "'desk-1', '11', 'ok', 7)")
        for _ in range(3):
            usage.served(session(clock), "11", "ok", 0.0)
            written = usage.flush()
            self.assertTrue(written.called)
        self.assertEqual(self.table(), [("2026-03-02", "MAIN", "sip", "sc1", "desk-1", "11", "ok", 3)])

    def test_a_write_that_fails_is_not_applied(self) -> None:
        clock = Clock()
        usage = UsageFigures(clock, lambda figures, keep: fail(RuntimeError("down")))
        usage.served(session(clock), "11", "ok", 0.0)
        usage.flush()
        self.assertEqual(sum(usage.counts.values()), 1)
        usage.store = self.acs.record_usage
        usage.flush()
        self.assertEqual(len(self.table()), 1)
        self.assertEqual(usage.counts, {})
