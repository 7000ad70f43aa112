"""How one connection's replies leave, and what it remembers of its last exchange.

``ReplyWriter`` formats a reply in the connection's character set with AY/AZ exactly when
the request carried them (unless error detection is off), ends it with the connection's
terminator on a line door or hands it back as a Message on a message door, and keeps the
``History`` that SIP2's resend rules need:

* ``97`` (request ACS resend) is answered with the last reply byte for byte; before any
  reply it gets ``96``.
* A request with side effects that carries AY/AZ and equals the previous such request
  (byte for byte on a line door, field for field on a message door) is a device resending
  after a lost reply: it is answered from the last reply and never run again.
* A request that cannot be used (bad checksum, no such code, garbled) gets ``96`` and runs
  nothing; the same unusable request ``MAX_SAME_BAD`` times in a row closes the connection,
  so a device cannot loop forever.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred

from sipgateway.acs.model import Account
from sipgateway.settings import ErrorDetection
from sipgateway.sip2 import Message, SIP2Error, format_message, parse
from sipgateway.sip2.wire import with_sequence

#: after this many 96 replies in a row to the same request the connection is closed
MAX_SAME_BAD = 3

REPLY_96 = b"96"
REPLY_96_ED = b"96AZFEF6"

#: a request as received: its bytes on a line door, the parsed message on a message door
Received = bytes | Message
#: (code, fixed fields, variable fields): what ``format_message`` takes
Reply = tuple[str, dict[str, str], dict[str, object]]


class History:
    __slots__ = ("last_reply", "replayable", "bad_request", "bad_count")

    def __init__(self) -> None:
        #: the last reply sent, without terminator (what a 97 gets)
        self.last_reply: bytes | None = None
        self.replayable: Received | None = None  # the side-effect request last_reply answers
        self.bad_request: Received | None = None
        self.bad_count = 0

    def bad(self, request: Received, ed: bool) -> bytes:
        """The 96 for an unusable ``request`` (counted: see ``bad_count``)."""
        if request == self.bad_request:
            self.bad_count += 1
        else:
            self.bad_request, self.bad_count = request, 1
        reply = REPLY_96_ED if ed else REPLY_96
        self.last_reply, self.replayable = reply, None
        return reply


class ReplyWriter:
    """The reply side of one connection.  ``encoding``, ``error_detection`` and ``eol`` are
    the listener's until a login, then the account's where the listener sets none."""

    __slots__ = ("_write", "_listener", "encoding", "error_detection", "eol", "history")

    def __init__(self, write: Callable[[bytes], None], encoding: str | None, error_detection: ErrorDetection | None,
                 eol: bytes | None) -> None:
        self._write = write
        self._listener = (encoding, error_detection, eol)
        self.encoding = encoding or "utf-8"
        self.error_detection = error_detection or ErrorDetection.AUTO
        self.eol = eol or b"\r"
        self.history = History()

    def logged_in(self, account: Account, eol: bytes | None) -> None:
        """The account's character set, error detection and terminator (``eol``, from the
        config), where the listener sets none."""
        encoding, error_detection, listener_eol = self._listener
        self.encoding = encoding or account.encoding or "utf-8"
        self.error_detection = error_detection or account.error_detection
        self.eol = listener_eol or eol or b"\r"

    def wants_ed(self, msg: Message) -> bool:
        """A reply carries AY/AZ exactly when the request's did (unless error detection is off)."""
        return self.error_detection is not ErrorDetection.OFF and ("AZ" in msg.fields or "AY" in msg.fields)

    def format(self, msg: Message, reply: Reply) -> bytes:
        """``reply`` to ``msg`` as bytes (SIP2Error if it cannot be: a bug in its builder)."""
        ed = self.wants_ed(msg)
        return format_message(*reply, sequence=msg.fields.get("AY") if ed else None, error_detection=ed,
                              encoding=self.encoding)

    def unsequenced(self, msg: Message) -> Message:
        """``msg`` without its AY, error detection kept: a reply formatted for it is the same
        for every sequence number, ready for ``sequenced`` (the reply memo keeps one)."""
        fields = msg.fields
        if "AY" not in fields:
            return msg
        fields = dict(fields)
        del fields["AY"]
        fields.setdefault("AZ", "")
        return Message(msg.code, msg.fixed, fields)

    def sequenced(self, msg: Message, data: bytes) -> bytes:
        """``data``, formatted for ``unsequenced(msg)``, as formatted for ``msg``."""
        sequence = msg.fields.get("AY")
        if sequence is None or not self.wants_ed(msg):
            return data
        return with_sequence(data, sequence)  # type: ignore[arg-type]

    def format_or_96(self, msg: Message, reply: Reply) -> bytes:
        """``format``, or 96 when even that fails."""
        try:
            return self.format(msg, reply)
        except SIP2Error:
            return REPLY_96_ED if self.wants_ed(msg) else REPLY_96

    def send(self, data: bytes, received: Received, reply_to: Deferred | None, side_effect: bool) -> None:
        """Send a formatted reply to ``received``; a side-effect request's is kept for replay."""
        history = self.history  # History.sent, inlined: this is every reply's path
        history.last_reply = data
        history.replayable = received if side_effect and data[-6:-4] == b"AZ" else None
        history.bad_request, history.bad_count = None, 0
        if reply_to is None:
            self._write(data + self.eol)
        else:
            self.deliver(data, reply_to)

    def deliver(self, data: bytes, reply_to: Deferred | None) -> None:
        if reply_to is None:
            self._write(data + self.eol)
        else:
            reply_to.callback(parse(data, self.encoding, verify=False))

    def resend(self, received: Received, reply_to: Deferred | None) -> bool:
        """Answer a 97; False when there was nothing to resend (it got 96)."""
        last = self.history.last_reply
        if last is None:
            self.deliver(self.history.bad(received, self._wants_ed_for(received)), reply_to)
            return False
        self.deliver(last, reply_to)
        return True

    def bad(self, received: Received, reply_to: Deferred | None) -> bool:
        """Answer 96 to an unusable request; True when the connection must now close."""
        self.deliver(self.history.bad(received, self._wants_ed_for(received)), reply_to)
        return self.history.bad_count >= MAX_SAME_BAD

    def _wants_ed_for(self, request: Received) -> bool:
        """Whether a 96 to ``request`` carries AZ: when the request had one, or the policy
        requires them, unless the policy is off."""
        if self.error_detection is ErrorDetection.OFF:
            return False
        if self.error_detection is ErrorDetection.REQUIRED:
            return True
        if isinstance(request, Message):
            return "AZ" in request.fields
        return b"AZ" in request[2:]


def request_bytes(received: Received) -> bytes:
    """The request's bytes for a log line (a message door's request, formatted)."""
    if isinstance(received, bytes):
        return received
    try:
        return format_message(received.code, received.fixed, dict(received.fields))
    except SIP2Error:
        return received.code.encode("ascii", "replace")
