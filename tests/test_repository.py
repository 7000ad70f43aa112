"""The repository stands alone and stays readable: nothing in it points to a document it
does not hold, and no module of the gateway grows past what one reader can hold."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: documents that were notes for the developers, outside the repository
OUTSIDE = ("DESIGN" + ".md", "REFERENCE" + ".md", "../" + "shared")
MAX_MODULE_LINES = 450


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = []
    for name in names.splitlines():
        path = ROOT / name
        if path.suffix in {".py", ".rst", ".md", ".ini", ".cfg", ".toml", ".c", ".service", ""} and \
                path.is_file():
            files.append(path)
    return files


def test_nothing_points_to_a_document_outside_the_repository() -> None:
    offenders = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        offenders += [f"{path.relative_to(ROOT)}: {word}" for word in OUTSIDE if word in text]
    assert offenders == []


def test_no_module_of_the_gateway_is_over_450_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "sipgateway").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}
    assert len((ROOT / "sipgateway" / "session.py").read_text(encoding="utf-8").splitlines()) < 400
