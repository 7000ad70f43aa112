"""Start the real ``twistd -n sipgateway`` on free loopback ports and talk to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], what: str, seconds: float = 60.0, every: float = 0.05) -> Any:
    """``check()`` again every ``every`` seconds until it gives something true, which is
    returned; fails the test naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def has_ipv6_loopback() -> bool:
    """Whether ::1 can be bound here (containers without IPv6 cannot)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class GatewayProcess:
    """One twistd process; ``args`` are the sipgateway plugin's options."""

    def __init__(self, workdir: Path, args: list[str], wait_ports: list[int], twistd: str = TWISTD,
                 twistd_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.args = args
        self.twistd = twistd
        self.twistd_args = twistd_args
        self.wait_ports = wait_ports
        self.log_path = workdir / f"twistd-{len(list(workdir.glob('twistd-*.log')))}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> GatewayProcess:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [self.twistd, "-n", "--pidfile=", "--logfile=-", *self.twistd_args, "sipgateway", *self.args],
            cwd=self.workdir, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + START_TIMEOUT
        for port in self.wait_ports:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"twistd exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"twistd did not listen on {port}:\n{self.log()}") from None
                    time.sleep(0.05)
        # twistd opens its ports (privilegedStartService) before it starts the database
        # process (startService): wait for that too, so that start-up is over
        while not self.children():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"twistd started no database process:\n{self.log()}")
            time.sleep(0.01)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        return self.proc.returncode

    def kill9(self) -> None:
        self.stop(signal.SIGKILL)

    def children(self) -> list[int]:
        """The pids of twistd's child processes (its database process)."""
        return children_of(self.proc.pid)


def children_of(pid: int) -> list[int]:
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return pids


def wait_listening(port: int, timeout: float = START_TIMEOUT) -> None:
    """Poll (bounded) until something accepts connections on 127.0.0.1:``port``."""
    end = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


def wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    """The pids still running after up to ``timeout`` seconds (polled, bounded)."""
    def running(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    end = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < end:
        alive = [pid for pid in alive if running(pid)]
        if alive:
            time.sleep(0.05)
    return alive


class SIPClient:
    """A blocking SIP2 client over TCP: one request, one reply, CR-terminated."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""

    def request(self, line: bytes | str, terminator: bytes = b"\r") -> bytes:
        data = line.encode() if isinstance(line, str) else line
        self.sock.sendall(data + terminator)
        return self.read_reply()

    def read_reply(self) -> bytes:
        while b"\r" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed by the gateway; got {self.buffer!r}")
            self.buffer += chunk
        reply, _, self.buffer = self.buffer.partition(b"\r")
        return reply

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SIPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
