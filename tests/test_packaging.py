"""Every package of the project is installed: a non-editable install (``pip install .``,
what a system-wide or ``--uid`` deployment uses) ships only the packages setup.cfg lists."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_setup_cfg_lists_every_package() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    listed = {line.strip() for line in cfg["options"]["packages"].splitlines() if line.strip()}
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "sipgateway").rglob("__init__.py")}
    assert found <= listed, f"missing from setup.cfg packages: {sorted(found - listed)}"
    assert "twisted.plugins" in listed
