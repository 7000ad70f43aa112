"""The parent's side of the worker processes: start them, relay their log events, forward
SIGHUP, start a dead one again with growing pauses, stop them with the gateway."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger, LogLevel, eventFromJSON, globalLogPublisher
from twisted.python.failure import Failure

import sipgateway
from sipgateway.config import Config
from sipgateway.workers.setup import WorkerSetup, encode_setup

log = Logger()

#: waits before starting a dead worker again; the last one repeats
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
#: a worker that ran this long (seconds) before it died starts the backoff afresh
STABLE_AFTER = 60.0
#: how long stopping waits for the workers (each lets its database process commit) before killing them
STOP_TIMEOUT = 45.0
#: the longest stretch of a worker's output kept while waiting for the end of its line
MAX_LINE = 1 << 20
#: the first descriptor number of the adopted sockets in a worker
FIRST_FD = 3

Spawn = Callable[[ProcessProtocol, str, list[str], dict[str, str], dict[int, Any]], Any]


def worker_argv() -> list[str]:
    return [sys.executable, "-m", "sipgateway.workers.child"]


def worker_env(extra: dict[str, str]) -> dict[str, str]:
    """Our environment, with the directory this package was imported from first on the path
    (the worker runs this very code even when it is not installed), and ``extra``."""
    env = dict(os.environ)
    root = str(Path(sipgateway.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


@dataclass(eq=False)
class Slot:
    """Worker number ``index``, through its restarts."""

    index: int
    protocol: WorkerProtocol | None = None
    started_at: float = 0.0
    #: deaths in a row without a stable run: picks the next restart delay
    failures: int = 0
    restart: Any = None
    ended: list[Deferred] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.protocol.pid if self.protocol is not None else None


class WorkerProtocol(ProcessProtocol):
    """One worker process: its stdout carries its log events as JSON lines (published here
    as ours, with ``log_system`` naming the worker), its stderr plain text (logged as errors)."""

    def __init__(self, supervisor: Supervisor, slot: Slot) -> None:
        self.supervisor = supervisor
        self.slot = slot
        self.pid: int | None = None
        self._out = b""
        self._err = b""

    def connectionMade(self) -> None:  # noqa: N802 - Twisted's name
        self.pid = self.transport.pid

    @property
    def system(self) -> str:
        return f"worker {self.slot.index} pid {self.pid}"

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self._out = self._lines(self._out + data, self._event)

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self._err = self._lines(self._err + data, self._text)

    def _lines(self, data: bytes, each: Callable[[bytes], None]) -> bytes:
        *lines, rest = data.split(b"\n")
        if len(rest) > MAX_LINE:  # a line without end: taken as it is
            lines.append(rest)
            rest = b""
        for line in lines:
            if line.strip(b"\x1e \r"):
                each(line)
        return rest

    def _event(self, line: bytes) -> None:
        try:
            event = eventFromJSON(line.strip(b"\x1e").decode("utf-8"))
            if not isinstance(event, dict) or "log_level" not in event:
                raise ValueError("not a log event")
        except (ValueError, UnicodeDecodeError, json.JSONDecodeError):
            self._text(line)  # a stray print(): logged, never lost
            return
        event["log_system"] = self.system
        globalLogPublisher(event)

    def _text(self, line: bytes) -> None:
        log.emit(LogLevel.error, "{text}", text=line.decode("utf-8", "replace"), log_system=self.system)

    def processEnded(self, reason: Failure) -> None:  # noqa: N802
        for rest, each in ((self._out, self._event), (self._err, self._text)):
            if rest.strip():
                each(rest)
        self._out = self._err = b""
        self.supervisor._ended(self.slot, self, reason)


class Supervisor(Service):
    """Keeps ``count`` workers running while the service runs."""

    def __init__(self, reactor, config: Config, ports: dict[int, Any], *, spawn: Spawn | None = None,
                 env: dict[str, str] | None = None, delays: tuple[float, ...] = RESTART_DELAYS,
                 on_death: Callable[[int], None] | None = None, shared: Any = None) -> None:
        self.reactor = reactor
        self.config = config
        #: where the config came from, handed to each worker for its reloads (make_parent sets it)
        self.source = None
        #: listener index (or another key, such as "admin") -> the parent's HeldPort (fileno, family)
        self.ports = ports
        self.spawn = spawn if spawn is not None else self._spawn_process
        self.env = env or {}
        self.delays = delays
        self.on_death = on_death
        #: the workers' private directory (parent.RunDirectory): their metrics and write counts
        self.shared = shared
        self.slots = [Slot(i) for i in range(1, config.workers + 1)]
        self.stopping = False
        self._hup_installed = False

    # --- start and stop ---------------------------------------------------------------------

    def privilegedStartService(self) -> None:  # noqa: N802
        super().privilegedStartService()
        self._install_hup()

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self._install_hup()  # started without privilegedStartService (not by twistd)
        self.stopping = False
        for slot in self.slots:
            self._start(slot)

    def stopService(self) -> Deferred:  # noqa: N802
        super().stopService()
        self.stopping = True
        waits = []
        for slot in self.slots:
            if slot.restart is not None and slot.restart.active():
                slot.restart.cancel()
            slot.restart = None
            if slot.protocol is not None:
                d: Deferred = Deferred()
                slot.ended.append(d)
                waits.append(d)
                self._signal(slot, "TERM")  # each worker stops its listeners and its database process
        if not waits:
            return succeed(None)
        kill = self.reactor.callLater(STOP_TIMEOUT, self._kill_all)
        done = DeferredList(waits)
        done.addBoth(lambda _: kill.cancel() if kill.active() else None)
        return done

    def when_stopped(self) -> Deferred:
        """Fires once every worker running now has exited (what stops after them waits)."""
        waits = []
        for slot in self.slots:
            if slot.protocol is not None:
                d: Deferred = Deferred()
                slot.ended.append(d)
                waits.append(d)
        return DeferredList(waits)

    def _kill_all(self) -> None:
        for slot in self.slots:
            if slot.protocol is not None:
                log.error("worker {n} (pid {pid}) did not stop within {s:.0f} s; killing it", n=slot.index,
                          pid=slot.pid, s=STOP_TIMEOUT)
                self._signal(slot, "KILL")

    # --- one worker -------------------------------------------------------------------------

    def _start(self, slot: Slot) -> None:
        slot.restart = None
        if self.stopping:
            return
        fds: dict[int | str, tuple[int, int]] = {}
        child_fds: dict[int, Any] = {0: "w", 1: "r", 2: "r"}
        for n, (index, port) in enumerate(sorted(self.ports.items(), key=lambda item: str(item[0]))):
            fds[index] = (FIRST_FD + n, port.family())
            child_fds[FIRST_FD + n] = port.fileno()
        protocol = WorkerProtocol(self, slot)
        shared = self.shared
        env = {**self.env, **shared.env} if shared is not None else self.env
        try:
            self.spawn(protocol, worker_argv()[0], worker_argv(), worker_env(env), child_fds)
        except OSError as e:
            log.error("cannot start worker {n}: {e}", n=slot.index, e=e)
            self._schedule(slot)
            return
        setup = WorkerSetup(self.config, slot.index, len(self.slots), fds,
                            shared.generation if shared is not None else None,
                            shared.path if shared is not None else None, self.source,
                            getattr(shared, "database", None), getattr(shared, "secrets_key", None))
        protocol.transport.write(encode_setup(setup))  # stdin then stays open: its end tells the worker we died
        slot.protocol = protocol
        slot.started_at = self.reactor.seconds()
        log.info("started worker {n} of {count} (pid {pid})", n=slot.index, count=len(self.slots), pid=protocol.pid)

    def _spawn_process(self, protocol, executable, argv, env, child_fds):
        return self.reactor.spawnProcess(protocol, executable, argv, env=env, childFDs=child_fds)

    def _ended(self, slot: Slot, protocol: WorkerProtocol, reason: Failure) -> None:
        if protocol is not slot.protocol:
            return
        slot.protocol = None
        if protocol.pid is not None:
            for told in (self.on_death, getattr(self.shared, "worker_died", None)):
                if told is not None:
                    told(protocol.pid)
        waiters, slot.ended = slot.ended, []
        for d in waiters:
            d.callback(None)
        if self.stopping:
            return
        how = "exited" if reason.check(ProcessDone) else str(reason.value)
        if self.reactor.seconds() - slot.started_at >= STABLE_AFTER:
            slot.failures = 0
        log.error("worker {n} (pid {pid}) stopped unexpectedly ({how}); the other workers serve meanwhile",
                  n=slot.index, pid=protocol.pid, how=how)
        self._schedule(slot)

    def _schedule(self, slot: Slot) -> None:
        delay = self.delays[min(slot.failures, len(self.delays) - 1)]
        slot.failures += 1
        log.info("starting worker {n} again in {delay:g} s", n=slot.index, delay=delay)
        slot.restart = self.reactor.callLater(delay, self._start, slot)

    def _signal(self, slot: Slot, sig: str) -> None:
        try:
            slot.protocol.transport.signalProcess(sig)
        except Exception:  # already gone; processEnded follows
            pass

    # --- SIGHUP -------------------------------------------------------------------------------

    def _install_hup(self) -> None:
        if not self._hup_installed:
            signal.signal(signal.SIGHUP, self._hup_received)
            self._hup_installed = True

    def _hup_received(self, signum: int, frame: object) -> None:
        # a signal handler runs between two bytecodes of whatever was running: act from the loop
        self.reactor.callFromThread(self.forward_hup)

    def forward_hup(self) -> None:
        """Pass SIGHUP on to every running worker: each acts on it as a single gateway does."""
        live = [slot for slot in self.slots if slot.protocol is not None]
        log.info("SIGHUP received; forwarding it to {n} workers (pids {pids})", n=len(live),
                 pids=", ".join(str(slot.pid) for slot in live))
        for slot in live:
            self._signal(slot, "HUP")

    @property
    def pids(self) -> dict[int, int]:
        """Worker number -> process id, of the workers running now."""
        return {slot.index: slot.pid for slot in self.slots if slot.pid is not None}

