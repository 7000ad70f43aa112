"""Run a load generator (ours or sipload) and read its figures back as a dict."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_FIELD = re.compile(r"(\w+)=(-?[0-9.]+)")
#: fields every run reports, whatever the load generator (sipload prints no more than these)
REQUIRED = ("connections", "failed", "closed_by_server", "idle", "replies", "wrong", "errors", "seconds", "rate",
            "p50_us", "p90_us", "p99_us", "max_us")


class LoadgenError(Exception):
    """A load generator run failed; the message carries its exit status and stderr."""


@dataclass(frozen=True)
class Load:
    """One load generator run: what to send, how, and which replies are right."""

    requests: Sequence[str]
    conns: int
    seconds: float
    login: str | None = None
    idle: int = 0
    codes: str | None = None
    rate: float | None = None
    same_start: bool = False
    offset: int = 0
    window: int | None = None  # connections connecting or logging in at once (loadgen's default: 64)


def parse_text(output: str) -> dict:
    """The ``name=value`` figures of loadgen's (or sipload's) text output, as numbers."""
    figures: dict = {}
    for name, value in _FIELD.findall(output):
        figures[name] = float(value) if "." in value else int(value)
    missing = [name for name in REQUIRED if name not in figures]
    if missing:
        raise LoadgenError(f"load generator output lacks {', '.join(missing)}: {output.strip()[:300]!r}")
    return figures


def command(binary: Path, port: int, load: Load, requests_file: Path, host: str = "127.0.0.1",
            as_json: bool = True) -> list[str]:
    cmd = [str(binary), "-h", host, "-p", str(port), "-c", str(load.conns), "-d", str(load.seconds),
           "-f", str(requests_file)]
    if load.login:
        cmd += ["-l", load.login]
    if load.idle:
        cmd += ["-i", str(load.idle)]
    if load.codes:
        cmd += ["-x", load.codes]
    if load.rate:
        cmd += ["-r", f"{load.rate:g}"]
    if load.same_start:
        cmd.append("-s")
    if load.offset:
        cmd += ["-o", str(load.offset)]
    if load.window:
        cmd += ["-w", str(load.window)]
    if as_json:
        cmd.append("--json")
    return cmd


def run(binary: Path, port: int, load: Load, host: str = "127.0.0.1", as_json: bool = True,
        setup_allowance: float = 180.0, cpus: set[int] | None = None) -> dict:
    """Run ``binary`` once and return its figures.  ``as_json=False`` reads the text lines
    (the only output sipload has); our loadgen's options beyond sipload's must then be unused.
    ``cpus``: the CPUs the load generator may run on (default: any)."""
    with tempfile.NamedTemporaryFile("w", prefix="sipbench-", suffix=".txt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in load.requests))
        f.flush()
        cmd = command(binary, port, load, Path(f.name), host, as_json)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                  timeout=load.seconds + setup_allowance,
                                  preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        except subprocess.TimeoutExpired:
            raise LoadgenError(f"{binary.name} did not finish within {load.seconds + setup_allowance:.0f} s") from None
    if proc.returncode != 0:
        raise LoadgenError(f"{binary.name} exited with status {proc.returncode}: {proc.stderr.strip()[:500]}")
    if as_json:
        try:
            figures = json.loads(proc.stdout)
        except ValueError as e:
            raise LoadgenError(f"{binary.name} printed no JSON ({e}): {proc.stdout.strip()[:300]!r}") from None
    else:
        figures = parse_text(proc.stdout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the load generator's own CPU time (it is the only child waited for in between)
    figures["client_cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 3)
    figures["stderr"] = proc.stderr.strip()
    return figures


def run_tls(binary: Path, port: int, load: Load, mode: str, host: str = "127.0.0.1",
            setup_allowance: float = 60.0) -> dict:
    """tlsload once (``mode`` "sip" for the TLS socket door, "wise" for the http door's
    tunnel), closed loop; its figures as a dict, as ``run`` returns them."""
    with tempfile.NamedTemporaryFile("w", prefix="sipbench-", suffix=".txt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in load.requests))
        f.flush()
        cmd = [str(binary), "-h", host, "-p", str(port), "-c", str(load.conns), "-d", str(load.seconds),
               "-f", f.name, "-m", mode, "--json"]
        if load.login:
            cmd += ["-l", load.login]
        if load.codes:
            cmd += ["-x", load.codes]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                                  timeout=load.seconds + setup_allowance)
        except subprocess.TimeoutExpired:
            raise LoadgenError(f"{binary.name} did not finish within {load.seconds + setup_allowance:.0f} s") from None
    if proc.returncode != 0:
        raise LoadgenError(f"{binary.name} exited with status {proc.returncode}: {proc.stderr.strip()[:500]}")
    try:
        figures = json.loads(proc.stdout)
    except ValueError as e:
        raise LoadgenError(f"{binary.name} printed no JSON ({e}): {proc.stdout.strip()[:300]!r}") from None
    figures["stderr"] = proc.stderr.strip()
    return figures
