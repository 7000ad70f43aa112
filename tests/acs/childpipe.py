"""Runs the real database process for ``ProcessRunner`` tests without a running reactor.

``Children`` is the runner's spawn function: it starts the worker with ``subprocess`` and
gives the runner's protocol a transport over the pipes.  The runner's ``Clock`` starts at
the real time (deadlines are compared with the child's clock) and follows it while
``pump_until`` carries bytes between the two processes, in bounded steps; a test may move
it further ahead by hand.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable

from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.task import Clock
from twisted.python.failure import Failure

DEADLINE = 30.0  # seconds: generous for a busy machine; every wait below is bounded by it


class PipeTransport:
    def __init__(self, proc: subprocess.Popen, protocol) -> None:
        self.proc = proc
        self.protocol = protocol
        self.open = {proc.stdout.fileno(): protocol.outReceived, proc.stderr.fileno(): protocol.errReceived}
        self.ended = False
        self.pid = proc.pid

    # the parts of IProcessTransport the runner uses
    def write(self, data: bytes) -> None:
        if self.proc.stdin.closed:
            return
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def closeStdin(self) -> None:  # noqa: N802 - Twisted's name
        if not self.proc.stdin.closed:
            self.proc.stdin.close()

    def signalProcess(self, sig: str | int) -> None:  # noqa: N802 - Twisted's name
        if self.proc.poll() is not None:
            raise ProcessExitedAlready()
        self.proc.send_signal(getattr(signal, f"SIG{sig}") if isinstance(sig, str) else sig)

    def pump(self, timeout: float) -> None:
        """Deliver what the child wrote within ``timeout``; its end, once both pipes closed."""
        if self.ended:
            return
        if self.open:
            with selectors.DefaultSelector() as sel:
                for fd in self.open:
                    sel.register(fd, selectors.EVENT_READ)
                for key, _ in sel.select(timeout):
                    data = os.read(key.fd, 65536)
                    if data:
                        self.open[key.fd](data)
                    else:
                        del self.open[key.fd]
        if not self.open:
            code = self.proc.wait(timeout=DEADLINE)
            self.ended = True
            for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                if not pipe.closed:
                    pipe.close()
            error = ProcessDone(code) if code == 0 else ProcessTerminated(
                exitCode=code if code > 0 else None, signal=-code if code < 0 else None)
            self.protocol.processEnded(Failure(error))


class Children:
    """The spawn function, and the clock the runner schedules on."""

    def __init__(self) -> None:
        self.clock = Clock()
        # the runner's deadlines are epoch seconds, compared with the child's own clock
        self.clock.advance(time.time())
        self.started: list[PipeTransport] = []

    def __call__(self, protocol, argv: list[str], env: dict[str, str]) -> PipeTransport:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env)
        transport = PipeTransport(proc, protocol)
        protocol.makeConnection(transport)
        self.started.append(transport)
        return transport

    @property
    def current(self) -> PipeTransport:
        return self.started[-1]

    def pump_until(self, done: Callable[[], bool], what: str = "the database process") -> None:
        end = time.monotonic() + DEADLINE
        while not done():
            assert time.monotonic() < end, f"{what} did not answer within {DEADLINE} s"
            self.clock.advance(max(0.0, time.time() - self.clock.seconds()))  # the runner's timers, flush
            self.clock.advance(0)
            for child in self.started:
                child.pump(0.01)

    def stop_all(self) -> None:
        for child in self.started:
            if child.proc.poll() is None:
                child.proc.kill()
            child.proc.wait(timeout=DEADLINE)
            for pipe in (child.proc.stdin, child.proc.stdout, child.proc.stderr):
                if not pipe.closed:
                    pipe.close()
