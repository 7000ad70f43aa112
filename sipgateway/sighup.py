"""SIGHUP reloads the configuration (``systemctl reload``, ``kill -HUP``; see sipgateway/reload/).

Its default action would kill the process without a log line and leave the pidfile behind,
and a closed terminal under ``twistd -n`` sends it too: a reload then reads the same file
and changes nothing.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.logger import Logger

log = Logger()


class ReloadOnSIGHUP(Service):
    """Installs the handler when twistd starts the services: after it has daemonized and set
    up its own handlers (none of them SIGHUP's), in the process that keeps running. Put
    before the listeners, it is in place before they listen (privilegedStartService), so no
    client sees a gateway that a SIGHUP still kills. It stays installed while the services
    stop, so that a SIGHUP then does not cut the last commits short (it is ignored then)."""

    def __init__(self, reactor, reload: Callable[[], Deferred], source: str = "") -> None:
        self.reactor = reactor
        self.reload = reload
        self.source = source
        self.installed = False

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._install()

    def startService(self) -> None:
        super().startService()
        self._install()  # started without privilegedStartService (not by twistd)

    def _install(self) -> None:
        if not self.installed:
            signal.signal(signal.SIGHUP, self._received)
            self.installed = True

    def _received(self, signum: int, frame: object) -> None:
        # a signal handler runs between two bytecodes of whatever was running: act from the loop
        self.reactor.callFromThread(self.hup)

    def hup(self) -> Deferred | None:
        """What a SIGHUP does: reload, unless the gateway is stopping."""
        if not self.running:
            log.info("SIGHUP received while starting or stopping; ignored")
            return None
        log.info("SIGHUP received: reloading the configuration from {source}", source=self.source)
        d = self.reload()
        d.addErrback(lambda failure: log.failure("Reload failed; the configuration in force is kept", failure))
        return d
