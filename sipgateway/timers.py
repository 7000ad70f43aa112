"""A connection's two clocks: how long it may stay silent, and how long it has to log in.

The idle timer restarts at every request; 0 means never.  The login timer runs from the
connection until the first login; 0 means never.  When one runs out, its callback closes
the connection (the session decides what to log).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IReactorTime


class ConnectionTimers:
    __slots__ = ("_clock", "idle_timeout", "_on_idle", "_on_login", "_idle", "_login")

    def __init__(self, clock: IReactorTime, idle_timeout: float, login_timeout: float,
                 on_idle: Callable[[], None], on_login: Callable[[], None]) -> None:
        self._clock = clock
        self.idle_timeout = idle_timeout
        self._on_idle, self._on_login = on_idle, on_login
        self._idle: Any = None
        self._login: Any = clock.callLater(login_timeout, self._login_ran_out) if login_timeout > 0 else None
        self.touch()

    def touch(self) -> None:
        """A request arrived: the idle time starts again."""
        if self.idle_timeout <= 0:
            return
        if self._idle is not None and self._idle.active():
            self._idle.reset(self.idle_timeout)
        else:
            self._idle = self._clock.callLater(self.idle_timeout, self._idle_ran_out)

    def logged_in(self, idle_timeout: float | None) -> None:
        """No more login timer; the account's idle timeout (None: keep the listener's)."""
        _cancel(self._login)
        self._login = None
        if idle_timeout is not None and idle_timeout != self.idle_timeout:
            self.idle_timeout = idle_timeout
            _cancel(self._idle)
            self._idle = None
            self.touch()

    def stop(self) -> None:
        _cancel(self._idle)
        _cancel(self._login)
        self._idle = self._login = None

    def _idle_ran_out(self) -> None:
        self._idle = None
        self._on_idle()

    def _login_ran_out(self) -> None:
        self._login = None
        self._on_login()


def _cancel(call: Any) -> None:
    if call is not None and call.active():
        call.cancel()
