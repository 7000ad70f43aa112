"""Frames on the pipe between the gateway and its database process.

A frame is a 4-byte big-endian length and a pickle.  The pipe is private to the two
processes (the child's stdin and stdout), so pickle is safe here: nothing else can write
to it.  Gateway → database: a ``Setup`` first, then lists of ``JobSpec``.
Database → gateway: ``Ready`` once the database is open, then an ``Answer`` per batch and a
``Pong`` per heartbeat (the gateway's SIGUSR1, see worker.py).
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sipgateway.acs.sqlite.batch import BatchStats
from sipgateway.acs.sqlite.context import Call
from sipgateway.acs.sqlite.rules import CirculationRules

_LENGTH = struct.Struct(">I")
#: a frame this large is a bug on the other side, not a batch
MAX_FRAME = 256 * 1024 * 1024


class FrameError(Exception):
    """The other side wrote something that is not a frame."""


@dataclass(frozen=True)
class Setup:
    """What the database process needs to open the library: sent once, first."""

    path: str
    currency: str
    rules: CirculationRules
    hash_iterations: int
    cache_size: int
    secrets_key: bytes
    max_batch: int
    #: names this gateway's calls in the outcome table (outcomes.py), with their numbers
    token: str = ""
    #: with --workers: the descriptor of the listening socket on which the workers connect
    #: (sharedserver.py); None: this gateway's stdin and stdout are the only stream
    listen_fd: int | None = None
    #: the password of a PostgreSQL ``path`` (acs/postgresql/target.py), when it has one
    password: str | None = field(default=None, repr=False)


class JobSpec(NamedTuple):
    """One ``Call`` with its number and name, as the database process receives it."""

    number: int
    name: str
    write: bool
    fn: Any
    args: tuple
    terminal: Any
    now: datetime
    #: epoch seconds; a job still waiting when it passes is not run (``DeadlinePassed``)
    deadline: float | None = None

    @classmethod
    def of(cls, number: int, name: str, write: bool, call: Call) -> JobSpec:
        """What goes over the pipe of ``call``: all but its ``ctx``, which each process has."""
        return cls(number, name, write, call.fn, call.args, call.terminal, call.now, call.deadline)


@dataclass
class Answer:
    """One batch done: the values of the jobs that succeeded, as ``outcomes.encode`` made
    them (the same bytes the batch recorded in the database), (number, exception) for the
    others, the secrets verified, the database process's totals so far, and what is wrong
    with the database file."""

    done: bytes
    failed: list[tuple[int, BaseException]] = field(default_factory=list)
    learned: list[bytes] = field(default_factory=list)
    stats: BatchStats = field(default_factory=BatchStats)
    file_problem: str | None = None


@dataclass(frozen=True)
class Ready:
    """The database is open: the gateway may send jobs and heartbeats."""

    device: int
    inode: int
    #: the database process's pid: where a worker sharing it sends its heartbeats
    pid: int = 0


@dataclass(frozen=True)
class Pong:
    """The answer to a heartbeat, from the database process's own thread (it answers while
    a batch runs), with what is wrong with the database file, if anything."""

    file_problem: str | None = None


def encode(obj: object) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def encode_answer(answer: Answer) -> bytes:
    """The answer's frame; a failure that does not pickle (a bug's odd exception) becomes a
    RuntimeError naming it, instead of losing the whole batch."""
    try:
        return encode(answer)
    except Exception:
        fixed = []
        for number, value in answer.failed:
            try:
                pickle.dumps(value)
            except Exception as e:
                value = RuntimeError(f"{type(value).__name__} could not be sent: {e}")
            fixed.append((number, value))
        answer.failed = fixed
        return encode(answer)


class FrameReader:
    """Bytes in, whole decoded frames out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buffer
        buf += data
        frames = []
        start = 0
        while len(buf) - start >= 4:
            (length,) = _LENGTH.unpack_from(buf, start)
            if length > MAX_FRAME:
                raise FrameError(f"frame of {length} bytes")
            end = start + 4 + length
            if len(buf) < end:
                break
            try:
                frames.append(pickle.loads(buf[start + 4:end]))
            except Exception as e:
                raise FrameError(f"undecodable frame: {type(e).__name__}: {e}") from None
            start = end
        if start:
            del buf[:start]
        return frames

    @property
    def buffered(self) -> int:
        return len(self._buffer)
