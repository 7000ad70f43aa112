"""``/metrics``: what Prometheus scrapes, in one ``CollectorRegistry`` per gateway.

Every request passes ``RequestFigures.served`` (a gateway observer), so it keeps plain
counts: one dict entry and one histogram bucket a request, a fraction of a microsecond, where
a prometheus_client child metric costs a lock per update and ``labels()`` a few
microseconds more.  Everything else is read when scraped, from what the gateway keeps
anyway: its live sessions, its login and lockout counts, the backend's health and figures.
Scrapes run in the reactor thread (the resource prometheus_client ships runs the registry
in a thread pool, which would read those while the reactor changes them).

Adding figures: a collector is anything with a ``collect()`` that yields prometheus_client
metric families (``prometheus_client.core``), read at scrape time from state kept anyway;
give it to ``Metrics.register``.  A backend offers its own by a method ``collectors()``
returning them (the embedded one: the database process's batches and commits,
acs/sqlite/metrics.py); a backend that is only sometimes healthy says so by ``unready()``
(see readiness.py), which also drives ``sipgateway_acs_up``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

from sipgateway.exchange import EXCHANGES

#: upper bounds (seconds) of the request-duration histogram: a cached 98 takes well under a
#: millisecond, a checkout a few, a library system that does not answer up to acs_timeout
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: request codes counted as themselves; anything else a device sends (a 96's garbage) is "other",
#: so that no client can make the label set grow
KNOWN_CODES = frozenset({*EXCHANGES, "97"})
OTHER = "other"
LOGIN_OUTCOMES = ("ok", "failed", "locked", "error")


def histogram(name: str, doc: str, bounds: Sequence[float], counts: Sequence[int], total: float,
              labels: Sequence[str] = (), values: Sequence[str] = ()) -> HistogramMetricFamily:
    """A histogram family from per-bucket counts (``counts[i]``: observations of at most
    ``bounds[i]`` and more than the bound before; the last: above every bound)."""
    family = HistogramMetricFamily(name, doc, labels=labels)
    family.add_metric(values, cumulative(bounds, counts), total)
    return family


def cumulative(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, float]]:
    buckets, running = [], 0
    for bound, n in zip((*bounds, float("inf")), counts, strict=True):
        running += n
        buckets.append((floatToGoString(bound), running))  # "4.0", "+Inf": as prometheus_client writes them
    return buckets


class RequestFigures:
    """The gateway observer behind ``sipgateway_requests_total`` and
    ``sipgateway_request_duration_seconds``."""

    def __init__(self) -> None:
        #: (listener, account, code, outcome) -> requests; bounded: codes are KNOWN_CODES or OTHER
        self.counts: dict[tuple[str, str, str, str], int] = {}
        #: code -> requests per DURATION_BUCKETS bucket (the last: slower), then their sum in seconds
        self.durations: dict[str, list[Any]] = {}

    def served(self, session: Any, code: str, outcome: str, seconds: float) -> None:
        account = session.account
        key = (session.settings.name, "" if account is None else account.name, code, outcome)
        try:
            self.counts[key] += 1
        except KeyError:
            self._first(key)
        timing = self.durations.get(code) or self._timing(code)
        timing[bisect_left(DURATION_BUCKETS, seconds)] += 1
        timing[-1] += seconds

    def _first(self, key: tuple[str, str, str, str]) -> None:
        listener, account, code, outcome = key
        if code not in KNOWN_CODES:
            key = (listener, account, OTHER, outcome)
        self.counts[key] = self.counts.get(key, 0) + 1

    def _timing(self, code: str) -> list[Any]:
        code = code if code in KNOWN_CODES else OTHER
        timing = self.durations.get(code)
        if timing is None:
            timing = self.durations[code] = [0] * (len(DURATION_BUCKETS) + 1) + [0.0]
        return timing

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("sipgateway_requests", "Requests answered, by listener, SC account (empty "
                                       "before a login), request code and outcome (ok; refused: the reply says not "
                                       "done; failed: the ACS broke or did not answer; bad: answered 96; replayed: "
                                       "a 97 or a resent request answered from the last reply)",
                                       labels=("listener", "account", "code", "outcome"))
        for labels, n in sorted(self.counts.items()):
            requests.add_metric(labels, n)
        yield requests
        durations = HistogramMetricFamily("sipgateway_request_duration_seconds", "Seconds from a request's arrival "
                                          "to its reply, by request code", labels=("code",))
        for code, timing in sorted(self.durations.items()):
            durations.add_metric((code,), cumulative(DURATION_BUCKETS, timing[:-1]), timing[-1])
        yield durations


class GatewayCollector:
    """What the gateway keeps anyway, read when scraped."""

    def __init__(self, gateway: Any, listeners: Callable[[], Iterable[str]], acs_problem: Callable[[], str | None]):
        self.gateway = gateway
        self.listeners = listeners
        self.acs_problem = acs_problem

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily("sipgateway_connections", "Open connections with a session (a telnet "
                                        "connection has one once its login prompt is answered), by listener",
                                        labels=("listener",))
        by_listener = Counter(session.settings.name for session in list(self.gateway.sessions))
        for name in self.listeners():
            by_listener.setdefault(name, 0)
        for name, n in sorted(by_listener.items()):
            connections.add_metric((name,), n)
        yield connections
        logins = CounterMetricFamily("sipgateway_logins", "SC logins (93 and telnet) by outcome: ok, failed (wrong "
                                     "or unknown), locked (refused by the failed-login lockout), error (the accounts "
                                     "could not be checked)", labels=("outcome",))
        for outcome in LOGIN_OUTCOMES:
            logins.add_metric((outcome,), self.gateway.logins.get(outcome, 0))
        yield logins
        lockouts = CounterMetricFamily("sipgateway_lockouts", "Locks imposed: failed logins (an address and account, "
                                       "an address, an account) and wrong PINs (a patron, a terminal)",
                                       labels=("kind",))
        lockouts.add_metric(("login",), getattr(self.gateway.lockout, "locks", 0))
        lockouts.add_metric(("pin",), getattr(getattr(self.gateway.acs, "guard", None), "locks", 0))
        yield lockouts
        yield GaugeMetricFamily("sipgateway_acs_up", "1 when the library system answers (embedded: the database "
                                "process is up and its file writable), else 0",
                                value=int(self.acs_problem() is None))


class Metrics:
    """The registry ``/metrics`` renders: the gateway's figures, the backend's, the process's."""

    def __init__(self, gateway: Any, listeners: Callable[[], Iterable[str]],
                 acs_problem: Callable[[], str | None], backend: Any = None, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = RequestFigures()
        gateway.observers.append(self.requests)
        self.register(self.requests)
        self.register(GatewayCollector(gateway, listeners, acs_problem))
        for collector in getattr(backend, "collectors", list)():
            self.register(collector)
        for standard in (ProcessCollector, PlatformCollector, GCCollector) if process else ():
            standard(registry=self.registry)  # one process's own: left out with workers (admin/workers.py)

    def register(self, collector: Any) -> None:
        self.registry.register(collector)
