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
    """Installs the handler when the services start: after twistd has daemonized and set up
    its own handlers, in the process that keeps running. It stays installed while the
    services stop, so that a SIGHUP then does not cut the last commits short."""

    def __init__(self, reactor) -> None:
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()
        signal.signal(signal.SIGHUP, self._received)

    def _received(self, signum: int, frame: object) -> None:
        # a signal handler runs between two bytecodes of whatever was running: log from the loop
        self.reactor.callFromThread(log.warn, "SIGHUP received; reload is not supported yet, ignoring it "
                                              "(restart the gateway to apply a new configuration)")
