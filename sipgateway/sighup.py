"""SIGHUP is logged and ignored until the gateway can reload its configuration.

Its default action kills the process without a log line and leaves the pidfile behind, and
``systemctl reload`` (or a closed terminal under ``twistd -n``) sends it.
"""

from __future__ import annotations

import signal

from twisted.application.service import Service
from twisted.logger import Logger

log = Logger()


class IgnoreSIGHUP(Service):
    """Installs the handler when twistd starts the services: after it has daemonized and set
    up its own handlers (none of them SIGHUP's), in the process that keeps running. Put
    before the listeners, it is in place before they listen (privilegedStartService), so no
    client sees a gateway that a SIGHUP still kills. It stays installed while the services
    stop, so that a SIGHUP then does not cut the last commits short."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor
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
        # a signal handler runs between two bytecodes of whatever was running: log from the loop
        self.reactor.callFromThread(log.warn, "SIGHUP received; reload is not supported yet, ignoring it "
                                              "(restart the gateway to apply a new configuration)")
