"""A real HAProxy for the system tests, configured from the shipped ``etc/haproxy.cfg``.

``derive_config`` keeps every setting of the shipped file that decides how devices are
served (TCP mode, send-proxy-v2, the TLS health checks against ``/readyz``, leastconn,
shutdown-sessions, the timeouts) and replaces only what names this host: addresses,
ports, certificate and socket paths, the lines that need root (user, group, chroot) and
the connection limit (for the descriptor limit a test may have).
Each replacement must match exactly as often as expected, so a change to the shipped
file fails here loudly instead of leaving the tests on a file nobody ships."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SHIPPED = Path(__file__).resolve().parents[2] / "etc" / "haproxy.cfg"
START_TIMEOUT = 30.0


def haproxy_binary() -> str:
    """The haproxy program, or skip: CI (.ci/run) installs Debian's ``haproxy`` package."""
    found = shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin")
    if found is None:
        pytest.skip("haproxy is not installed (Debian: apt-get install haproxy; .ci/run does it)")
    return found


@dataclass
class Backend:
    name: str
    sip_port: int
    admin_port: int


def _replace(text: str, pattern: str, new: str, count: int = 1) -> str:
    result, n = re.subn(pattern, new, text, flags=re.MULTILINE)
    assert n == count, f"etc/haproxy.cfg: expected {count} match(es) of {pattern!r}, found {n}"
    return result


def derive_config(directory: Path, front_port: int, backends: list[Backend]) -> str:
    """The shipped file for this host: HAProxy on 127.0.0.1:``front_port``, the gateways on
    127.0.0.1, certificates in ``directory`` (gateways-ca.pem, haproxy-client.pem), the
    runtime API on ``directory``/admin.sock."""
    text = SHIPPED.read_text()
    for line in ("user", "group", "chroot"):  # root only; HAProxy drops to the user and jail
        text = _replace(text, rf"^\s+{line} .*\n", "")
    # 40,000 connections need 80,000 descriptors: more than a test's hard limit may allow
    text = _replace(text, r"^(\s+maxconn )40000$", r"\g<1>1000")
    text = _replace(text, r"^(\s+stats socket )/run/haproxy/admin\.sock", rf"\g<1>{directory}/admin.sock")
    text = _replace(text, r"^(\s+(?:ca|crt)-base )/etc/haproxy/certs$", rf"\g<1>{directory}", count=2)
    text = _replace(text, r"^(\s+bind ):6001$", rf"\g<1>127.0.0.1:{front_port}")
    # each gateway's admin port is its own here (one host); the shipped file's default-server
    # names the one port every host uses, which a server line's own ``port`` overrides
    text = _replace(text, r"^\s+server gw\d .*\n", "", count=3)
    servers = "".join(f"    server {b.name} 127.0.0.1:{b.sip_port} port {b.admin_port}\n" for b in backends)
    return text.rstrip("\n") + "\n" + servers


def check_config(binary: str, path: Path) -> str:
    """``haproxy -c``: the file is valid, or the assertion shows HAProxy's own words."""
    done = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


class HAProxyProcess:
    """HAProxy in the foreground (``-db``), its log (``log stdout``) in ``haproxy.log``."""

    def __init__(self, binary: str, directory: Path, front_port: int) -> None:
        self.binary, self.directory, self.front_port = binary, directory, front_port
        self.config = directory / "haproxy.cfg"
        self.log_path = directory / "haproxy.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> HAProxyProcess:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary, "-db", "-f", str(self.config)], stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.directory)
        deadline = time.monotonic() + START_TIMEOUT
        while not (self.directory / "admin.sock").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def command(self, line: str) -> str:
        """One command of HAProxy's runtime API (what ``socat stdio admin.sock`` sends)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(str(self.directory / "admin.sock"))
            s.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self, backend: str = "sip2_gateways") -> dict[str, str]:
        """server name -> status (``UP``, ``DOWN``, ``DRAIN``, ``UP 1/3``, ...) from ``show stat``."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        states = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == backend and row.get("svname") not in ("FRONTEND", "BACKEND"):
                states[row["svname"]] = row["status"]
        return states

    def wait_states(self, wanted: dict[str, str], timeout: float = 30.0) -> None:
        """Poll (bounded) until each named server has the wanted status."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.server_states()
            if all(states.get(name) == status for name, status in wanted.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy's servers are {states}, not {wanted}:\n{self.log()}")
            time.sleep(0.1)

    def stop(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
