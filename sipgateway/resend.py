"""What one connection remembers of its last exchange.

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

from sipgateway.acs.model import ErrorDetection
from sipgateway.sip2 import Message

#: after this many 96 replies in a row to the same request the connection is closed
MAX_SAME_BAD = 3

REPLY_96 = b"96"
REPLY_96_ED = b"96AZFEF6"

#: a request as received: its bytes on a line door, the parsed message on a message door
Received = bytes | Message


class History:
    __slots__ = ("last_reply", "_replayable", "_bad", "_bad_count")

    def __init__(self) -> None:
        #: the last reply sent, without terminator (what a 97 gets)
        self.last_reply: bytes | None = None
        self._replayable: Received | None = None  # the side-effect request last_reply answers
        self._bad: Received | None = None
        self._bad_count = 0

    def replay(self, request: Received) -> bytes | None:
        """The reply to send again if ``request`` repeats the last side-effect request."""
        if self._replayable is not None and request == self._replayable:
            return self.last_reply
        return None

    def sent(self, reply: bytes, request: Received | None, replayable: bool) -> None:
        """``reply`` went out for ``request``; a replayable (side-effect, AY/AZ) one is kept."""
        self.last_reply = reply
        self._replayable = request if replayable else None
        self._bad, self._bad_count = None, 0

    def bad(self, request: Received, ed: bool) -> tuple[bytes, bool]:
        """The 96 for an unusable ``request``, and whether the connection must now close."""
        if request == self._bad:
            self._bad_count += 1
        else:
            self._bad, self._bad_count = request, 1
        reply = REPLY_96_ED if ed else REPLY_96
        self.last_reply, self._replayable = reply, None
        return reply, self._bad_count >= MAX_SAME_BAD

    @property
    def bad_count(self) -> int:
        return self._bad_count


def wants_error_detection(request: Received, policy: ErrorDetection) -> bool:
    """Whether a 96 (or a 97's 96) to ``request`` carries AZ: when the request had one, or
    the policy requires them, unless the policy is off."""
    if policy is ErrorDetection.OFF:
        return False
    if policy is ErrorDetection.REQUIRED:
        return True
    if isinstance(request, Message):
        return "AZ" in request.fields
    return b"AZ" in request[2:]
