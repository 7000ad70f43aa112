"""``twistd --uid nobody --gid nogroup`` started as root: the database is created, and
written, as nobody.  (It used to be created by root before twistd dropped privileges, so
every checkout failed with "attempt to write a readonly database" while logins worked.)

nobody must be able to run the interpreter: the one these tests run under may live in
/root, so the gateway runs from a virtualenv made with the system's Python in a
world-readable directory, with this project installed into it (not editable), once per
test session.  Skipped when not root or when there is no such Python."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipgateway.acs.sqlite import SQLiteACS
from sipgateway.privileges import acting_as
from tests.system import user_venv
from tests.system.process import TWISTD, GatewayProcess, SIPClient, free_port

CHECKOUT = "11NN20260101    120000                  AOMAIN|AA100001|AB200001|AC|AD1234|"


def _user(name: str, group: str) -> tuple[int, int]:
    try:
        return pwd.getpwnam(name).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        pytest.skip(f"no user {name} or group {group} here")


@pytest.fixture(scope="session")
def world_readable_venv() -> Iterator[Path]:
    """A virtualenv of the system Python with this project installed, readable by all
    (started in the background by conftest.py when these tests were collected)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (twistd --uid)")
    python = user_venv.system_python()
    if python is None:
        pytest.skip("no system Python 3.11+ that other users can run")
    builder = user_venv.started or user_venv.Builder(python).start()
    user_venv.started = builder
    yield builder.wait()   # conftest.py removes it when the session ends


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A directory nobody can write, reachable by nobody (pytest's tmp_path is root-only)."""
    uid, gid = _user("nobody", "nogroup")
    base = Path(tempfile.mkdtemp(prefix="sipgateway-nobody-"))
    try:
        base.chmod(0o755)
        data = base / "data"
        data.mkdir()
        os.chown(data, uid, gid)
        yield data
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])   # real, effective, saved, filesystem
    raise AssertionError(f"no Uid line for {pid}")


def test_twistd_uid_nobody_creates_and_writes_the_database_as_nobody(world_readable_venv: Path,
                                                                    nobody_dir: Path) -> None:
    uid, gid = _user("nobody", "nogroup")
    port = free_port()
    database = nobody_dir / "gw.sqlite3"
    proc = GatewayProcess(nobody_dir, ["--listen", f"sip:tcp:{port}:interface=127.0.0.1",
                                       "--database", f"sqlite:{database}", "--demo"], [port],
                          twistd=str(world_readable_venv / "bin" / "twistd"),
                          twistd_args=("--uid", "nobody", "--gid", "nogroup"))
    proc.start()
    try:
        with SIPClient(port) as c:
            assert c.request("9300CNsc1|COpass1|CPMAIN|") == b"941"
            reply = c.request(CHECKOUT)
            assert reply.startswith(b"121"), (reply, proc.log())
        (worker,) = proc.children()
        assert _uid_of(proc.proc.pid) == uid and _uid_of(worker) == uid
    finally:
        proc.stop()
    owners = {path.name: (path.stat().st_uid, path.stat().st_gid) for path in nobody_dir.glob("gw.sqlite3*")}
    assert owners and set(owners.values()) == {(uid, gid)}, owners
    db = sqlite3.connect(database)
    try:
        assert db.execute("SELECT count(*) FROM loans l JOIN items i ON i.id = l.item_id "
                          "WHERE i.barcode = '200001' AND l.returned_at IS NULL").fetchone()[0] == 1
    finally:
        db.close()
    assert "readonly" not in proc.log() and "database process" not in proc.log()


def test_an_interpreter_the_uid_cannot_run_is_a_one_line_error(nobody_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (twistd --uid)")
    uid, _ = _user("nobody", "nogroup")
    with acting_as(uid, None):
        usable = os.access(sys.executable, os.X_OK, effective_ids=True)
    if usable:
        pytest.skip(f"nobody can run {sys.executable}: nothing to refuse here")
    out = subprocess.run([TWISTD, "-n", "--pidfile=", "--uid", "nobody", "--gid", "nogroup", "sipgateway",
                          "--listen", "sip:tcp:0:interface=127.0.0.1", "--database", "sqlite:gw.sqlite3", "--demo"],
                         capture_output=True, text=True, timeout=60, cwd=nobody_dir)
    assert out.returncode != 0
    text = (out.stdout + out.stderr).strip()
    assert text == (f"sipgateway: --uid {uid}: the Python interpreter {sys.executable} cannot be used by that "
                    "user; the interpreter and the virtualenv must be readable by the user given to --uid "
                    "(install them outside /root, e.g. a venv made with /usr/bin/python3 under /opt)"), text
    assert list(nobody_dir.iterdir()) == []


def test_acting_as_a_user_creates_files_as_that_user_and_gives_root_back(nobody_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    uid, gid = _user("nobody", "nogroup")
    groups = os.getgroups()
    with acting_as(uid, gid):
        assert (os.geteuid(), os.getegid()) == (uid, gid)
        (nobody_dir / "made").write_text("x")
        with pytest.raises(PermissionError):
            Path("/root/.sipgateway-test").write_text("x")
    assert (os.geteuid(), os.getegid(), os.getgroups()) == (0, 0, groups)
    made = (nobody_dir / "made").stat()
    assert (made.st_uid, made.st_gid) == (uid, gid)


def test_a_database_root_made_is_a_one_line_error_for_the_uid(world_readable_venv: Path, nobody_dir: Path) -> None:
    """The file an earlier version created as root: the gateway says so at start-up instead
    of logging devices in and failing every checkout."""
    database = nobody_dir / "gw.sqlite3"
    acs = SQLiteACS.synchronous(str(database), hash_iterations=1000)   # root's file, mode 644
    acs.seed_demo()
    acs.close()
    uid, _ = _user("nobody", "nogroup")
    out = subprocess.run([str(world_readable_venv / "bin" / "twistd"), "-n", "--pidfile=", "--uid", "nobody",
                          "--gid", "nogroup", "sipgateway", "--listen", "sip:tcp:0:interface=127.0.0.1",
                          "--database", f"sqlite:{database}"], capture_output=True, text=True, timeout=60,
                         cwd=nobody_dir)
    assert out.returncode != 0
    text = (out.stdout + out.stderr).strip()
    assert text.startswith(f"sipgateway: --database 'sqlite:{database}': {database} is read-only for uid {uid} "
                           "(attempt to write a readonly database): make the file and its directory writable by "
                           "the user the gateway runs as"), text
    assert "\n" not in text and database.stat().st_uid == 0
