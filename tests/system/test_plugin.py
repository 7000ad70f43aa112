"""After the README's install, twistd finds the sipgateway plugin, and bad options are
reported clearly (setuptools' default editable install hides plugins from twistd)."""

from __future__ import annotations

import os
import signal
import subprocess

from tests.system.process import TWISTD, SIPClient, children_of, free_port, wait_gone, wait_listening


def test_twistd_lists_the_sipgateway_plugin() -> None:
    out = subprocess.run([TWISTD, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "sipgateway" in out.stdout


def test_plugin_help_shows_the_contract_options() -> None:
    out = subprocess.run([TWISTD, "sipgateway", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for option in ("--config", "--listen", "--database", "--demo"):
        assert option in out.stdout


def test_bad_listen_option_names_the_option(tmp_path) -> None:
    out = subprocess.run([TWISTD, "-n", "--pidfile=", "sipgateway", "--listen", "bogus"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0
    assert "--listen: 'bogus' is not KIND:ENDPOINT" in out.stdout + out.stderr


def test_unusable_database_is_a_one_line_error(tmp_path) -> None:
    out = subprocess.run([TWISTD, "-n", "--pidfile=", "sipgateway", "--listen", "sip:tcp:0:interface=127.0.0.1",
                          "--database", "sqlite:/nonexistent/dir/gw.sqlite3"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "sipgateway: --database" in text and "Traceback" not in text


def test_missing_tls_key_names_the_file(tmp_path) -> None:
    out = subprocess.run([TWISTD, "-n", "--pidfile=", "sipgateway", "--database", "sqlite:gw.sqlite3", "--init",
                          "--listen", "sip:tls:0:privateKey=missing.key:certKey=missing.pem"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "missing.key" in text and "Traceback" not in text


def test_as_a_daemon_the_database_process_starts_after_the_fork_and_stops_with_twistd(tmp_path) -> None:
    """Without -n twistd forks after building the service: the database process must be
    started by the daemon (a thread or child from before the fork would be lost)."""
    port = free_port()
    out = subprocess.run([TWISTD, "--pidfile=gw.pid", "--logfile=gw.log", "sipgateway", "--listen",
                          f"sip:tcp:{port}:interface=127.0.0.1", "--database", "sqlite:gw.sqlite3", "--demo"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    wait_listening(port)
    daemon = int((tmp_path / "gw.pid").read_text())
    children: list[int] = []
    try:
        with SIPClient(port) as c:
            assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
            reply = c.request("11NN20260101    120000                  AOMAIN|AA100001|AB200001|AC|AD1234|")
            assert reply.startswith(b"121"), reply  # a write: only the database process can answer it
        children = children_of(daemon)
        assert len(children) == 1
    finally:
        os.kill(daemon, signal.SIGTERM)
    assert wait_gone([daemon, *children]) == []
    assert "database process" not in (tmp_path / "gw.log").read_text()
