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

from sipgateway.privileges import acting_as
from tests.system.process import TWISTD, GatewayProcess, SIPClient, free_port

ROOT = Path(__file__).resolve().parents[2]
#: what a non-editable install needs of the checkout
SOURCES = ("sipgateway", "twisted", "setup.cfg", "pyproject.toml", "README.rst")
CHECKOUT = "11NN20260101    120000                  AOMAIN|AA100001|AB200001|AC|AD1234|"


def _user(name: str, group: str) -> tuple[int, int]:
    try:
        return pwd.getpwnam(name).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        pytest.skip(f"no user {name} or group {group} here")


def _system_python() -> str | None:
    """A Python 3.11+ outside any home directory, which other users can run."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if not os.access(candidate, os.X_OK):
            continue
        probe = subprocess.run([candidate, "-c", "import sys, venv; print(sys.version_info >= (3, 11))"],
                               capture_output=True, text=True, timeout=60)
        if probe.stdout.strip() == "True":
            return candidate
    return None


def _readable_by_all(top: Path) -> None:
    for folder, dirs, files in os.walk(top):
        for name in (*dirs, *files):
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | (0o555 if path.is_dir() else 0o444))


@pytest.fixture(scope="session")
def world_readable_venv() -> Iterator[Path]:
    """A virtualenv of the system Python with this project installed, readable by all."""
    if os.geteuid() != 0:
        pytest.skip("needs root (twistd --uid)")
    python = _system_python()
    if python is None:
        pytest.skip("no system Python 3.11+ that other users can run")
    base = Path(tempfile.mkdtemp(prefix="sipgateway-run-as-"))
    try:
        base.chmod(0o755)
        source = base / "source"
        source.mkdir()
        for name in SOURCES:  # a clean copy: no build/ or egg-info of the working tree gets in
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc",
                                                                                  "dropin.cache"))
            else:
                shutil.copy2(src, source / name)
        venv = base / "venv"
        subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
        # this interpreter's pip installs into the other one (pip --python): no pip bootstrap there
        subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                        "--disable-pip-version-check", str(source)], check=True, timeout=600)
        _readable_by_all(venv)
        yield venv
    finally:
        shutil.rmtree(base, ignore_errors=True)


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
