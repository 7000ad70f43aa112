"""Every worker's count of its writes, in one small shared file, so that what each worker
keeps in memory stays as current as one process's.

A worker's SQLite ACS empties its read cache when it starts a write and again when the
write is delivered, before the reply leaves (acs/sqlite/readcache.py).  Another worker's
cache would not know, and could answer from before that write for up to its TTL.  So each
write also increments this worker's own 8-byte slot in a file every worker maps; before
every cached answer a worker compares the slots with what it saw last (a copy and a compare
of N x 8 bytes) and empties its cache when any moved.  A read that starts after a write's
reply has left, on any worker, sees that write.  Each slot has one writer, one
``Generation`` per process (its count only grows): no lock, and a change is never missed.

The failed-login and PIN counters work the same way: a worker remembers for a second which
keys have no failure recorded, and forgets that when any worker counts a failure, so a
device cannot try more PINs by landing on another worker.
"""

from __future__ import annotations

import mmap
import os
import struct

SLOT = struct.Struct("<Q")


def create(path: str, count: int) -> None:
    """The file for ``count`` workers, every slot zero (the parent, before starting them)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, bytes(SLOT.size * count))
    finally:
        os.close(fd)


class Generation:
    """One worker's side of the file: ``bump`` its own slot; ``view`` for each thing that
    asks whether anything changed since it last asked."""

    def __init__(self, path: str, index: int) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        self._offset = SLOT.size * (index - 1)
        if not 0 <= self._offset <= len(self._map) - SLOT.size:
            raise ValueError(f"worker {index} has no slot in {path}")
        self._mine = SLOT.unpack_from(self._map, self._offset)[0]

    def bump(self) -> None:
        self._mine += 1
        SLOT.pack_into(self._map, self._offset, self._mine)

    def snapshot(self) -> bytes:
        return self._map[:]

    def view(self) -> View:
        return View(self)

    def close(self) -> None:
        self._map.close()


class View:
    """What one cache needs: ``bump`` (our write) and ``changed`` (any write since last asked)."""

    def __init__(self, generation: Generation) -> None:
        self.generation = generation
        self.bump = generation.bump
        self._seen = generation.snapshot()

    def changed(self) -> bool:
        now = self.generation.snapshot()
        if now == self._seen:
            return False
        self._seen = now
        return True
