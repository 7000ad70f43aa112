"""``/metrics``: requests by listener, account, code and outcome, their durations, the
connections, logins and locks, whether the ACS answers; read from what the gateway keeps,
rendered by prometheus_client."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from sipgateway.admin.metrics import DURATION_BUCKETS, Metrics, RequestFigures, cumulative
from sipgateway.gateway import Gateway
from sipgateway.lockout import Lockout
from sipgateway.session import Session
from sipgateway.settings import ListenerSettings
from tests.fakes import FakeACS

D = "20240105    101500"
LOGIN = b"9300CNsc1|COpass1|CPMAIN|"


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(1704449700.0)
        self.acs = FakeACS()
        self.gateway = Gateway(acs=self.acs, reactor=self.clock,
                               lockout=Lockout(self.clock, max_failures=3, max_per_address=0, max_per_account=0))
        self.problem: str | None = None
        self.metrics = Metrics(self.gateway, lambda: ["raw", "telnet"], lambda: self.problem)

    def session(self, listener: str = "raw", address: str = "10.0.0.1") -> tuple[Session, list[bytes]]:
        out: list[bytes] = []
        session = Session(self.gateway, ListenerSettings(name=listener), out.append, lambda: None,
                          f"{listener} {address}:4000", address=address)
        return session, out

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of a scrape, parsed back from the Prometheus text."""
        text = generate_latest(self.metrics.registry).decode("utf-8")
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}


def requests(samples: dict, **labels: str) -> float:
    return samples.get(("sipgateway_requests_total", tuple(sorted(labels.items()))), 0)


def test_requests_are_counted_by_listener_account_code_and_outcome() -> None:
    w = World()
    s, out = w.session()
    s.line_received(b"9300CNsc1|COwrong|CPMAIN|")
    s.line_received(LOGIN)
    s.line_received(b"9900302.00")
    s.line_received(f"11NN{D}{D}AOMAIN|AA100001|AB200001|AC|AD1234|".encode())
    s.line_received(b"ZZ garbage")
    assert out[:2] == [b"940\r", b"941\r"] and out[-1].startswith(b"96")
    other, _ = w.session("telnet", "10.0.0.2")
    other.line_received(LOGIN)
    got = w.samples()
    # a login is counted under the account it logged in to, a refused one under none
    assert requests(got, listener="raw", account="", code="93", outcome="refused") == 1
    assert requests(got, listener="raw", account="sc1", code="93", outcome="ok") == 1
    assert requests(got, listener="raw", account="sc1", code="99", outcome="ok") == 1
    assert requests(got, listener="raw", account="sc1", code="11", outcome="ok") == 1
    assert requests(got, listener="raw", account="sc1", code="other", outcome="bad") == 1
    assert requests(got, listener="telnet", account="sc1", code="93", outcome="ok") == 1
    assert sum(v for (name, _), v in got.items() if name == "sipgateway_requests_total") == 6
    assert got[("sipgateway_connections", (("listener", "raw"),))] == 1
    assert got[("sipgateway_connections", (("listener", "telnet"),))] == 1
    assert got[("sipgateway_logins_total", (("outcome", "ok"),))] == 2
    assert got[("sipgateway_logins_total", (("outcome", "failed"),))] == 1
    assert got[("sipgateway_acs_up", ())] == 1
    s.connection_lost()
    assert w.samples()[("sipgateway_connections", (("listener", "raw"),))] == 0


def test_durations_are_a_histogram_by_code_on_the_reactor_clock() -> None:
    w = World()
    w.acs.manual = True
    s, out = w.session()
    s.line_received(LOGIN)
    w.acs.fire()
    s.line_received(f"11NN{D}{D}AOMAIN|AA100001|AB200001|AC|AD1234|".encode())
    w.clock.advance(0.02)
    w.acs.fire()
    assert out[-1].startswith(b"12")
    got = w.samples()
    bucket = lambda le: got[("sipgateway_request_duration_seconds_bucket", (("code", "11"), ("le", le)))]  # noqa: E731
    assert bucket("0.01") == 0 and bucket("0.025") == 1 and bucket("+Inf") == 1
    assert got[("sipgateway_request_duration_seconds_count", (("code", "11"),))] == 1
    assert abs(got[("sipgateway_request_duration_seconds_sum", (("code", "11"),))] - 0.02) < 1e-6


def test_codes_nobody_knows_share_one_label_so_a_device_cannot_grow_the_table() -> None:
    figures = RequestFigures()

    class S:
        account = None
        settings = ListenerSettings(name="raw")

    for n in range(100):
        figures.served(S(), f"{n:02d}"[::-1] + "x", "bad", 0.001)
        figures.served(S(), "Z" + str(n), "bad", 0.001)
    assert figures.counts == {("raw", "", "other", "bad"): 200}
    assert list(figures.durations) == ["other"]


def test_failed_logins_a_lock_and_a_broken_account_store_are_counted() -> None:
    w = World()
    s, out = w.session()
    for _ in range(4):
        s.line_received(b"9300CNsc1|COwrong|CPMAIN|")
    assert out == [b"940\r"] * 4
    w.acs.raise_on.add("authenticate")
    other, _ = w.session(address="10.0.0.2")
    other.line_received(LOGIN)
    got = w.samples()
    assert got[("sipgateway_logins_total", (("outcome", "failed"),))] == 3
    assert got[("sipgateway_logins_total", (("outcome", "locked"),))] == 1
    assert got[("sipgateway_logins_total", (("outcome", "error"),))] == 1
    assert got[("sipgateway_lockouts_total", (("kind", "login"),))] == 1
    assert got[("sipgateway_lockouts_total", (("kind", "pin"),))] == 0


def test_the_acs_is_down_while_it_has_a_problem() -> None:
    w = World()
    w.problem = "the database process does not answer"
    assert w.samples()[("sipgateway_acs_up", ())] == 0


def test_the_process_figures_are_there_too() -> None:
    names = {name for name, _ in World().samples()}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names


def test_cumulative_buckets() -> None:
    assert cumulative((1, 2), [3, 0, 2]) == [("1.0", 3), ("2.0", 3), ("+Inf", 5)]
    assert len(DURATION_BUCKETS) == len(set(DURATION_BUCKETS)) and list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)
