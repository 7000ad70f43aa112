"""A virtualenv that any user can run: the system's Python, in a world-readable directory,
with this checkout installed into it (not editable).  ``twistd --uid nobody`` needs one
where the tests' own interpreter lives under /root, which nobody cannot even enter.

Building it is mostly waiting for pip's downloads, so conftest.py starts it in the
background as soon as the tests that need it are collected (``Builder``), and the fixture
waits for it.  ``python -m tests.system.user_venv PYTHON BASE`` is that background job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: what a non-editable install needs of the checkout
SOURCES = ("sipgateway", "twisted", "setup.cfg", "pyproject.toml", "README.rst")
BUILD_TIMEOUT = 900.0


def system_python() -> str | None:
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


def build(python: str, base: Path) -> Path:
    """The virtualenv ``base/venv``."""
    source = base / "source"
    source.mkdir()
    for name in SOURCES:  # a clean copy: no build/ or egg-info of the working tree gets in
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "dropin.cache"))
        else:
            shutil.copy2(src, source / name)
    venv = base / "venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # this interpreter's pip installs into the other one (pip --python): no pip bootstrap there
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--disable-pip-version-check", str(source)], check=True, timeout=BUILD_TIMEOUT)
    _readable_by_all(venv)
    return venv


class Builder:
    """``build`` in a child process, started early, waited for when needed."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.base = Path(tempfile.mkdtemp(prefix="sipgateway-run-as-"))
        self.base.chmod(0o755)
        self.log = self.base / "build.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Builder:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "tests.system.user_venv", self.python, str(self.base)],
                                         cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def wait(self) -> Path:
        assert self.proc is not None
        code = self.proc.wait(timeout=BUILD_TIMEOUT)
        if code != 0:
            raise RuntimeError(f"building the virtualenv failed ({code}):\n{self.log.read_text(errors='replace')}")
        return self.base / "venv"

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)
        shutil.rmtree(self.base, ignore_errors=True)


#: the build conftest.py started for this session, if any
started: Builder | None = None


if __name__ == "__main__":
    build(sys.argv[1], Path(sys.argv[2]))
