"""Single flight for calls in the reactor thread: identical calls made while the first one
is still out share its answer instead of going out again.

After a restart every device logs in at once with the same few accounts.  The first 93
of an account goes to the database process (a password hash costs milliseconds and never
runs in the reactor thread); the others with the same account and password wait for its
answer, so ten thousand logins are one job and one hash, whatever their timing.  Wrong
passwords share the one "no" the same way; nothing is remembered after the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure


class Flights:
    def __init__(self) -> None:
        self._out: dict[Hashable, list[Deferred]] = {}
        #: calls answered by another call's flight (for tests and figures)
        self.shared = 0

    def __len__(self) -> int:
        return len(self._out)

    def call(self, key: Hashable, start: Callable[[], Deferred]) -> Deferred:
        """``start()``, or a Deferred for the answer of the identical call still out."""
        waiting = self._out.get(key)
        if waiting is not None:
            self.shared += 1
            d: Deferred = Deferred()
            waiting.append(d)
            return d
        first = start()
        if first.called and not isinstance(first.result, Deferred):  # answered at once: nothing to share
            return first
        self._out[key] = waiting = []

        def landed(result: object) -> object:
            del self._out[key]
            for d in waiting:
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(result)
            return result

        return first.addBoth(landed)
