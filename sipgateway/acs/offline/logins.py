"""Which device logins are already remembered for offline use, so that a login with the
same credentials as before is not hashed again.

Remembering a login (``Journal.remember_login``) costs a PBKDF2 hash and check, about
10 ms of CPU each, in the journal's thread.  Devices log in on every reconnect, and often
every kiosk of a branch with one account: hashing each time took the CPU from the reactor
and the other processes of a small host in bursts (ten devices reconnecting cost about
100 ms, seen as a p99 of 60-90 ms on the forwarded requests right after).  So the gateway
keeps, per login, a keyed digest of the password last written (key random per process,
never stored), and writes only when it differs; a write already under way for the same
credentials is not started twice.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed


class RememberedLogins:
    def __init__(self, write: Callable[[str, str], Deferred], size: int) -> None:
        #: ``write(login, password)``: remember it in the journal (fires once committed)
        self._write = write
        self._size = size
        self._key = os.urandom(32)
        #: login -> digest of the password last written for it, oldest first
        self._known: OrderedDict[str, bytes] = OrderedDict()
        #: login -> digest being written
        self._writing: dict[str, bytes] = {}

    def remember(self, login: str, password: str) -> Deferred:
        """Fires once the journal holds these credentials for ``login``."""
        digest = hmac.new(self._key, login.encode() + b"\0" + password.encode(), hashlib.sha256).digest()
        if self._known.get(login) == digest:
            self._known.move_to_end(login)
            return succeed(None)
        if self._writing.get(login) == digest:
            return succeed(None)
        self._writing[login] = digest

        def written(result: object) -> object:
            self._done(login, digest)
            self._known[login] = digest
            self._known.move_to_end(login)
            while len(self._known) > self._size:
                self._known.popitem(last=False)
            return result

        def failed(f):  # noqa: ANN001 - a Failure; not remembered, so the next login tries again
            self._done(login, digest)
            return f

        return self._write(login, password).addCallbacks(written, failed)

    def _done(self, login: str, digest: bytes) -> None:
        if self._writing.get(login) == digest:
            del self._writing[login]

    def __len__(self) -> int:
        return len(self._known)
