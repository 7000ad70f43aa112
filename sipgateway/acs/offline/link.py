"""The replay's own upstream connection in pass-through mode, where there is no shared pool:
a pass-through connection logged in as ``[upstream] offline_replay_login``.  Without those
credentials nothing can be replayed: every attempt is "not sent" (the entries stay pending)
and the log says which keys to set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail

from sipgateway.acs import requests as rq
from sipgateway.acs.upstream.errors import Unavailable


class ReplayLink:
    def __init__(self, upstream: Any, login: rq.LoginRequest | None) -> None:
        self.upstream = upstream
        self.login = login
        self._session: Any = None

    def send(self, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
             deadline: float | None) -> Deferred:
        if self.login is None:
            return fail(Unavailable(f"{code} not sent: pass-through mode replays on a connection of its own; set "
                                    "[upstream] offline_replay_login and offline_replay_password", code=code))
        if self._session is not None:
            return self._session._send(code, fixed, fields, deadline)
        session = self.upstream.open_session("offline replay")

        def logged_in(accepted: bool) -> Deferred:
            if not accepted:
                session.close()
                raise Unavailable(f"{code} not sent: the library system refused offline_replay_login", code=code)
            self._session = session
            return session._send(code, fixed, fields, deadline)

        return session.login(self.login, deadline).addCallback(logged_in)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
