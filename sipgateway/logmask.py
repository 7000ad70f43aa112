"""What of a client's bytes may reach a log line: secrets masked, everything else escaped to
printable ASCII (a client must not be able to write escape sequences or fake lines into
the log), and at most ``LOG_EXCERPT`` bytes of it."""

from __future__ import annotations

import codecs
import re

from sipgateway.sip2 import MESSAGES, SECRET_TAGS, checksum

_SECRETS = frozenset(tag.encode("ascii") for tag in SECRET_TAGS)
#: a secret tag where a field may start even in a malformed message: at the start, after
#: "|", or after a digit, space or Z (how fixed parts end)
_SECRET = re.compile(rb"(?:^|(?<=[|0-9 Z]))(?:" + b"|".join(sorted(_SECRETS)) + rb")")
#: the error-detection block that may end the last field (AY glued to its value is allowed)
_ED_TAIL = re.compile(rb"(?:AY[0-9]+)?AZ([0-9A-Fa-f]{4})[\r\n]*$")
#: the most bytes of one client message a log line shows (a whole message only with trace on)
LOG_EXCERPT = 256


def masked(line: bytes) -> bytes:
    """``line`` with the values of the secret fields (sip2.SECRET_TAGS: CO, AD, AC) replaced
    by ****; an error-detection block after the last one is kept when its checksum is right
    (so that a secret that merely ends like one is masked whole)."""
    starts = [m.start() for m in _SECRET.finditer(line)]
    spec = MESSAGES.get(line[:2].decode("latin-1"))
    if spec is not None and line[2 + spec.fixed_len:4 + spec.fixed_len] in _SECRETS:
        starts.append(2 + spec.fixed_len)  # the first field, after a fixed part that ends in a letter
    if not starts:
        return line
    out, done = [], 0
    for start in sorted(starts):
        if start < done:
            continue  # inside a value already masked
        end = line.find(b"|", start)
        tail = b""
        if end < 0:
            end = len(line)
            ed = _ED_TAIL.search(line, start + 2)
            if ed is not None and checksum(line[:ed.start(1)]) == ed.group(1).upper().decode():
                end, tail = ed.start(), ed.group()
        out += [line[done:start + 2], b"****" if end > start + 2 else b"", tail]
        done = end + len(tail)
    out.append(line[done:])
    return b"".join(out)


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
