"""What can go wrong with a request to a library system's SIP2 server, by what it means.

The one question a caller must be able to answer is "may the library system have applied
this request?", because a device must never get a failure reply for a write that is then
applied (issue 12 resolves the doubtful ones). So every failure is one of two kinds:

* ``NotSent``: the request never left the gateway (its deadline passed while it waited,
  the queue was full, no connection could be opened, the upstream refused our login).
  It was not applied; a failure reply to the device is the truth.
* ``OutcomeUnknown``: the request was written to the upstream and no proper reply came
  back (a timeout, the connection dropped, a line that is not the expected reply). It may
  have been applied. ``late_reply`` fires with the reply if it still arrives while the
  connection waits for it, or with None when that chance is gone.

Messages are one line, name the server and never contain a password or a PIN (raw lines
are shown through ``wire.show``, which masks CO, AD and AC).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred


class UpstreamError(Exception):
    """Base of every request failure. ``server``: "host:port" of the upstream; ``code``:
    the request's message code (or "" when not about one request)."""

    def __init__(self, message: str, *, server: str = "", code: str = "") -> None:
        super().__init__(message)
        #: the message without the server's name
        self.detail = message
        self.server = server
        self.code = code

    def __str__(self) -> str:
        text = super().__str__()
        return f"upstream {self.server}: {text}" if self.server else text


# --- never sent: not applied ------------------------------------------------------------------

class NotSent(UpstreamError):
    """The request was not written to the upstream, so it was not applied."""


class DeadlinePassed(NotSent):
    """The request's deadline passed before it could be sent."""


class QueueFull(NotSent):
    """Every connection was busy and the bounded queue was full."""


class Unavailable(NotSent):
    """No connection to the upstream: it cannot be reached, refuses our login, its circuit
    breaker is open, or the client was stopped."""


class LoginRefused(Unavailable):
    """The upstream refused the login (a 94 with ok 0, or it closed the connection on the
    93, as Evergreen's SIPServer does). ``reply`` is the 94, or None when it closed."""

    def __init__(self, message: str, *, server: str = "", reply: object | None = None) -> None:
        super().__init__(message, server=server, code="93")
        self.reply = reply


class NotEncodable(NotSent):
    """The request cannot be written as SIP2 for this upstream (a value longer than 255
    characters, a character the upstream's character set lacks, a '|' inside a value)."""


# --- sent, no proper answer: may have been applied --------------------------------------------

class OutcomeUnknown(UpstreamError):
    """The request was sent and no proper reply came back: it may have been applied.

    ``late_reply`` fires once: with the decoded reply if it still arrives (after a timeout),
    or with None when the connection is gone without it. It never errbacks."""

    def __init__(self, message: str, *, server: str = "", code: str = "",
                 late_reply: Deferred | None = None) -> None:
        super().__init__(message, server=server, code=code)
        if late_reply is None:
            late_reply = Deferred()
            late_reply.callback(None)
        self.late_reply = late_reply


class ReplyTimeout(OutcomeUnknown):
    """No reply within the request's timeout or before its deadline."""


class ConnectionLost(OutcomeUnknown):
    """The connection closed while the request waited for its reply."""


class BadReply(OutcomeUnknown):
    """A line came back that is not the expected reply: not SIP2 at all (FOLIO's
    "Problems handling the request: ..."), a reply to another request, or a reply that
    does not parse. ``line`` is the masked, escaped line for the operator."""

    def __init__(self, message: str, *, server: str = "", code: str = "", line: str = "") -> None:
        super().__init__(message, server=server, code=code)
        self.line = line
