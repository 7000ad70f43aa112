"""What of a client's bytes may reach a log line: secrets masked, everything else escaped to
printable ASCII (a client must not be able to write escape sequences or fake lines into
the log), and at most ``LOG_EXCERPT`` bytes of it."""

from __future__ import annotations

import codecs
import re

#: CO login password, AD patron password, AC terminal password
SECRET_TAGS = (b"CO", b"AD", b"AC")
_SECRET = re.compile(rb"(\||^|(?<=[0-9 Z]))(CO|AD|AC)([^|]*)")
#: the most bytes of one client message a log line shows (a whole message only with trace on)
LOG_EXCERPT = 256


def masked(line: bytes) -> bytes:
    """``line`` with the values of CO, AD and AC replaced by ****."""
    return _SECRET.sub(lambda mo: mo.group(1) + mo.group(2) + (b"****" if mo.group(3) else b""), line)


def printable(data: bytes) -> str:
    """``data`` as printable ASCII, escaped as ``repr`` escapes bytes (``\\x1b``, ``\\r``,
    ``\\\\``), without the quotes."""
    return codecs.escape_encode(data)[0].decode("ascii")  # type: ignore[attr-defined]


def mask(line: bytes) -> str:
    """The whole message for a log line: secrets masked, escaped."""
    return printable(masked(line))


def excerpt(line: bytes, limit: int = LOG_EXCERPT) -> str:
    """At most ``limit`` bytes of the message for a log line, secrets masked (before it is
    cut, so no part of a secret shows), escaped, with the count of bytes left out."""
    data = masked(line)
    if len(data) <= limit:
        return printable(data)
    return f"{printable(data[:limit])}... ({len(data) - limit} more bytes not shown)"
