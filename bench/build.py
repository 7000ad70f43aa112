"""Compile the C load generators with ``cc -O2``, skipping the work when the binary is newer."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
LOADGEN_SOURCE = BENCH_DIR / "loadgen.c"
TLSLOAD_SOURCE = BENCH_DIR / "tlsload.c"


class BuildError(Exception):
    """The C compiler is missing or refused the source; the message says which and why."""


def compiler() -> str | None:
    """The C compiler to use ($CC, else cc), or None when there is none."""
    cc = os.environ.get("CC", "cc")
    return shutil.which(cc)


def build(source: Path, output: Path, libs: tuple[str, ...] = ()) -> Path:
    """``output`` compiled from ``source`` (linked with ``libs``), rebuilt only when the source is newer."""
    if not source.is_file():
        raise BuildError(f"{source} does not exist")
    if output.is_file() and output.stat().st_mtime >= source.stat().st_mtime:
        return output
    cc = compiler()
    if cc is None:
        raise BuildError(f"no C compiler ({os.environ.get('CC', 'cc')}) on PATH; install gcc or set CC")
    output.parent.mkdir(parents=True, exist_ok=True)
    # a private temporary name, so two builds at once never run a half-written binary
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    proc = subprocess.run([cc, "-O2", "-Wall", "-o", str(tmp), str(source), *libs], capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"{cc} failed on {source}:\n{proc.stderr.strip()}")
    os.replace(tmp, output)
    return output


def build_loadgen(out_dir: Path = OUT_DIR) -> Path:
    return build(LOADGEN_SOURCE, out_dir / "loadgen")


def build_tlsload(out_dir: Path = OUT_DIR) -> Path:
    """The TLS load generator (SIP2 lines or Wise's HTTPS tunnel); needs OpenSSL's headers."""
    return build(TLSLOAD_SOURCE, out_dir / "tlsload", ("-lssl", "-lcrypto", "-lpthread"))
