"""Two real gateways on one database behind a real HAProxy configured from the shipped
``etc/haproxy.cfg`` (see haproxy.py): devices check out and check in through HAProxy, one
gateway is killed with ``kill -9`` mid-run, and the devices reconnect (resending the
request whose reply they lost, as kiosks do) and carry on through the other.  Also: a
gateway whose /readyz fails is taken out and its devices cut off; a gateway that refuses
connections before its checks fail is skipped; README.rst's "Taking a host out for
maintenance" step by step; ``haproxy -c`` on the file as shipped.

The database is a fixture (``shared_database``): a ``--database`` URL both gateways use and
a function that reads the loans.  Every test runs on a shared SQLite file (each gateway
runs its own database process on it; SQLite's lock serializes the writes) and on one
PostgreSQL database (each gateway has its own connection; SERIALIZABLE write batches decide
between them), as the issue's layout has it: N hosts, one PostgreSQL."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import sqlite3
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.system.haproxy import SHIPPED, Backend, HAProxyProcess, check_config, derive_config, haproxy_binary
from tests.system.process import GatewayProcess, SIPClient, free_port, wait_gone, wait_until
from tests.transports.certs_pki import PKI, make_pki

DATE = "20240105    101500"
LOGIN = "9300CNsc1|COpass1|CPMAIN|"
#: (patron, PIN, item): each device lends its own item to its own patron, over and over
DEVICES = (("100001", "1234", "200001"), ("djfiander", "6789", "200002"),
           ("miker", "6789", "660"), ("100001", "1234", "0440242746"))
#: acknowledged transactions per device before the kill, and again after it
ROUND = 12
RECONNECT_TIMEOUT = 30.0
#: how often a device sends one request before it gives up (each on a new connection)
SENDINGS = 10
#: a gateway's log line for a login, with the peer as the session sees it
_LOGGED_IN = re.compile(r" (?P<address>127\.\d+\.\d+\.\d+):(?P<port>\d+): logged in as 'sc1'")


@dataclass(frozen=True)
class Loan:
    id: int
    item: str
    patron: str
    open: bool


#: every loan: id, item barcode, patron barcode, still open (the same on both databases)
LOANS_SQL = ("SELECT l.id, i.barcode, p.barcode, l.returned_at IS NULL FROM loans l "
             "JOIN items i ON i.id = l.item_id JOIN patrons p ON p.id = l.patron_id")


@dataclass
class SharedDatabase:
    """What both gateways use: ``url`` for ``--database``, ``first_args`` for the gateway
    started first (it creates and seeds the demo library), ``loans()`` every loan."""
    url: str
    loans: Callable[[], list[Loan]]
    first_args: tuple[str, ...] = ("--demo",)


@contextmanager
def sqlite_database(directory: Path) -> Iterator[SharedDatabase]:
    path = directory / "shared.sqlite3"

    def loans() -> list[Loan]:
        db = sqlite3.connect(path)
        try:
            rows = db.execute(LOANS_SQL).fetchall()
        finally:
            db.close()
        return [Loan(n, item, patron, bool(is_open)) for n, item, patron, is_open in rows]

    yield SharedDatabase(f"sqlite:{path}", loans)


@contextmanager
def postgresql_database(request: pytest.FixtureRequest) -> Iterator[SharedDatabase]:
    """An empty database on the run's PostgreSQL server (tests/conftest.py): the gateway
    started first creates the schema (--init) and seeds the demo library."""
    server = request.getfixturevalue("postgres")
    url = server.create_database()

    def loans() -> list[Loan]:
        with psycopg.connect(url) as db:
            rows = db.execute(LOANS_SQL).fetchall()
        return [Loan(n, item, patron, bool(is_open)) for n, item, patron, is_open in rows]

    try:
        yield SharedDatabase(url, loans, ("--init", "--demo"))
    finally:
        server.drop_database(url)


DATABASES = {"sqlite": lambda request: sqlite_database(request.getfixturevalue("tmp_path")),
             "postgresql": postgresql_database}


@pytest.fixture(params=sorted(DATABASES))
def shared_database(request: pytest.FixtureRequest) -> Iterator[SharedDatabase]:
    with DATABASES[request.param](request) as database:
        yield database


def readiness(admin_port: int, pki: PKI) -> tuple[int, str]:
    """GET /readyz as HAProxy's check does: TLS, its client certificate, the gateways' CA."""
    context = ssl.create_default_context(cafile=pki.ca.cert_path)
    context.load_cert_chain(pki.client.cert_path, pki.client.key_path)
    conn = http.client.HTTPSConnection("127.0.0.1", admin_port, context=context, timeout=10)
    try:
        conn.request("GET", "/readyz")
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


class Cluster:
    """HAProxy on ``front`` and gateways gw1, gw2 on one database, every port free on 127.0.0.1."""

    def __init__(self, directory: Path, database: SharedDatabase) -> None:
        self.directory, self.database = directory, database
        self.haproxy_binary = haproxy_binary()
        self.pki = make_pki(str(directory / "pki"))
        self.front = free_port()
        self.backends = {name: Backend(name, free_port(), free_port()) for name in ("gw1", "gw2")}
        self.gateways: dict[str, GatewayProcess] = {}
        self.haproxy = HAProxyProcess(self.haproxy_binary, directory, self.front)

    def gateway_args(self, backend: Backend) -> list[str]:
        pki = self.pki
        admin = (f"tls:{backend.admin_port}:interface=127.0.0.1:privateKey={pki.server.key_path}:"
                 f"certKey={pki.server.cert_path}:caCerts={pki.ca.cert_path}")
        return ["--listen", f"sip:haproxy:tcp:{backend.sip_port}:interface=127.0.0.1", "--admin", admin,
                "--database", self.database.url]

    def start_gateway(self, backend: Backend, extra: tuple[str, ...] = ()) -> GatewayProcess:
        workdir = self.directory / backend.name
        workdir.mkdir(exist_ok=True)
        gateway = GatewayProcess(workdir, [*self.gateway_args(backend), *extra], [backend.sip_port]).start()
        self.gateways[backend.name] = gateway
        self.wait_ready(backend)
        return gateway

    def wait_ready(self, backend: Backend) -> None:
        deadline = time.monotonic() + 30
        while (answer := readiness(backend.admin_port, self.pki)) != (200, "ready\n"):
            assert time.monotonic() < deadline, f"{backend.name} /readyz: {answer}"
            time.sleep(0.1)

    def start(self, running: tuple[str, ...] = ("gw1", "gw2")) -> Cluster:
        """Start HAProxy and the ``running`` gateways, and wait until HAProxy sees them up."""
        (self.directory / "gateways-ca.pem").write_bytes(Path(self.pki.ca.cert_path).read_bytes())
        (self.directory / "haproxy-client.pem").write_bytes(
            Path(self.pki.client.cert_path).read_bytes() + Path(self.pki.client.key_path).read_bytes())
        self.haproxy.config.write_text(derive_config(self.directory, self.front, list(self.backends.values())))
        check_config(self.haproxy_binary, self.haproxy.config)
        # one after the other: the first creates and seeds the database
        for n, name in enumerate(running):
            self.start_gateway(self.backends[name], self.database.first_args if n == 0 else ())
        self.haproxy.start()
        self.haproxy.wait_states(dict.fromkeys(self.backends, "UP"))
        return self

    def stop(self) -> None:
        if self.haproxy.proc is not None:
            self.haproxy.stop()
        for gateway in self.gateways.values():
            if gateway.proc is not None and not gateway._log.closed:
                gateway.stop()

    def logged_in(self, name: str) -> set[tuple[str, int]]:
        """The peers (address, port) gateway ``name`` logged in, from its log."""
        found = set()
        for line in self.gateways[name].log().splitlines():
            if m := _LOGGED_IN.search(line):
                found.add((m["address"], int(m["port"])))
        return found


@dataclass
class Ack:
    kind: str             # "out" or "in"
    loan: int | None      # the checkout's transaction id (BK) as a loan id
    after_kill: bool
    peer: tuple[str, int]  # the device's own address and port of the connection that got it


def log_in(front: int, address: str) -> tuple[SIPClient, tuple[str, int]]:
    """A device on ``address`` connects through HAProxy and logs in: its client and its own
    (address, port); OSError or ConnectionError when HAProxy closes the connection."""
    client = SIPClient.__new__(SIPClient)
    client.buffer = b""
    client.sock = socket.create_connection(("127.0.0.1", front), timeout=10, source_address=(address, 0))
    try:
        reply = client.request(LOGIN)
    except BaseException:
        client.close()
        raise
    assert reply == b"941", reply
    return client, client.sock.getsockname()[:2]


class Device(threading.Thread):
    """A kiosk on its own address (127.0.0.N): logs in through HAProxy, alternates checkout
    and checkin of its item; when the connection breaks it reconnects and sends the request
    whose reply it lost again.  Bounded: ROUND acknowledged transactions after the kill."""

    def __init__(self, front: int, address: str, patron: str, pin: str, item: str,
                 killed: threading.Event) -> None:
        super().__init__(daemon=True)
        self.front, self.address, self.patron, self.pin, self.item = front, address, patron, pin, item
        self.killed = killed
        self.acks: list[Ack] = []
        self.peers: list[tuple[str, int]] = []  # each connection it logged in on
        self.failed_connections = 0
        self.error: BaseException | None = None

    def connect(self) -> tuple[SIPClient, tuple[str, int]]:
        deadline = time.monotonic() + RECONNECT_TIMEOUT
        while True:
            try:
                client, peer = log_in(self.front, self.address)
                self.peers.append(peer)
                return client, peer
            except OSError:  # ConnectionError too: HAProxy closed it
                self.failed_connections += 1
                assert time.monotonic() < deadline, f"{self.address}: no gateway for {RECONNECT_TIMEOUT} s"
                time.sleep(0.1)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # the test thread reports it
            self.error = e

    def _run(self) -> None:
        checkout = f"11NN{DATE}{' ' * 18}AOMAIN|AA{self.patron}|AB{self.item}|AC|AD{self.pin}|"
        checkin = f"09N{DATE}{DATE}APMAIN|AOMAIN|AB{self.item}|AC|"
        client, peer = self.connect()
        kind = "out"
        try:
            for _ in range(100_000):  # bounded; ends after ROUND acknowledged after the kill
                after_kill = self.killed.is_set()
                if after_kill and sum(a.after_kill for a in self.acks) >= ROUND:
                    return
                request = checkout if kind == "out" else checkin
                for _sending in range(SENDINGS):
                    try:
                        reply = client.request(request)
                        break
                    except OSError:  # the reply is lost (ConnectionError too): ask again elsewhere
                        client.close()
                        client, peer = self.connect()
                        after_kill = self.killed.is_set()
                else:
                    raise AssertionError(f"{self.address}: no reply to {request!r} in {SENDINGS} sendings")
                if kind == "out":
                    assert reply.startswith(b"121"), reply
                    loan = next(f[2:] for f in reply[24:].decode().split("|") if f.startswith("BK"))
                    self.acks.append(Ack("out", int(loan.removeprefix("L")), after_kill, peer))
                    kind = "in"
                else:
                    assert reply.startswith(b"101"), reply
                    self.acks.append(Ack("in", None, after_kill, peer))
                    kind = "out"
                if not after_kill and len(self.acks) >= ROUND:
                    time.sleep(0.02)  # the kill comes soon: keep the traffic going, gently
        finally:
            client.close()


def test_shipped_config_is_valid(tmp_path: Path) -> None:
    """``haproxy -c`` accepts etc/haproxy.cfg as shipped, with certificates where it names them."""
    binary = haproxy_binary()
    pki = make_pki(str(tmp_path / "pki"))
    (tmp_path / "gateways-ca.pem").write_bytes(Path(pki.ca.cert_path).read_bytes())
    (tmp_path / "haproxy-client.pem").write_bytes(Path(pki.client.cert_path).read_bytes()
                                                 + Path(pki.client.key_path).read_bytes())
    text = SHIPPED.read_text().replace("/etc/haproxy/certs", str(tmp_path))
    (tmp_path / "haproxy.cfg").write_text(text)
    assert "Configuration file is valid" in check_config(binary, tmp_path / "haproxy.cfg")


def test_kill_9_of_one_gateway_behind_haproxy(tmp_path: Path, shared_database: SharedDatabase) -> None:
    cluster = Cluster(tmp_path, shared_database).start()
    try:
        before = {loan.id for loan in shared_database.loans()}
        killed = threading.Event()
        devices = [Device(cluster.front, f"127.0.0.{11 + n}", patron, pin, item, killed)
                   for n, (patron, pin, item) in enumerate(DEVICES)]
        for device in devices:
            device.start()
        wait_until(lambda: all(len(d.acks) >= ROUND or d.error for d in devices),
                   "the devices' first rounds (they stalled before the kill)", 120)
        # leastconn shared the devices out: both gateways serve some
        held = {name: cluster.logged_in(name) for name in ("gw1", "gw2")}
        assert all(held.values()), held
        victim = cluster.gateways["gw1"]
        database_process = victim.children()
        victim.kill9()
        killed.set()
        # its database process commits what it was given and exits (pipe closed)
        assert wait_gone(database_process) == []
        for device in devices:
            device.join(timeout=120)
        for device in devices:
            assert device.error is None, (device.address, device.error)
            assert not device.is_alive(), device.address
        cluster.haproxy.wait_states({"gw1": "DOWN", "gw2": "UP"})
        loans = [loan for loan in shared_database.loans() if loan.id not in before]
    finally:
        cluster.stop()

    by_id = {loan.id: loan for loan in loans}
    open_per_item = Counter(loan.item for loan in shared_database.loans() if loan.open)
    assert all(n == 1 for n in open_per_item.values()), open_per_item
    for device in devices:
        mine = device.acks
        # every acknowledged checkout is its loan, of this item to this patron
        outs = [a.loan for a in mine if a.kind == "out"]
        for loan_id in outs:
            assert loan_id in by_id, (device.address, loan_id)
            assert (by_id[loan_id].item, by_id[loan_id].patron) == (device.item, device.patron)
        # once: every loan of the item is an acknowledged checkout (a resent checkout is
        # answered with the loan its first sending made, never a second one)
        assert {loan.id for loan in loans if loan.item == device.item} == set(outs), device.address
        # every acknowledged checkin closed the loan before it; the last state is the acknowledged one
        for n, ack in enumerate(mine):
            if ack.kind == "in":
                assert not by_id[mine[n - 1].loan].open, (device.address, mine[n - 1])
        assert [by_id[i].open for i in outs] == [False] * (len(outs) - 1) + [mine[-1].kind == "out"]
        # after the kill: ROUND transactions, all through the surviving gateway
        later = [a for a in mine if a.after_kill]
        assert len(later) >= ROUND, device.address
        assert {a.peer for a in later} <= cluster.logged_in("gw2"), device.address
    # the devices on the killed gateway lost their connection and went on through the other
    on_gw1 = [d for d in devices if set(d.peers) & held["gw1"]]
    assert on_gw1, "no device was on the killed gateway"
    assert all(set(d.peers) & cluster.logged_in("gw2") for d in on_gw1)
    # PROXY v2: every connection a device logged in on is in a gateway's log with the
    # device's own address and port, never HAProxy's
    seen = cluster.logged_in("gw1") | cluster.logged_in("gw2")
    for device in devices:
        assert set(device.peers) <= seen, device.address
    assert all(address != "127.0.0.1" for address, _ in seen), seen


def checkout(item: str) -> str:
    return f"11NN{DATE}{' ' * 18}AOMAIN|AA100001|AB{item}|AC|AD1234|"


def checkin(item: str) -> str:
    return f"09N{DATE}{DATE}APMAIN|AOMAIN|AB{item}|AC|"


def test_a_gateway_refusing_connections_before_its_checks_fail_is_skipped(
        tmp_path: Path, shared_database: SharedDatabase) -> None:
    """``option redispatch 1``: gw1 refuses connections (nothing listens on its SIP port)
    while its check passes (it asks gw2's admin listener), as in the seconds between a
    gateway's death and its failed checks.  leastconn sends every new device to gw1, which
    has none; HAProxy tries gw2 at once, and no device is turned away."""
    cluster = Cluster(tmp_path, shared_database)
    cluster.backends["gw1"] = Backend("gw1", free_port(), cluster.backends["gw2"].admin_port)
    cluster.start(running=("gw2",))
    clients = []
    try:
        for n in range(4):
            clients.append(log_in(cluster.front, f"127.0.0.{21 + n}"))
        assert {peer for _, peer in clients} <= cluster.logged_in("gw2")
        for client, _ in clients:
            client.close()
        # HAProxy logs a connection when it ends; "+1" retries: sent elsewhere after a failed try
        served = re.compile(r"^127\.0\.0\.2\d:\d+ .* sip2_gateways/gw2 .* \d+/\d+/\d+/\d+/(\+?\d+) ", re.MULTILINE)
        wait_until(lambda: len(served.findall(cluster.haproxy.log())) == len(clients), cluster.haproxy.log(), 10)
        assert served.findall(cluster.haproxy.log()).count("+1") >= 3, cluster.haproxy.log()
    finally:
        for client, _ in clients:
            client.close()
        cluster.stop()


def test_taking_a_gateway_out_for_maintenance(tmp_path: Path, shared_database: SharedDatabase) -> None:
    """README.rst's "Taking a host out for maintenance", step by step, through HAProxy's
    runtime API (the ``stats socket`` of etc/haproxy.cfg)."""
    cluster = Cluster(tmp_path, shared_database).start()
    haproxy = cluster.haproxy
    clients: list[SIPClient] = []
    try:
        # leastconn: the first two devices get one gateway each
        (first, first_peer), (second, second_peer) = (log_in(cluster.front, "127.0.0.31"),
                                                      log_in(cluster.front, "127.0.0.32"))
        clients += [first, second]
        on_gw1 = cluster.logged_in("gw1")
        assert len({first_peer, second_peer} & on_gw1) == 1, (on_gw1, first_peer, second_peer)
        device, address = (first, "127.0.0.31") if first_peer in on_gw1 else (second, "127.0.0.32")

        # 1. no new devices for gw1; its connected device carries on
        assert haproxy.command("set server sip2_gateways/gw1 state drain").strip() == ""
        haproxy.wait_states({"gw1": "DRAIN", "gw2": "UP"})
        newcomers = [log_in(cluster.front, f"127.0.0.{33 + n}") for n in range(3)]
        clients += [client for client, _ in newcomers]
        assert {peer for _, peer in newcomers} <= cluster.logged_in("gw2")
        assert device.request(checkout("200001")).startswith(b"121")

        # 2. stop gw1: its connection closes; the device reconnects, to gw2, and carries on
        cluster.gateways["gw1"].stop()
        with pytest.raises(OSError):
            device.request(checkin("200001"))
        device, peer = log_in(cluster.front, address)
        clients.append(device)
        assert peer in cluster.logged_in("gw2")
        assert device.request(checkin("200001")).startswith(b"101")

        # 3. start it again, wait for /readyz, send it devices again: leastconn fills it
        cluster.start_gateway(cluster.backends["gw1"])
        assert haproxy.command("set server sip2_gateways/gw1 state ready").strip() == ""
        haproxy.wait_states({"gw1": "UP", "gw2": "UP"})
        back, peer = log_in(cluster.front, "127.0.0.40")
        clients.append(back)
        assert peer in cluster.logged_in("gw1")
        assert back.request(checkout("200002")).startswith(b"121")
    finally:
        for client in clients:
            client.close()
        cluster.stop()
    assert [loan for loan in shared_database.loans() if loan.open and loan.item in ("200001", "200002")] == [
        Loan(loan.id, "200002", "100001", True) for loan in shared_database.loans() if loan.item == "200002"]


def test_a_gateway_whose_readyz_fails_is_taken_out_and_its_devices_cut_off(
        tmp_path: Path, shared_database: SharedDatabase) -> None:
    """gw1's database process stops answering (SIGSTOP): its /readyz says 503, HAProxy's
    checks fail twice, gw1 is marked down and its devices' connections are cut
    (``on-marked-down shutdown-sessions``); they reconnect to gw2.  gw2's device is untouched."""
    cluster = Cluster(tmp_path, shared_database).start()
    clients: list[SIPClient] = []
    stopped: list[int] = []
    try:
        (first, first_peer), (second, second_peer) = (log_in(cluster.front, "127.0.0.51"),
                                                      log_in(cluster.front, "127.0.0.52"))
        clients += [first, second]
        on_gw1 = cluster.logged_in("gw1")
        assert len({first_peer, second_peer} & on_gw1) == 1, (on_gw1, first_peer, second_peer)
        (cut, address), kept = ((first, "127.0.0.51"), second) if first_peer in on_gw1 else (
            (second, "127.0.0.52"), first)

        stopped = cluster.gateways["gw1"].children()
        assert len(stopped) == 1, stopped
        os.kill(stopped[0], signal.SIGSTOP)
        cluster.haproxy.wait_states({"gw1": "DOWN", "gw2": "UP"})
        status, reason = readiness(cluster.backends["gw1"].admin_port, cluster.pki)
        assert (status, reason) == (503, "the library system does not answer: the database process does not answer\n")
        with pytest.raises(OSError):
            cut.request("9900302.00")
        device, peer = log_in(cluster.front, address)
        clients.append(device)
        assert peer in cluster.logged_in("gw2")
        assert device.request("9900302.00").startswith(b"98Y")
        assert kept.request("9900302.00").startswith(b"98Y")
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
        for client in clients:
            client.close()
        cluster.stop()
    assert "Server sip2_gateways/gw1 is DOWN, reason: Layer7 wrong status, code: 503" in cluster.haproxy.log()
