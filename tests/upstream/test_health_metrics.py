"""What the admin listener learns of a forwarding backend: ``/readyz``'s reason while no
library system server is in service, and the upstream and offline journal figures of
``/metrics``, exact sample by sample, with breakers driven by a Clock."""

from __future__ import annotations

import os
import sqlite3
import tempfile

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.acs.offline.journal import CHECKIN, CHECKOUT, CONFLICT, DONE
from sipgateway.acs.offline.metrics import OfflineCollector
from sipgateway.acs.upstream.breaker import CircuitBreaker, FailoverGroup, Member
from sipgateway.acs.upstream.health import problem
from sipgateway.acs.upstream.metrics import UpstreamCollector
from sipgateway.config import load
from sipgateway.forwarding import ForwardingBackend
from tests.offline.helpers import T0, database, journal


def samples(*collectors: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape of ``collectors``, parsed back from the Prometheus text."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    text = generate_latest(registry).decode("utf-8")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class Probes:
    """Every probe fails until ``answer`` is set."""

    def __init__(self) -> None:
        self.answer = False

    def __call__(self) -> Deferred:
        return succeed(self.answer)


def group(clock: Clock, probes: Probes, *names: str) -> FailoverGroup:
    return FailoverGroup([Member(name, CircuitBreaker(name, clock, probes, threshold=3, probe_interval=5),
                                 lambda *a: Deferred()) for name in names], clock)


def fail(member: Member, times: int, why: str) -> None:
    for _ in range(times):
        member.breaker.record(False, why)


class UpstreamTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.probes = Probes()
        self.group = group(self.clock, self.probes, "ils:6001", "ils2:6001")
        self.first, self.second = self.group.members

    def test_ready_while_one_server_is_in_service(self) -> None:
        self.assertIsNone(problem(self.group))
        fail(self.first, 3, "connection refused")
        self.assertIsNone(problem(self.group))

    def test_the_reason_names_every_server_and_its_last_failure_on_one_line(self) -> None:
        fail(self.first, 3, "connection refused")
        fail(self.second, 2, "x")
        self.second.breaker.record(True)            # a reply starts the count again
        fail(self.second, 3, "no reply within 5 s\n(the server is stuck)")
        self.assertEqual(problem(self.group), "no library system server is in service (ils:6001: circuit open after "
                                              "3 failures in a row, the last: connection refused; ils2:6001: circuit "
                                              "open after 3 failures in a row, the last: no reply within 5 s (the "
                                              "server is stuck))")
        self.probes.answer = True
        self.clock.advance(5)                      # a probe answered: back in service
        self.assertIsNone(problem(self.group))

    def test_up_failures_and_openings_per_server(self) -> None:
        collector = UpstreamCollector(self.group)
        fail(self.first, 2, "timeout")
        self.assertEqual(samples(collector), {
            ("sipgateway_upstream_up", (("server", "ils:6001"),)): 1,
            ("sipgateway_upstream_up", (("server", "ils2:6001"),)): 1,
            ("sipgateway_upstream_failures", (("server", "ils:6001"),)): 2,
            ("sipgateway_upstream_failures", (("server", "ils2:6001"),)): 0,
            ("sipgateway_upstream_breaker_open_total", (("server", "ils:6001"),)): 0,
            ("sipgateway_upstream_breaker_open_total", (("server", "ils2:6001"),)): 0})
        fail(self.first, 1, "timeout")             # opens
        self.probes.answer = True
        self.clock.advance(5)                      # closes
        fail(self.first, 3, "timeout")             # opens again
        got = samples(collector)
        self.assertEqual(got[("sipgateway_upstream_up", (("server", "ils:6001"),))], 0)
        self.assertEqual(got[("sipgateway_upstream_failures", (("server", "ils:6001"),))], 3)
        self.assertEqual(got[("sipgateway_upstream_breaker_open_total", (("server", "ils:6001"),))], 2)
        self.assertEqual(got[("sipgateway_upstream_up", (("server", "ils2:6001"),))], 1)


class OfflineJournalTests(SynchronousTestCase):
    def test_offline_now_and_the_journal_entries_by_state(self) -> None:
        path = database(self)
        j = journal(self, path)
        online = [True]
        collector = OfflineCollector(lambda: online[0], path)
        self.assertEqual(samples(collector), {
            ("sipgateway_offline", ()): 0,
            ("sipgateway_offline_journal_entries", (("state", "pending"),)): 0,
            ("sipgateway_offline_journal_entries", (("state", "sent"),)): 0,
            ("sipgateway_offline_journal_entries", (("state", "conflict"),)): 0})
        entries = [j.accept(CHECKOUT if i % 2 else CHECKIN, now=T0, account="sc1", institution="MAIN",
                            location="DESK", patron_id="p1" if i % 2 else "", item_id=f"it{i}", due_at=None,
                            max_checkouts=10) for i in range(5)]
        for e in entries[:3]:
            j.mark_sent(e.id, T0 + 1)
        j.finish(entries[0].id, DONE, T0 + 2, "101")
        j.finish(entries[1].id, CONFLICT, T0 + 2, "100")
        online[0] = False
        self.assertEqual(samples(collector), {
            ("sipgateway_offline", ()): 1,
            ("sipgateway_offline_journal_entries", (("state", "pending"),)): 2,
            ("sipgateway_offline_journal_entries", (("state", "sent"),)): 1,
            ("sipgateway_offline_journal_entries", (("state", "conflict"),)): 1})

    def test_a_journal_that_cannot_be_read_leaves_its_figures_out_not_the_scrape(self) -> None:
        # a path in a new, empty directory: no such file (trial's mktemp would make its
        # directories under the current one, which under pytest is the checkout)
        missing = os.path.join(tempfile.mkdtemp(prefix="sipgw-nojournal-"), "journal.sqlite3")
        self.addCleanup(os.rmdir, os.path.dirname(missing))
        collector = OfflineCollector(lambda: False, missing)
        self.assertEqual(samples(collector), {("sipgateway_offline", ()): 1})


class _Own(Service):
    """The gateway's own database, as the forwarding backend sees it."""

    def __init__(self) -> None:
        self.accounts = self.attempts = None
        self.why: str | None = None

    def unready(self) -> str | None:
        return self.why

    def collectors(self) -> list:
        return []


class _Upstream(Service):
    def __init__(self, group: FailoverGroup) -> None:
        self.group = group


class ForwardingBackendTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.group = group(self.clock, Probes(), "ils:6001")
        self.own = _Own()
        config = load(None, acs=["sip2://ils:6001?login=gw&password=s3cret"], database="sqlite:gw.sqlite3")
        self.backend = ForwardingBackend(_Upstream(self.group), self.own, config)  # type: ignore[arg-type]

    def test_unready_says_why_the_database_first_then_the_servers(self) -> None:
        self.assertIsNone(self.backend.unready())
        fail(self.group.members[0], 3, "login refused")
        reason = self.backend.unready()
        self.assertEqual(reason, "no library system server is in service (ils:6001: circuit open after 3 failures "
                                 "in a row, the last: login refused)")
        self.assertNotIn("s3cret", reason)
        self.own.why = "the database file /var/lib/gw.sqlite3 is missing"
        self.assertEqual(self.backend.unready(), "the gateway's database: the database file /var/lib/gw.sqlite3 is "
                                                 "missing")

    def test_collectors_without_the_offline_wrapper_are_the_servers(self) -> None:
        [collector] = self.backend.collectors()
        self.assertEqual(samples(collector)[("sipgateway_upstream_up", (("server", "ils:6001"),))], 1)

    def test_collectors_with_the_offline_wrapper_add_the_journal_in_the_gateways_database(self) -> None:
        path = database(self)
        wrapper = _Upstream(self.group)
        wrapper.upstream, wrapper.journal = _Upstream(self.group), object()  # type: ignore[attr-defined]
        config = load(None, acs=["sip2://ils:6001?login=gw&password=s3cret"], database=f"sqlite:{path}")
        backend = ForwardingBackend(wrapper, _Own(), config)  # type: ignore[arg-type]
        fail(self.group.members[0], 3, "timeout")
        got = samples(*backend.collectors())
        self.assertEqual((got[("sipgateway_offline", ())], got[("sipgateway_upstream_up", (("server", "ils:6001"),))],
                          got[("sipgateway_offline_journal_entries", (("state", "pending"),))]), (1, 0, 0))

    def test_on_postgresql_the_figures_are_read_in_a_thread_never_in_the_scrape(self) -> None:
        """An unreachable PostgreSQL server would hold the reactor (every device) for the
        connect timeout: a scrape starts one read in a thread and shows the last one's figures."""
        reads: list[Deferred] = []

        def in_thread(fn, path: str) -> Deferred:
            self.assertEqual(path, "postgresql://sip@db.example/library")
            reads.append(Deferred())
            return reads[-1]

        collector = OfflineCollector(lambda: True, "postgresql://sip@db.example/library", in_thread=in_thread)
        self.assertEqual(samples(collector), {("sipgateway_offline", ()): 0})   # nothing read yet
        self.assertEqual(samples(collector), {("sipgateway_offline", ()): 0})
        self.assertEqual(len(reads), 1)   # one read at a time
        reads[0].callback({"pending": 2, "sent": 0, "conflict": 1})
        self.assertEqual(samples(collector), {
            ("sipgateway_offline", ()): 0,
            ("sipgateway_offline_journal_entries", (("state", "pending"),)): 2,
            ("sipgateway_offline_journal_entries", (("state", "sent"),)): 0,
            ("sipgateway_offline_journal_entries", (("state", "conflict"),)): 1})
        self.assertEqual(len(reads), 2)   # that scrape started the next read
        reads[1].errback(sqlite3.OperationalError("cannot connect to sip@db.example/library: timeout expired"))
        self.assertEqual(samples(collector), {("sipgateway_offline", ()): 0})   # a failed read shows nothing old
        self.assertEqual(len(reads), 3)
