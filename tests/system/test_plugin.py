"""After the README's install, twistd finds the sipgateway plugin, and bad options are
reported clearly (DESIGN.md: editable installs can hide plugins)."""

from __future__ import annotations

import subprocess

from tests.system.process import TWISTD


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
    out = subprocess.run([TWISTD, "-n", "--pidfile=", "sipgateway", "--database", "sqlite:gw.sqlite3", "--listen",
                          "sip:tls:0:privateKey=missing.key:certKey=missing.pem"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "missing.key" in text and "Traceback" not in text
