"""HTTP client sessions: one SIP2 ``Session`` each, found again by a token.

HTTP has no connection to carry a SIP2 session, so a token does: the Wise tunnel's
``token``, the ``Sip2-Session`` header of the other shapes.  A request without a (known)
token gets a new ``Tunnel``; if its session is logged in after the reply (a 93 that worked,
or an account the listener or the client certificate names), the tunnel is kept under a new
unguessable token; otherwise it ends there.  A kept tunnel ends when its session does: idle
for the listener's ``idle_timeout`` (or the account's), an ``XS``, too many unusable
requests, or to make room (``max_sessions``: the one unused longest goes).  Its token is
then unknown, and the client logs in again.  Tokens live in memory: a restart forgets them.

Each request goes through the session like a line or a message from a socket door, so
login, lockout, AY/AZ, replay, ordering and ACS timeouts are the socket doors' own.
Replies to lines come back through the session's ``write``, one per line in request
order; they are matched to the waiting requests in that order.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict, deque
from itertools import count

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from sipgateway.config.http import HTTPOptions
from sipgateway.gateway import Gateway
from sipgateway.repeatlog import RepeatedLines
from sipgateway.session import MAX_PENDING, Session
from sipgateway.settings import ListenerSettings
from sipgateway.sip2 import Message
from sipgateway.transports.httpdoor.clients import Client

#: bytes of randomness in a token (43 URL-safe characters)
TOKEN_BYTES = 32


class SessionEnded(Exception):
    """The session ended before it answered (idle, XS, made room for another, gateway stopping)."""


class Tunnel:
    """One HTTP client session: its SIP2 session, its token once kept, the requests it owes."""

    __slots__ = ("_table", "subject", "token", "pending", "_lines", "session")

    def __init__(self, table: Tunnels, client: Client, number: int) -> None:
        self._table = table
        #: the certificate it was opened with: its token is honoured only with the same one
        self.subject = client.subject
        self.token: str | None = None
        #: requests sent to the session and not answered yet
        self.pending = 0
        self._lines: deque[Deferred] = deque()
        settings = table.settings
        subject = f" [{client.subject}]" if client.subject else ""
        self.session = Session(table.gateway, settings, self._reply, self._ended,
                               f"{settings.name} {client.peer}{subject} #{number}", address=client.address)
        if settings.account:
            self.session.bind(settings.account, "listener setting 'account'")
        elif client.subject and client.subject in settings.cert_accounts:
            self.session.bind(settings.cert_accounts[client.subject], f"client certificate {client.subject}")

    @property
    def full(self) -> bool:
        """As many requests waiting as a session queues: a client must wait for replies first."""
        return self.pending >= MAX_PENDING

    def line(self, data: bytes) -> Deferred:
        """Send one SIP2 message (in the session's character set, no terminator) as a line;
        fires with the reply's text (SessionEnded if none comes)."""
        waiter: Deferred = Deferred()
        self._lines.append(waiter)
        self.pending += 1
        self.session.line_received(data)
        return waiter.addBoth(self._answered)

    def message(self, msg: Message) -> Deferred:
        """Send one parsed message; fires with the reply Message (SessionEnded if none comes)."""
        self.pending += 1
        return self.session.message_received(msg).addErrback(_ended_instead).addBoth(self._answered)

    def end(self) -> None:
        self.session.close()

    def _answered(self, result: object) -> object:
        self.pending -= 1
        return result

    def _reply(self, data: bytes) -> None:
        """The session's ``write``: the reply to the oldest line waiting, with its terminator."""
        out = self.session.out
        self._lines.popleft().callback(data[:len(data) - len(out.eol)].decode(out.encoding, "replace"))

    def _ended(self) -> None:
        """The session's ``lose_connection``: it closed; nothing more will be answered."""
        self._table.forget(self)
        waiting, self._lines = self._lines, deque()
        for waiter in waiting:
            waiter.errback(SessionEnded())


def _ended_instead(failure):
    failure.trap(ConnectionError)  # the session's word for "closed before answering"
    raise SessionEnded()


class Tunnels:
    """A listener's kept tunnels by token, the one used least recently first."""

    log = Logger()

    def __init__(self, gateway: Gateway, settings: ListenerSettings, options: HTTPOptions) -> None:
        self.gateway = gateway
        self.settings = settings
        self.max_sessions = options.max_sessions
        self._by_token: OrderedDict[str, Tunnel] = OrderedDict()
        self._numbers = count(1)
        self.repeated = RepeatedLines(gateway.reactor)

    def __len__(self) -> int:
        return len(self._by_token)

    def open(self, client: Client) -> Tunnel:
        """A new tunnel, not kept yet (see ``settle``)."""
        return Tunnel(self, client, next(self._numbers))

    def find(self, token: str, client: Client) -> Tunnel | None:
        """The kept tunnel of ``token``, if the client presents the certificate it was opened with."""
        tunnel = self._by_token.get(token)
        if tunnel is None or tunnel.subject != client.subject:
            return None
        self._by_token.move_to_end(token)
        return tunnel

    def settle(self, tunnel: Tunnel, wanted: bool = True) -> str | None:
        """After a reply: the tunnel's token, a new one if its session has just logged in (and
        the client is still there to get it, ``wanted``); a tunnel not kept ends."""
        if tunnel.token is not None:
            return tunnel.token
        session = tunnel.session
        if session.account is None or session.closed or not wanted or tunnel.pending:
            if not tunnel.pending:
                tunnel.end()
            return None
        while len(self._by_token) >= self.max_sessions:
            _, oldest = self._by_token.popitem(last=False)
            self.repeated.log(self.log.warn, "making room", self.settings.name,
                              "{n} HTTP sessions (listener setting 'max_sessions'); ended the one unused "
                              "longest ({ended}) for a new login", n=self.max_sessions, ended=oldest.session.who)
            oldest.end()
        token = tunnel.token = secrets.token_urlsafe(TOKEN_BYTES)
        self._by_token[token] = tunnel
        return token

    def forget(self, tunnel: Tunnel) -> None:
        if tunnel.token is not None and self._by_token.get(tunnel.token) is tunnel:
            del self._by_token[tunnel.token]

    def end_all(self) -> None:
        for tunnel in list(self._by_token.values()):
            tunnel.end()
