"""The admin listener over HTTP: /healthz, /readyz, /metrics and /sessions as bytes on the
wire, basic authentication when configured, 404 for anything else, no secrets."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from twisted.application.service import MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import formatEvent, globalLogPublisher

from sipgateway.admin.readiness import Readiness
from sipgateway.admin.service import admin_service, admin_site
from sipgateway.config.admin import AdminConfig
from sipgateway.gateway import Gateway
from sipgateway.session import Session
from sipgateway.settings import ListenerSettings
from sipgateway.transports.listening import ListenerService
from sipgateway.transports.tls import server_from_string
from tests.fakes import FakeACS

LOCAL = AdminConfig("tcp:0:interface=127.0.0.1")


class Backend:
    """A backend that says why it cannot serve (``unready``), like the embedded one."""

    def __init__(self) -> None:
        self.why: str | None = None

    def unready(self) -> str | None:
        return self.why


class World:
    def __init__(self, config: AdminConfig = LOCAL) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1704449700.0)
        self.acs = FakeACS()
        self.gateway = Gateway(acs=self.acs, reactor=self.reactor)
        self.backend = Backend()
        self.top = MultiService()
        self.raw = ListenerService(server_from_string(self.reactor, "tcp:6001:interface=127.0.0.1"),
                                   Factory.forProtocol(Protocol), "raw (sip:tcp:6001)", "tcp:6001")
        self.raw.setServiceParent(self.top)
        self.site = admin_site(config, self.gateway, self.backend, self.top, self.reactor)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        protocol = self.site.buildProtocol(transport.getPeer())
        protocol.makeConnection(transport)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        protocol.dataReceived(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n".encode())
        head, _, body = transport.value().partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        fields = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
        if fields.get("transfer-encoding") == "chunked":
            body = dechunk(body)
        protocol.connectionLost(None)
        return int(status.split()[1]), fields, body

    def session(self, address: str = "10.0.0.7") -> tuple[Session, list[bytes]]:
        out: list[bytes] = []
        return Session(self.gateway, ListenerSettings(name="raw"), out.append, lambda: None,
                       f"raw {address}:4000", address=address), out


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, body = out + rest[:n], rest[n + 2:]
    return out


@pytest.fixture
def world() -> World:
    w = World()
    w.top.privilegedStartService()
    w.top.startService()
    return w


@pytest.fixture
def logged() -> Iterator[list[str]]:
    lines: list[str] = []
    observer = lambda event: lines.append(formatEvent(event))  # noqa: E731
    globalLogPublisher.addObserver(observer)
    yield lines
    globalLogPublisher.removeObserver(observer)


def test_healthz_says_ok(world: World) -> None:
    code, headers, body = world.get("/healthz")
    assert (code, body) == (200, b"ok\n")
    assert headers["content-type"] == "text/plain; charset=utf-8"


def test_readyz_is_ready_while_every_listener_listens_and_the_acs_answers(world: World) -> None:
    assert world.get("/readyz")[::2] == (200, b"ready\n")
    world.backend.why = "the database file /var/lib/x.sqlite3 was deleted"
    assert world.get("/readyz")[::2] == (
        503, b"the library system does not answer: the database file /var/lib/x.sqlite3 was deleted\n")


def test_readyz_names_a_listener_that_is_not_listening() -> None:
    w = World()   # nothing started
    assert w.get("/readyz")[::2] == (503, b"listener raw (sip:tcp:6001) is not listening\n")


def test_a_reason_on_several_lines_is_one_line() -> None:
    w = World()
    w.top.privilegedStartService()
    w.top.startService()
    w.backend.why = "first\nsecond  third"
    assert w.get("/readyz")[2] == b"the library system does not answer: first second third\n"


def test_readiness_ignores_the_admin_listener_itself() -> None:
    w = World()
    admin = admin_service(LOCAL, w.gateway, w.backend, w.top, w.reactor)
    admin.setServiceParent(w.top)
    readiness = Readiness(w.top, w.backend)
    assert readiness.listeners() == [w.raw]
    assert readiness.listener_names() == ["raw (sip:tcp:6001)"]


def test_metrics_is_prometheus_text(world: World) -> None:
    s, _ = world.session()
    s.line_received(b"9300CNsc1|COpass1|CPMAIN|")
    code, headers, body = world.get("/metrics")
    assert code == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'sipgateway_requests_total{account="sc1",code="93",listener="raw",outcome="ok"} 1.0' in text
    assert "sipgateway_acs_up 1.0" in text
    code, headers, body = world.get("/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert headers["content-type"].startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")


def test_sessions_lists_the_live_ones_without_secrets_or_patrons(world: World) -> None:
    assert world.get("/sessions")[::2] == (200, b"[]\n")
    s, out = world.session()
    s.line_received(b"9300CNsc1|COpass1|CPMAIN|")
    world.reactor.advance(5)
    s.line_received(b"2300120240105    101500AOMAIN|AA100001|AC|AD1234|")
    assert out[0] == b"941\r" and out[1].startswith(b"24")
    waiting, _ = world.session("10.0.0.8")
    code, headers, body = world.get("/sessions")
    assert code == 200 and headers["content-type"] == "application/json"
    first, second = json.loads(body)
    assert first == {"listener": "raw", "peer": "10.0.0.7:4000", "account": "sc1", "terminal": "MAIN",
                     "since": first["since"], "served": 2, "last_code": "23", "last_at": first["last_at"]}
    assert first["since"].startswith("2024-01-05T") and first["last_at"] > first["since"]
    assert second == {"listener": "raw", "peer": "10.0.0.8:4000", "account": None, "terminal": None,
                      "since": None, "served": 0, "last_code": None, "last_at": None}
    for secret in (b"pass1", b"1234", b"100001"):
        assert secret not in body
    s.connection_lost()
    waiting.connection_lost()
    assert world.get("/sessions")[2] == b"[]\n"


def test_anything_else_is_404_naming_the_paths(world: World) -> None:
    for path in ("/", "/metrics/x", "/admin"):
        assert world.get(path)[::2] == (404, b"not found; the admin listener serves /healthz, /readyz, /metrics, "
                                             b"/sessions\n")


def test_with_a_user_and_password_every_path_needs_them(logged: list[str]) -> None:
    w = World(AdminConfig("tls:0:privateKey=k.pem:certKey=c.pem", "prometheus", "s3cret"))
    good = "Basic " + base64.b64encode(b"prometheus:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"prometheus:guess").decode()
    for path in ("/healthz", "/metrics", "/sessions"):
        code, headers, body = w.get(path)
        assert (code, body) == (401, b"authentication required\n")
        assert headers["www-authenticate"] == 'Basic realm="sipgateway admin"'
        assert w.get(path, {"Authorization": bad})[0] == 401
    assert w.get("/healthz", {"Authorization": good})[::2] == (200, b"ok\n")
    warned = [line for line in logged if "admin" in line]
    # rate-limited: one line for the first failure, the rest summed up later
    assert warned == ["admin 127.0.0.1: no credentials for /healthz; answered 401"]
    assert not any("s3cret" in line or "guess" in line for line in logged)
