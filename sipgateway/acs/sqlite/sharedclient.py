"""A worker's side of the database process shared by the workers (sharedserver.py).

``ProcessRunner`` runs as it does with a database process of its own; only "starting the
process" becomes connecting to the shared one's socket, and the process's pipes and
signals become that connection and ``os.kill`` of the pid its ``Ready`` names.  So its
deadlines, heartbeats, held writes, the lookup of a dead process's writes in the outcome
records (under this runner's token) and its restarts (reconnecting, with the same growing
pauses) are unchanged.  The socket is the parent's, held open while the database process
is restarted: a connection made meanwhile waits in its queue for the new process.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from sipgateway.acs.sqlite.frames import Ready


class SharedDatabaseGone(ConnectionDone):
    """The shared database process ended the connection (it died, or it is done with us)."""

    def __str__(self) -> str:
        return "the database process shared by the workers closed the connection"


class SharedTransport:
    """What the runner and ``DatabaseProtocol`` use of a process transport."""

    def __init__(self) -> None:
        self.stream: Any = None
        #: the shared database process's, from its ``Ready``
        self.pid: int | None = None

    def write(self, data: bytes) -> None:
        self.stream.write(data)

    def closeStdin(self) -> None:  # noqa: N802 - the process transport's name
        """We are stopping: the database process answers what we sent, then closes."""
        self.stream.loseWriteConnection()

    def signalProcess(self, sig: str | int) -> None:  # noqa: N802
        if self.pid is None:
            raise ProcessLookupError("the database process has not said who it is yet")
        os.kill(self.pid, getattr(signal, f"SIG{sig}") if isinstance(sig, str) else sig)


class _ReadyWatch:
    """Stands between ``DatabaseProtocol`` and the runner: learns the pid from ``Ready``."""

    def __init__(self, runner: Any, transport: SharedTransport) -> None:
        self.runner = runner
        self.transport = transport

    def _received(self, frame: object) -> None:
        if isinstance(frame, Ready):
            self.transport.pid = frame.pid or None
        self.runner._received(frame)

    def _ended(self, child: Any, reason: Failure) -> None:
        self.runner._ended(child, reason)


class _Link(Protocol):
    def __init__(self, child: Any, transport: SharedTransport) -> None:
        self.child = child
        self.shared = transport

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        self.shared.stream = self.transport

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        self.child.outReceived(data)

    def connectionLost(self, reason: Failure = None) -> None:  # noqa: N802
        self.child.processEnded(Failure(SharedDatabaseGone()))


def shared_spawn(reactor: Any, path: str):
    """A ``Spawn`` for ``ProcessRunner`` that connects to the shared database process at
    ``path``; an OSError (no socket) makes the runner try again later, as a failed start."""

    def spawn(child: Any, argv: list[str], env: dict[str, str]) -> SharedTransport:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)  # a UNIX socket: at once, queued until the database process accepts
            sock.setblocking(False)
            transport = SharedTransport()
            child.runner = _ReadyWatch(child.runner, transport)
            link = _Link(child, transport)
            reactor.adoptStreamConnection(sock.fileno(), socket.AF_UNIX, Factory.forProtocol(lambda: link))
        finally:
            sock.close()  # the reactor holds its own copy
        child.makeConnection(transport)
        return transport

    return spawn


def share(runner: Any, reactor: Any, path: str, secrets_key: bytes) -> None:
    """Make a worker's ``ProcessRunner`` (not started yet) use the shared database process,
    and its verified-secrets cache the key of that process, so that what it verifies is
    known to this worker's quick reads."""
    runner._spawn_process = shared_spawn(reactor, path)
    runner.ctx.secrets.key = secrets_key
