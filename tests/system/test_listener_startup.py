"""A listener that cannot listen stops the real twistd with one line naming the listener and
the reason, in the foreground and as a daemon (whose parent used to show only the first
100 bytes of a traceback: "... Address a"); the listen backlog reaches the kernel."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.system.process import TWISTD, GatewayProcess, free_port, has_ipv6_loopback
from tests.transports.certs_pki import make_pki

IN_USE = "is already in use on {host} (another gateway or program listens there)"


def start(tmp_path: Path, args: list[str], daemon: bool) -> subprocess.CompletedProcess:
    twistd = [TWISTD, "--pidfile=gw.pid", "--logfile=gw.log"] if daemon else [TWISTD, "-n", "--pidfile="]
    return subprocess.run([*twistd, "sipgateway", *args, "--database", "sqlite:gw.sqlite3", "--demo"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)


def assert_one_line(out: subprocess.CompletedProcess, tmp_path: Path, expected: str) -> None:
    assert out.returncode != 0
    assert (out.stdout + out.stderr).splitlines() == [expected]
    assert not (tmp_path / "gw.pid").exists()


@pytest.fixture
def taken() -> Iterator[Callable[[str], int]]:
    """taken(host) -> a port something else listens on at ``host``."""
    sockets: list[socket.socket] = []

    def take(host: str) -> int:
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sockets.append(s)
        s.bind((host, 0))
        s.listen()
        return s.getsockname()[1]

    yield take
    for s in sockets:
        s.close()


MODES = [pytest.param(False, id="twistd-n"), pytest.param(True, id="daemon")]


@pytest.mark.parametrize("daemon", MODES)
def test_raw_tcp_port_in_use(tmp_path: Path, taken, daemon: bool) -> None:
    port = taken("127.0.0.1")
    listen = f"sip:tcp:{port}:interface=127.0.0.1"
    out = start(tmp_path, ["--listen", listen], daemon)
    assert_one_line(out, tmp_path, f"sipgateway: listener {listen}: port {port} {IN_USE.format(host='127.0.0.1')}")


@pytest.mark.parametrize("daemon", MODES)
def test_telnet_port_in_use_names_the_section(tmp_path: Path, taken, daemon: bool) -> None:
    port = taken("127.0.0.1")
    free = free_port()
    (tmp_path / "gw.ini").write_text(f"[listener:raw]\nlisten = sip:tcp:{free}:interface=127.0.0.1\n"
                                     f"[listener:telnet]\nlisten = telnet:tcp:{port}:interface=127.0.0.1\n")
    out = start(tmp_path, ["--config", "gw.ini"], daemon)
    assert_one_line(out, tmp_path, f"sipgateway: listener telnet (telnet:tcp:{port}:interface=127.0.0.1): "
                                   f"port {port} {IN_USE.format(host='127.0.0.1')}")


@pytest.mark.parametrize("daemon", MODES)
def test_tls_port_in_use(tmp_path: Path, taken, daemon: bool) -> None:
    pki = make_pki(str(tmp_path / "pki"))
    port = taken("127.0.0.1")
    listen = f"sip:tls:{port}:privateKey={pki.server.key_path}:certKey={pki.server.cert_path}:interface=127.0.0.1"
    (tmp_path / "gw.ini").write_text(f"[listener:tls]\nlisten = {listen}\n")
    out = start(tmp_path, ["--config", "gw.ini"], daemon)
    assert_one_line(out, tmp_path, f"sipgateway: listener tls ({listen}): port {port} "
                                   f"{IN_USE.format(host='127.0.0.1')}")


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")
@pytest.mark.parametrize("daemon", MODES)
def test_ipv6_port_in_use(tmp_path: Path, taken, daemon: bool) -> None:
    port = taken("::1")
    listen = rf"sip:tcp:{port}:interface=\:\:1"
    out = start(tmp_path, ["--listen", listen], daemon)
    assert_one_line(out, tmp_path, f"sipgateway: listener {listen}: port {port} {IN_USE.format(host='::1')}")


@pytest.mark.parametrize("listen,reason", [
    ("sip:tcp:70000:interface=127.0.0.1", "port 70000 is out of range (0-65535)"),
    ("telnet:tcp:-1", "port -1 is out of range (0-65535)"),
    ("sip:tcp:{port}:interface=192.0.2.1", "interface 192.0.2.1 is not an address of this host"),
    ("sip:tcp:{port}:interface=1.2.3.999",
     "interface '1.2.3.999' is not an IP address of this host (Name or service not known)"),
])
def test_bad_port_or_interface(tmp_path: Path, listen: str, reason: str) -> None:
    listen = listen.format(port=free_port())
    assert_one_line(start(tmp_path, ["--listen", listen], False), tmp_path,
                    f"sipgateway: listener {listen}: {reason}")


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 here")
def test_ipv6_interface_of_another_host_as_a_daemon(tmp_path: Path) -> None:
    listen = rf"sip:tcp:{free_port()}:interface=2001\:db8\:\:1"
    assert_one_line(start(tmp_path, ["--listen", listen], True), tmp_path,
                    f"sipgateway: listener {listen}: interface 2001:db8::1 is not an address of this host")


# -- backlog ------------------------------------------------------------------------------

def listen_queue(port: int) -> int:
    """Send-Q of the listening socket on ``port``: for a listener, its backlog."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10,
                         check=True).stdout.split()
    assert out[0] == "LISTEN", out
    return int(out[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_the_kernel_gets_the_backlog(tmp_path: Path) -> None:
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    default, configured = free_port(), free_port()
    gw = GatewayProcess(tmp_path, ["--listen", f"sip:tcp:{default}:interface=127.0.0.1",
                                   "--listen", f"telnet:tcp:{configured}:interface=127.0.0.1:backlog=77",
                                   "--database", "sqlite:gw.sqlite3", "--demo"], [default, configured]).start()
    try:
        assert listen_queue(default) == min(somaxconn, 65535)
        assert listen_queue(configured) == min(77, somaxconn)
    finally:
        gw.stop()
