"""A pseudo-terminal pair standing in for a serial cable: the gateway opens the slave by
name (through a symlink, as /dev/serial/by-id/ names are); the test talks on the master."""

from __future__ import annotations

import errno
import os
import tty

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer


@implementer(IReadDescriptor)
class PtyPair:
    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self.master, slave = os.openpty()
        tty.setraw(slave)  # no line discipline in the way: bytes pass as written
        self.slave_name = os.ttyname(slave)
        os.close(slave)   # the gateway opens it by name; the master keeps the pty alive
        os.set_blocking(self.master, False)
        self.received = b""
        self._waiting: tuple[bytes, Deferred] | None = None
        self._reading = False

    # the test's side of the cable
    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_until(self, terminator: bytes = b"\r") -> Deferred:
        """Fires with everything received up to and including ``terminator``."""
        d: Deferred = Deferred()
        self._waiting = (terminator, d)
        if not self._reading:
            self._reading = True
            self.reactor.addReader(self)
        self._check()
        return d

    def _check(self) -> None:
        if self._waiting is None:
            return
        terminator, d = self._waiting
        end = self.received.find(terminator)
        if end >= 0:
            cut = end + len(terminator)
            data, self.received = self.received[:cut], self.received[cut:]
            self._waiting = None
            d.callback(data)

    def close(self) -> None:
        """Pull the cable: the gateway's side gets EIO."""
        if self.master < 0:
            return
        if self._reading:
            self.reactor.removeReader(self)
            self._reading = False
        os.close(self.master)
        self.master = -1

    # IReadDescriptor
    def fileno(self) -> int:
        return self.master

    def doRead(self):
        try:
            chunk = os.read(self.master, 4096)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EINTR):
                return None
            raise
        self.received += chunk
        self._check()
        return None

    def connectionLost(self, reason) -> None:
        self._reading = False

    def logPrefix(self) -> str:
        return "pty-master"


def link(path: str, target: str) -> None:
    """Point the symlink ``path`` at ``target`` (replacing it), like udev does on replug."""
    tmp = path + ".new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, path)


__all__ = ["PtyPair", "link"]
