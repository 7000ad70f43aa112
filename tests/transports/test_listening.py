"""The listen backlog the service gives each listener reaches listen(): a connection storm
after a restart must not wait for SYN retries behind Twisted's default of 50."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactorClock

from sipgateway.config import load
from sipgateway.service import ACSService, make_service
from sipgateway.transports.backlog import FALLBACK_BACKLOG, default_backlog
from sipgateway.transports.listening import ListenerService
from tests.transports.certs_pki import make_pki


def listened(tmp_path: Path, listen: list[str] | None = None, config: str | None = None) -> dict[int, tuple]:
    """Build the service as twistd would, listen, and return {port: (backlog, interface)}."""
    reactor = MemoryReactorClock()
    top = make_service(load(config, listen=listen, database=f"sqlite:{tmp_path / 'gw.sqlite3'}", demo=True),
                       reactor=reactor)
    try:
        for service in top:
            if isinstance(service, ListenerService):
                service.listen()
    finally:
        next(s for s in top if isinstance(s, ACSService)).acs.close()
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
