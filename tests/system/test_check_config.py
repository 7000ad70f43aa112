"""The installed ``sipgateway check-config`` on a good and a bad file: exit status and lines."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.system.process import BIN


def check_config(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "sipgateway"), "check-config", str(path)], capture_output=True, text=True,
                          timeout=60, cwd=path.parent)


def test_check_config_good_and_bad(tmp_path: Path) -> None:
    good = tmp_path / "good.ini"
    good.write_text("[gateway]\ndatabase = sqlite:gw.sqlite3\ndemo = yes\n\n"
                    "[listener:raw]\nlisten = sip:tcp:6001:interface=127.0.0.1:account=sc1\n")
    out = check_config(good)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{good}: OK\n  listener raw: sip:tcp:6001:interface=127.0.0.1 (account sc1)\n")
    assert out.stderr == "" and not (tmp_path / "gw.sqlite3").exists()

    bad = tmp_path / "bad.ini"
    bad.write_text("[gateway]\ndatabase = sqlite:gw.sqlite3\ndemo = maybe\n\n"
                   "[listener:raw]\nlisten = sip:tcp:6001:interface=127.0.0.1:account=sc1\n"
                   "[listener:v6]\nlisten = sip:tcp6:99999:interface=\\:\\:1\n")
    out = check_config(bad)
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.splitlines()
    assert lines == [  # without a good "demo", the database is not known to be created: it must exist
        f"{bad}: [gateway] demo='maybe' must be yes or no",
        f"{bad}: listener v6: port 99999 is out of range (0-65535)",
        f"{bad}: database 'sqlite:gw.sqlite3': gw.sqlite3 does not exist (start-up would stop; create it once "
        "with --init)",
        f"{bad}: listener raw: account='sc1' is not an SC account (declare it in an [account:sc1] section with a "
        "password, or create it in the database)",
    ]
