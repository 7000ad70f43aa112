"""etc/sipgateway.service: systemd accepts it (``systemd-analyze verify`` where systemd is
installed) and it says what the README promises: twistd in the foreground, reload by
SIGHUP after a check, a user of its own, hardening with the state directory writable, and
the upstream password through LoadCredential."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

UNIT = Path(__file__).parent.parent / "etc" / "sipgateway.service"
INSTALLED = "/opt/sipgateway/bin/"


def read_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (systemd allows a key more than once: ExecReload)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[section][key.strip()].append(value.strip())
    return sections


def test_the_unit_runs_twistd_reloads_by_hup_and_is_hardened() -> None:
    unit = read_unit(UNIT.read_text())
    service = unit["Service"]
    start = service["ExecStart"][0].split()
    assert start[0] == INSTALLED + "twistd" and "--nodaemon" in start and "--pidfile=" in start
    assert start[start.index("sipgateway") + 1:] == ["--config", "/etc/sipgateway/sipgateway.ini"]
    assert service["ExecReload"] == [INSTALLED + "sipgateway check-config /etc/sipgateway/sipgateway.ini",
                                     "/bin/kill -HUP $MAINPID"]
    assert service["User"] == ["sipgateway"] and service["Group"] == ["sipgateway"]
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                       ("ProtectHome", "yes")):
        assert service[key] == [value], key
    # ProtectSystem=strict leaves only the state directory writable: the gateway runs there
    assert service["StateDirectory"] == ["sipgateway"]
    assert service["WorkingDirectory"] == ["/var/lib/sipgateway"]
    assert "ReadWritePaths" not in service
    credential, _, source = service["LoadCredential"][0].partition(":")
    assert source == f"/etc/sipgateway/{credential}"
    assert f"password_file = %d/{credential}" in UNIT.read_text()  # what the config names
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify_accepts_it(tmp_path: Path) -> None:
    # verify checks that the programs exist: point them at this environment's
    bin_dir = str(Path(sys.executable).parent) + "/"
    unit = tmp_path / "sipgateway.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, bin_dir))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert [line for line in out.stderr.splitlines() if "sipgateway.service" in line] == []
