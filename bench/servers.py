"""Start, watch and stop the servers under test: the ceilings (a server and a relay that
parse nothing) and our twistd gateways."""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CEILING = BENCH_DIR / "ceiling.py"
RELAY = BENCH_DIR / "relay.py"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerError(Exception):
    """A server did not start; the message says why and where its log is."""


def raise_nofile_limit() -> int:
    """Raise this process's open-file limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM the child if the benchmark itself is killed."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Server:
    """A child process serving on ``port``; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, proc: subprocess.Popen, port: int, log: Path | None = None,
                 doors: dict[str, int] | None = None, admin_url: str | None = None) -> None:
        self.name = name
        self.proc = proc
        self.port = port
        self.log = log
        #: the ports of the gateway's other doors ("tls", "https"), when it was started with them
        self.doors = doors or {}
        #: http://127.0.0.1:PORT of its admin listener, when it has one
        self.admin_url = admin_url

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def family(self) -> list[int]:
        """The server's pid and its descendants' (the gateway's database process; with
        --workers, the workers and their database processes)."""
        pids = [self.pid]
        for pid in pids:  # grows while walked: children, then theirs
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as f:
                        pids += [int(p) for p in f.read().split()]
            except (OSError, ValueError):
                continue
        return pids

    def status(self, field: str) -> int | None:
        """A kB figure from /proc/PID/status (VmRSS, VmHWM) summed over the server and its
        children, or None when the server's own cannot be read."""
        total = None
        for pid in self.family():
            value = _status_kb(pid, field)
            if value is not None:
                total = (total or 0) + value
            elif pid == self.pid:
                return None
        return total

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server and its children."""
        total = None
        for pid in self.family():
            try:
                with open(f"/proc/{pid}/stat", encoding="ascii") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime + stime
            except (OSError, ValueError, IndexError):
                if pid == self.pid:
                    return None
        return total

    def wait_quiet(self, limit: float = 10.0, interval: float = 0.2) -> None:
        """Wait (up to ``limit`` s) until the server stops burning CPU, e.g. closing
        10,000 connections of the previous run, so it does not charge the next one."""
        deadline = time.monotonic() + limit
        before = self.cpu_seconds()
        while before is not None and time.monotonic() < deadline:
            time.sleep(interval)
            after = self.cpu_seconds()
            if after is None or after - before <= interval * 0.05:
                return
            before = after

    def log_tail(self, lines: int = 20) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class RSSSampler:
    """Samples a server's VmRSS (with its children's) every ``interval`` s in a thread;
    ``peak_kb`` after ``stop``.
    The gateway's whole-life peak is VmHWM; this one is the peak of one workload."""

    def __init__(self, server: Server, interval: float = 0.1) -> None:
        self.server = server
        self.interval = interval
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while True:
            rss = self.server.status("VmRSS")
            if rss is not None:
                self.peak_kb = max(self.peak_kb, rss)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RSSSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        rss = self.server.status("VmRSS")
        if rss is not None:
            self.peak_kb = max(self.peak_kb, rss)


class Scraper:
    """GETs ``url``/metrics every ``interval`` s in a thread, as Prometheus would (more
    often than its default); nothing when ``url`` is None.  ``scrapes`` and the first
    ``error`` after ``stop``."""

    def __init__(self, url: str | None, interval: float = 1.0) -> None:
        self.url = url
        self.interval = interval
        self.scrapes = 0
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
                    if b"sipgateway_requests_total" not in response.read():
                        raise OSError("no sipgateway_requests_total in the scrape")
                self.scrapes += 1
            except OSError as e:
                self.error = self.error or str(e)

    def __enter__(self) -> Scraper:
        if self.url:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.url:
            self._thread.join()


def wait_for_port(server: Server, timeout: float, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise ServerError(f"{server.name} exited with status {server.proc.returncode} before listening"
                              + (f"; last lines of {server.log}:\n{server.log_tail()}" if server.log else ""))
        try:
            with socket.create_connection((host, server.port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise ServerError(f"{server.name} did not listen on {host}:{server.port} within {timeout:.0f} s"
                      + (f"; see {server.log}" if server.log else ""))


def _start_script(name: str, script: Path, args: Sequence[str], workdir: Path, python: str,
                  timeout: float) -> Server:
    """``python script args`` on a free port (it picks one and prints ``listening on PORT``)."""
    log = workdir / f"{name}.log"
    proc = subprocess.Popen([python, str(script), *args], stdout=subprocess.PIPE, stderr=log.open("wb"),
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    first = proc.stdout.readline().decode(errors="replace") if ready else ""
    if not first.startswith("listening on "):
        proc.kill()
        proc.wait()
        raise ServerError(f"the {name} server did not start: {first.strip() or 'no output'}; "
                          f"{log.read_text(errors='replace').strip()[-500:]}")
    server = Server(name, proc, int(first.split()[2]), log)
    wait_for_port(server, timeout)
    return server


def start_ceiling(workdir: Path, python: str = sys.executable, timeout: float = 30.0) -> Server:
    """bench/ceiling.py on a free port."""
    return _start_script("ceiling", CEILING, ["0"], workdir, python, timeout)


def start_relay(workdir: Path, upstream_port: int, python: str = sys.executable, timeout: float = 30.0) -> Server:
    """bench/relay.py on a free port, relaying to ``upstream_port`` on 127.0.0.1."""
    return _start_script("relay", RELAY, ["0", str(upstream_port)], workdir, python, timeout)


def twistd_command(python: str = sys.executable) -> list[str]:
    """The virtualenv's twistd, or the same entry point through ``python -c``."""
    twistd = Path(python).with_name("twistd")
    if twistd.exists():
        return [str(twistd)]
    return [python, "-c", "import sys; from twisted.scripts.twistd import run; sys.exit(run())"]


def write_gateway_config(path: Path, max_connections: int) -> None:
    """Limits the idle workload needs: every connection comes from 127.0.0.1."""
    path.write_text("; written by bench/run.py for one benchmark run\n"
                    "[gateway]\n"
                    f"max_connections = {max_connections}\n"
                    f"max_connections_per_address = {max_connections}\n", encoding="utf-8")


def tls_listeners(workdir: Path) -> tuple[dict[str, int], list[str]]:
    """Free ports and ``--listen`` arguments for the TLS socket door and the http door over
    TLS, both with a self-signed certificate written into ``workdir``."""
    from bench.tlscert import write_self_signed

    key, cert = write_self_signed(workdir)
    doors = {"tls": free_port(), "https": free_port()}
    tls = f"tls:{{port}}:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    return doors, ["--listen", "sip:" + tls.format(port=doors["tls"]),
                   "--listen", "http:" + tls.format(port=doors["https"])]


def start_gateway(workdir: Path, database: Path | str, extra_args: Sequence[str] = (), python: str = sys.executable,
                  max_connections: int = 30000, timeout: float = 60.0, tls: bool = False,
                  admin: bool = False, name: str = "gateway") -> Server:
    """``twistd -n sipgateway`` on a free loopback port, with the demo fixtures, from this checkout;
    with ``tls`` also the TLS socket door and the http door over TLS (``Server.doors``); with
    ``admin`` its admin listener on another."""
    port = free_port()
    admin_port = free_port() if admin else None
    if admin_port:
        extra_args = [*extra_args, "--admin", f"tcp:{admin_port}:interface=127.0.0.1"]
    config = workdir / "gateway.ini"
    write_gateway_config(config, max_connections)
    log = workdir / "twistd.log"
    doors, door_args = tls_listeners(workdir) if tls else ({}, [])
    cmd = twistd_command(python) + [
        "-n", "--pidfile=", f"--logfile={log}", "sipgateway", "--config", str(config),
        "--listen", f"sip:tcp:{port}:interface=127.0.0.1:backlog=1024", *door_args,
        "--database", database if str(database).startswith("postgresql://") else f"sqlite:{database}", "--demo",
        *extra_args]
    env = dict(os.environ)
    # this checkout's sipgateway and twisted/plugins, whether or not the project is installed
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    output = workdir / "twistd.out"
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=output.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
    server = Server(name, proc, port, log, doors, f"http://127.0.0.1:{admin_port}" if admin_port else None)
    try:
        wait_for_port(server, timeout)
        if "--workers" in extra_args:
            _wait_workers(server, int(extra_args[list(extra_args).index("--workers") + 1]), timeout)
    except ServerError as e:
        raise ServerError(f"{e}\n{output.read_text(errors='replace').strip()[-2000:]}") from None
    return server


def _wait_workers(server: Server, count: int, timeout: float) -> None:
    """The parent listens before its workers run: wait until each says it serves."""
    assert server.log is not None
    deadline = time.monotonic() + timeout
    while server.log.read_text(errors="replace").count(f"of {count} serving") < count:
        if not server.alive() or time.monotonic() > deadline:
            raise ServerError(f"the {count} workers did not all start; see {server.log}")
        time.sleep(0.1)
