"""``/readyz``: ready when every listener is listening and the library system answers.

Listeners are looked up in the gateway's service collection at every check, so listeners
added or removed while it runs are judged as they are then.  The backend says whether it
can serve by ``unready()`` (a one-line reason, or None), if it has one: the embedded one
asks its database process and checks its file (acs/sqlite/health.py); a backend without
it counts as answering.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.python.failure import Failure

from sipgateway.transports.listening import ListenerService


class AdminListenerService(ListenerService):
    """The admin listener itself: not one of the listeners readiness is about."""


def listening(service: ListenerService) -> bool:
    """The service is running and its endpoint has given it a port."""
    waiting = service._waitingForPort  # Twisted's: the Deferred of the endpoint's listen
    if not service.running or waiting is None or not waiting.called:
        return False
    result = waiting.result
    return result is not None and not isinstance(result, Failure)


class Readiness:
    def __init__(self, services: Iterable[Any], backend: Any = None) -> None:
        #: the gateway's top service collection (iterated at each check)
        self.services = services
        self.backend = backend

    def listeners(self) -> list[ListenerService]:
        return [s for s in self.services if isinstance(s, ListenerService) and not isinstance(s, AdminListenerService)]

    def listener_names(self) -> list[str]:
        return [s.factory.listener if hasattr(s.factory, "listener") else s.label for s in self.listeners()]

    def acs_problem(self) -> str | None:
        unready = getattr(self.backend, "unready", None)
        return unready() if unready is not None else None

    def problem(self) -> str | None:
        """Why the gateway is not ready, in one line, or None."""
        for service in self.listeners():
            if not listening(service):
                return f"listener {service.label} is not listening"
        why = self.acs_problem()
        return None if why is None else f"the library system does not answer: {why}"
