"""Session set-up for the system tests: the virtualenv for ``twistd --uid`` is built in
the background from the moment the tests that need it are collected (see user_venv.py)."""

from __future__ import annotations

import os

import pytest

from tests.system import user_venv


def pytest_collection_finish(session: pytest.Session) -> None:
    if os.geteuid() != 0 or user_venv.started is not None:
        return
    if not any("world_readable_venv" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    python = user_venv.system_python()
    if python is not None:
        user_venv.started = user_venv.Builder(python).start()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if user_venv.started is not None:
        user_venv.started.cleanup()
        user_venv.started = None
