"""What the parent tells a worker on its stdin at start: one length-prefixed pickle.

Then stdin stays open and silent: its end of file tells the worker the parent is gone."""

from __future__ import annotations

import os
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any

from sipgateway.config import Config

_LENGTH = struct.Struct(">I")
#: prometheus_client's multiprocess mode: every worker writes its figures there (admin/workers.py)
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
#: the key of the admin listener's port among the ports the parent holds for the workers
ADMIN_PORT = "admin"
#: the largest setup a worker reads (a config is a few kilobytes)
MAX_SETUP = 16 << 20


@dataclass(frozen=True)
class WorkerSetup:
    config: Config = field(repr=False)  # holds passwords and keys
    #: 1..count; worker 1 also serves the listeners that cannot be shared (serial lines)
    index: int
    count: int
    #: listener index (or another key: "admin") -> (descriptor in the worker, address family)
    #: of the socket to adopt
    fds: dict[int | str, tuple[int, int]]
    #: the file of the workers' write counts (generation.py); None: no read cache is shared
    generation: str | None = None
    #: the workers' private directory (parent.RunDirectory): where each listens for its peers
    run_dir: str | None = None
    #: where the config came from (config.options.ConfigSource), read again on SIGHUP
    source: Any = None
    #: the socket of the database process the parent runs for every worker (sqlite:); None:
    #: this worker runs its own (workers/database.py)
    database: str | None = None
    #: the key of that process's verified-secrets cache, which this worker's must share
    secrets_key: bytes | None = field(default=None, repr=False)


def encode_setup(setup: WorkerSetup) -> bytes:
    data = pickle.dumps(setup, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def read_setup(fd: int) -> WorkerSetup:
    """Block until the whole setup has arrived on ``fd``; ValueError when it cannot."""
    (length,) = _LENGTH.unpack(_read_exactly(fd, _LENGTH.size))
    if length > MAX_SETUP:
        raise ValueError(f"setup of {length} bytes is too large")
    setup = pickle.loads(_read_exactly(fd, length))  # from our parent over a private pipe
    if not isinstance(setup, WorkerSetup):
        raise ValueError(f"setup is a {type(setup).__name__}")
    return setup


def _read_exactly(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            raise ValueError("the parent closed the pipe before the setup was complete")
        data += chunk
    return data
