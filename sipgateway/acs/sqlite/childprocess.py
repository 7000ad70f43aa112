"""Starting the database process and reading what it writes: the command, its
environment, and the ``ProcessProtocol`` that turns its stdout into frames for the runner
(dbprocess.py) and its stderr into log lines."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

import sipgateway
from sipgateway.acs.sqlite.frames import FrameError, FrameReader

log = Logger()

#: the longest stretch of the child's stderr logged as one event
MAX_STDERR_EVENT = 16 * 1024

Spawn = Callable[[ProcessProtocol, list[str], dict[str, str]], Any]


class Listener(Protocol):
    def _received(self, frame: object) -> None: ...

    def _ended(self, child: DatabaseProtocol, reason: Failure) -> None: ...


def worker_command() -> list[str]:
    return [sys.executable, "-m", "sipgateway.acs.sqlite.worker"]


def worker_environment() -> dict[str, str]:
    """Our environment, with the directory this package was imported from first on the
    path, so the child runs this very code even when it is not installed."""
    env = dict(os.environ)
    root = str(Path(sipgateway.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


class DatabaseProtocol(ProcessProtocol):
    def __init__(self, runner: Listener) -> None:
        self.runner = runner
        self.frames = FrameReader()
        self.stderr = b""

    def outReceived(self, data: bytes) -> None:
        try:
            answers = self.frames.feed(data)
        except FrameError as e:
            log.error("database process sent garbage ({e}); stopping it", e=e)
            self.transport.signalProcess("KILL")
            return
        for frame in answers:
            self.runner._received(frame)

    def errReceived(self, data: bytes) -> None:
        text = self.stderr + data
        head, sep, rest = text.rpartition(b"\n")
        if len(rest) > MAX_STDERR_EVENT:  # a line without end: log it in pieces
            head, sep, rest = text, b"\n", b""
        self.stderr = rest
        if sep and head:
            log.error("database process: {text}", text=head.decode("utf-8", "replace"))

    def processEnded(self, reason: Failure) -> None:
        if self.stderr:
            log.error("database process: {text}", text=self.stderr.decode("utf-8", "replace"))
            self.stderr = b""
        self.runner._ended(self, reason)


def spawn_with(reactor) -> Spawn:
    def spawn(protocol: ProcessProtocol, argv: list[str], env: dict[str, str]) -> Any:
        return reactor.spawnProcess(protocol, argv[0], argv, env=env, childFDs={0: "w", 1: "r", 2: "r"})
    return spawn
