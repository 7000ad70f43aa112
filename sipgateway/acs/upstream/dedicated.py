"""A device's own upstream connection (pass-through mode).

In pass-through mode each device that logs in to the gateway gets its own connection to
the library system, logged in with the device's own 93 (or the ``upstream_login`` of the
account it is bound to); the upstream's 94 answers the device. The connection serves
that device only, is opened again (and logged in again with the same 93) by the next
request if it drops, and is closed when the device goes (``close``).
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.python.failure import Failure

from sipgateway.acs.upstream.connection import UpstreamConnection
from sipgateway.acs.upstream.errors import LoginRefused
from sipgateway.acs.upstream.pool import Outcome, UpstreamPool
from sipgateway.acs.upstream.url import UpstreamConfig
from sipgateway.exchange import Body
from sipgateway.sip2 import Message

#: requests a device may have waiting on its connection (a device sends one at a time)
DEDICATED_QUEUE = 4


class Dedicated:
    """One device's upstream connection, after its login was answered."""

    def __init__(self, pool: UpstreamPool, login_reply: Message | None) -> None:
        self._pool = pool
        #: the upstream's 94 to the device's 93, or None when it closed the connection instead
        self.login_reply = login_reply

    @property
    def logged_in(self) -> bool:
        """The upstream accepted the device's login (and has not refused it since)."""
        return self.login_reply is not None and self.login_reply.fixed.get("ok") == "1" \
            and self._pool.refused is None

    def request(self, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
                deadline: float | None = None) -> Deferred[Message]:
        """Forward one of the device's requests; the errors are those of ``UpstreamPool.request``."""
        return self._pool.request(code, fixed, fields, deadline)

    def close(self) -> Deferred:
        return self._pool.stop()


def open_dedicated(config: UpstreamConfig, clock: IReactorTime, endpoint: IStreamClientEndpoint, login: Body, *,
                   deadline: float | None = None, on_outcome: list[Outcome] | None = None) -> Deferred[Dedicated]:
    """Connect and send the device's 93 (``login``: its fixed and variable fields).

    Fires with a ``Dedicated`` whose ``logged_in`` says whether the upstream accepted it
    (when it did not, the connection is already closed); fails with ``Unavailable`` when no
    connection could be made or the login went unanswered."""
    pool = UpstreamPool(config, clock, endpoint, login=login, size=1, lazy=True, max_queue=DEDICATED_QUEUE)
    if on_outcome:
        pool.on_outcome.extend(on_outcome)

    def opened(conn: UpstreamConnection) -> Dedicated:
        return Dedicated(pool, conn.login_reply)

    def refused(f: Failure) -> Dedicated | Failure:
        pool.stop()
        if f.check(LoginRefused):
            return Dedicated(pool, f.value.reply)
        return f

    return pool.connect_now(deadline).addCallbacks(opened, refused)
