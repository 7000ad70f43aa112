"""The admin listener with worker processes: each worker's figures written to
prometheus_client's multiprocess files and read together (counters and histograms summed,
gauges by their mode), a dead worker's counters kept and its live gauges dropped, and
/sessions and /metrics gathered from every worker whichever one is asked."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import Deferred, succeed
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from sipgateway.admin.metrics import histogram
from sipgateway.admin.workers import AllWorkers, Gathered, all_metrics, all_sessions, merge_gone, write_figures

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def figures(requests: int, connections: int, acs_up: int, durations: list[int], other: int = 0) -> list:
    counter = CounterMetricFamily("sipgateway_requests", "Requests answered", labels=("code",))
    counter.add_metric(("99",), requests)
    if other:
        counter.add_metric(("11",), other)
    conns = GaugeMetricFamily("sipgateway_connections", "Open connections", labels=("listener",))
    conns.add_metric(("raw",), connections)
    up = GaugeMetricFamily("sipgateway_acs_up", "1 when the library system answers", value=acs_up)
    strange = GaugeMetricFamily("sipgateway_something_new", "a gauge with no mode of its own", value=acs_up)
    timing = histogram("sipgateway_request_duration_seconds", "Seconds", (0.01, 0.1), durations,
                       sum(durations) * 0.01)
    return [counter, conns, up, strange, timing]


def read(directory: Path) -> Samples:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AllWorkers(str(directory)))
    text = generate_latest(registry).decode("utf-8")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_two_workers_figures_add_up_and_each_gauge_merges_by_its_mode(tmp_path: Path) -> None:
    write_figures(figures(3, 2, 1, [1, 2, 0]), str(tmp_path), 101)
    write_figures(figures(4, 5, 0, [0, 1, 1], other=7), str(tmp_path), 102)
    got = read(tmp_path)
    assert got[("sipgateway_requests_total", (("code", "99"),))] == 7
    assert got[("sipgateway_requests_total", (("code", "11"),))] == 7
    assert got[("sipgateway_connections", (("listener", "raw"),))] == 7  # livesum
    assert got[("sipgateway_acs_up", ())] == 0  # livemin: one worker cannot reach it
    assert got[("sipgateway_something_new", (("pid", "101"),))] == 1  # liveall: one series a worker
    assert got[("sipgateway_something_new", (("pid", "102"),))] == 0
    buckets = {le: got[("sipgateway_request_duration_seconds_bucket", (("le", le),))] for le in ("0.01", "0.1",
                                                                                                  "+Inf")}
    assert buckets == {"0.01": 1, "0.1": 4, "+Inf": 5}  # cumulative again, over both
    assert got[("sipgateway_request_duration_seconds_count", ())] == 5
    assert abs(got[("sipgateway_request_duration_seconds_sum", ())] - 0.05) < 1e-9
    assert not [name for name, _ in got if name.endswith("_created")]


def test_a_worker_writing_again_replaces_its_figures(tmp_path: Path) -> None:
    write_figures(figures(3, 2, 1, [1, 0, 0]), str(tmp_path), 101)
    write_figures(figures(10, 1, 1, [2, 0, 0]), str(tmp_path), 101)
    got = read(tmp_path)
    assert got[("sipgateway_requests_total", (("code", "99"),))] == 10
    assert got[("sipgateway_connections", (("listener", "raw"),))] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_101.db", "gauge_liveall_101.db",
                                                          "gauge_livemin_101.db", "gauge_livesum_101.db",
                                                          "histogram_101.db", "lock"]


def test_a_dead_workers_counts_stay_and_its_live_gauges_go(tmp_path: Path) -> None:
    write_figures(figures(3, 2, 0, [1, 2, 0]), str(tmp_path), 101)
    write_figures(figures(4, 5, 1, [0, 1, 1]), str(tmp_path), 102)
    merge_gone(str(tmp_path), 101)
    write_figures(figures(6, 1, 1, [1, 0, 0], other=2), str(tmp_path), 103)  # its replacement
    merge_gone(str(tmp_path), 103)
    got = read(tmp_path)
    assert got[("sipgateway_requests_total", (("code", "99"),))] == 13  # 3 + 4 + 6: never goes down
    assert got[("sipgateway_requests_total", (("code", "11"),))] == 2
    assert got[("sipgateway_connections", (("listener", "raw"),))] == 5  # the living worker's alone
    assert got[("sipgateway_acs_up", ())] == 1
    assert got[("sipgateway_request_duration_seconds_count", ())] == 6  # 3 + 2 + 1
    assert got[("sipgateway_request_duration_seconds_bucket", (("le", "0.01"),))] == 2
    # as many files as workers, whatever the number of deaths
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["counter_102.db", "counter_gone.db",
                                                             "gauge_liveall_102.db", "gauge_livemin_102.db",
                                                             "gauge_livesum_102.db", "histogram_102.db",
                                                             "histogram_gone.db"]


class FakePeers:
    """Every worker's answers, as ``Peers.ask_all`` gathers them (``pending``: not yet)."""

    def __init__(self, answers: dict[str, dict[int, object]], pending: bool = False) -> None:
        self.answers = answers
        self.asked: list[str] = []
        self.waiting: Deferred | None = Deferred() if pending else None

    def ask_all(self, question: str) -> Deferred:
        self.asked.append(question)
        if self.waiting is not None:
            return self.waiting.addCallback(lambda _: self.answers[question])
        return succeed(self.answers[question])


def view(listener: str, peer: str, worker: int) -> dict:
    return {"listener": listener, "peer": peer, "account": "sc1", "terminal": None, "since": None, "served": 1,
            "last_code": "99", "last_at": None, "worker": worker}


def test_sessions_of_every_worker_in_one_list_sorted_as_on_one_process() -> None:
    peers = FakePeers({"sessions": {11: [view("raw", "10.0.0.9:1", 11)],
                                    12: [view("raw", "10.0.0.1:2", 12), view("a-tls", "10.0.0.5:3", 12)]}})
    request = DummyRequest([b""])
    assert Gathered(peers, "sessions", all_sessions).render_GET(request) == NOT_DONE_YET
    assert request.finished and request.responseHeaders.getRawHeaders(b"content-type") == [b"application/json"]
    listed = json.loads(b"".join(request.written))
    assert [(v["listener"], v["peer"], v["worker"]) for v in listed] == [
        ("a-tls", "10.0.0.5:3", 12), ("raw", "10.0.0.1:2", 12), ("raw", "10.0.0.9:1", 11)]


def test_metrics_are_read_once_every_worker_has_written(tmp_path: Path) -> None:
    peers = FakePeers({"metrics": {11: None, 12: None}}, pending=True)
    request = DummyRequest([b""])
    page = Gathered(peers, "metrics", all_metrics(str(tmp_path)))
    assert page.render_GET(request) == NOT_DONE_YET
    write_figures(figures(3, 1, 1, [1, 0, 0]), str(tmp_path), 11)  # the workers write when asked
    write_figures(figures(2, 1, 1, [1, 0, 0]), str(tmp_path), 12)
    assert not request.finished
    peers.waiting.callback(None)
    assert peers.asked == ["metrics"] and request.finished
    assert request.responseHeaders.getRawHeaders(b"content-type")[0].startswith(b"text/plain; version=0.0.4")
    text = b"".join(request.written).decode("utf-8")
    assert 'sipgateway_requests_total{code="99"} 5.0' in text.splitlines()


def test_a_client_gone_before_the_workers_answered_gets_nothing_written() -> None:
    peers = FakePeers({"sessions": {11: []}}, pending=True)
    request = DummyRequest([b""])
    Gathered(peers, "sessions", all_sessions).render_GET(request)
    request.processingFailed(Exception("client gone"))  # DummyRequest's connection lost: notifyFinish errbacks
    peers.waiting.callback(None)
    assert request.written == []
