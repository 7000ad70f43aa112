"""SIGHUP (``systemctl reload``, a closed terminal) used to kill the gateway silently and
leave its pidfile. It reloads the configuration now: the real twistd, in the foreground and
as a daemon, survives it, says what changed (here nothing), and goes on answering."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.system.process import TWISTD, GatewayProcess, SIPClient, free_port, wait_gone, wait_listening

LOGGED = "Configuration reloaded from the command line (no --config): nothing changed"


def wait_logged(log: Path, text: str, count: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while log.read_text(errors="replace").count(text) < count:
        assert time.monotonic() < end, f"{text!r} not logged {count} times:\n{log.read_text(errors='replace')}"
        time.sleep(0.05)


def answers(port: int) -> None:
    with SIPClient(port) as c:
        assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
        assert c.request("9900302.00").startswith(b"98")


def test_sighup_reloads_in_the_foreground(tmp_path: Path) -> None:
    port = free_port()
    gw = GatewayProcess(tmp_path, ["--listen", f"sip:tcp:{port}:interface=127.0.0.1",
                                   "--database", "sqlite:gw.sqlite3", "--demo"], [port]).start()
    try:
        for n in (1, 2):
            gw.proc.send_signal(signal.SIGHUP)
            wait_logged(gw.log_path, LOGGED, n)
            assert gw.proc.poll() is None
            answers(port)
    finally:
        assert gw.stop() == -signal.SIGTERM  # twistd ends by the signal it was stopped with


def test_sighup_reloads_in_the_daemon(tmp_path: Path) -> None:
    port = free_port()
    out = subprocess.run([TWISTD, "--pidfile=gw.pid", "--logfile=gw.log", "sipgateway", "--listen",
                          f"sip:tcp:{port}:interface=127.0.0.1", "--database", "sqlite:gw.sqlite3", "--demo"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_listening(port)
    daemon = int((tmp_path / "gw.pid").read_text())
    try:
        os.kill(daemon, signal.SIGHUP)
        wait_logged(tmp_path / "gw.log", LOGGED, 1)
        answers(port)
        assert (tmp_path / "gw.pid").read_text().strip() == str(daemon)
    finally:
        os.kill(daemon, signal.SIGTERM)
    assert wait_gone([daemon]) == []
    assert not (tmp_path / "gw.pid").exists()
