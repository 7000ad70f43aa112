"""The listen backlog the service gives each listener reaches listen(): a connection storm
after a restart must not wait for SYN retries behind Twisted's default of 50. Checking the
listeners before twistd forks finds a port in use without listening on it."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from sipgateway.config import load
from sipgateway.service import make_service
from sipgateway.startup import EmbeddedBackend
from sipgateway.transports.backlog import FALLBACK_BACKLOG, default_backlog
from sipgateway.transports.listening import ListenError, ListenerService, check_listeners
from tests.transports.certs_pki import make_pki


def build(tmp_path: Path, reactor, listen: list[str] | None = None, config: str | None = None):
    return make_service(load(config, listen=listen, database=f"sqlite:{tmp_path / 'gw.sqlite3'}", demo=True),
                        reactor=reactor)


def close(top) -> None:
    next(s for s in top if isinstance(s, EmbeddedBackend)).acs.close()


def listened(tmp_path: Path, listen: list[str] | None = None, config: str | None = None) -> dict[int, tuple]:
    """Build the service as twistd would, listen, and return {port: (backlog, interface)}."""
    reactor = MemoryReactorClock()
    top = build(tmp_path, reactor, listen, config)
    try:
        for service in top:
            if isinstance(service, ListenerService):
                service.listen()
    finally:
        close(top)
    return {port: (backlog, interface) for port, _factory, backlog, interface in reactor.tcpServers}


def test_every_tcp_listener_gets_the_system_backlog_by_default(tmp_path: Path) -> None:
    pki = make_pki(str(tmp_path / "pki"))
    ports = listened(tmp_path, [
        "sip:tcp:6001:interface=127.0.0.1",
        "telnet:tcp:6002",
        r"sip:tcp6:6003:interface=\:\:1",
        f"sip:tls:6009:privateKey={pki.server.key_path}:certKey={pki.server.cert_path}:interface=127.0.0.1",
    ])
    backlog = default_backlog()
    assert backlog > 50
    assert ports == {6001: (backlog, "127.0.0.1"), 6002: (backlog, ""), 6003: (backlog, "::1"),
                     6009: (backlog, "127.0.0.1")}


def test_the_backlog_key_reaches_listen(tmp_path: Path) -> None:
    pki = make_pki(str(tmp_path / "pki"))
    ini = tmp_path / "gw.ini"
    ini.write_text("[listener:raw]\nlisten = sip:tcp:6001:interface=127.0.0.1\nbacklog = 300\n"
                   "[listener:telnet]\nlisten = telnet:tcp:6002:backlog=20\n"
                   f"[listener:tls]\nlisten = sip:tls:6009:privateKey={pki.server.key_path}"
                   f":certKey={pki.server.cert_path}:backlog=4000\n")
    ports = listened(tmp_path, config=str(ini))
    assert {port: backlog for port, (backlog, _) in ports.items()} == {6001: 300, 6002: 20, 6009: 4000}


@pytest.mark.parametrize("content,expected", [("4096\n", 4096), ("128", 128), ("1000000", 65535),
                                              ("0", FALLBACK_BACKLOG), ("lots", FALLBACK_BACKLOG)])
def test_default_backlog_is_somaxconn(tmp_path: Path, content: str, expected: int) -> None:
    path = tmp_path / "somaxconn"
    path.write_text(content)
    assert default_backlog(str(path)) == expected


def test_default_backlog_without_proc(tmp_path: Path) -> None:
    assert default_backlog(str(tmp_path / "missing")) == FALLBACK_BACKLOG == 1024


def test_checking_the_listeners_binds_without_listening(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    top = build(tmp_path, MemoryReactorClock(), [f"sip:tcp:{free}:interface=127.0.0.1"])
    try:
        check_listeners(top)
        with socket.socket() as c, pytest.raises(ConnectionRefusedError):
            c.connect(("127.0.0.1", free))  # nobody can connect before the gateway is ready
        with socket.socket() as other:
            other.bind(("127.0.0.1", free))  # and the port is free again
            other.listen()
            with pytest.raises(ListenError) as e:
                check_listeners(top)
    finally:
        close(top)
    assert str(e.value) == (f"listener sip:tcp:{free}:interface=127.0.0.1: port {free} is already in use on "
                            "127.0.0.1 (another gateway or program listens there)")


class _RecordingReactor(MemoryReactorClock):
    """Records which SIGHUP handler was in place whenever a port started listening."""

    def __init__(self) -> None:
        super().__init__()
        self.sighup_at_listen: list[object] = []

    def listenTCP(self, *args, **kwargs):
        self.sighup_at_listen.append(signal.getsignal(signal.SIGHUP))
        return super().listenTCP(*args, **kwargs)


def test_sighup_is_handled_before_any_listener_listens(tmp_path: Path) -> None:
    """A client that can connect must not find a gateway that SIGHUP still kills."""
    reactor = _RecordingReactor()
    top = build(tmp_path, reactor, ["sip:tcp:6001:interface=127.0.0.1", "telnet:tcp:6002"])
    before = signal.getsignal(signal.SIGHUP)
    try:
        top.privilegedStartService()  # what twistd does after daemonizing, before startService
        handler = signal.getsignal(signal.SIGHUP)
        assert callable(handler) and handler is not before
        assert reactor.sighup_at_listen == [handler, handler]
    finally:
        signal.signal(signal.SIGHUP, before)
        close(top)
