"""Wire-level pieces both codec paths share: byte sums and checksums, character sets, limits."""

from __future__ import annotations

import codecs
from zlib import adler32

from sipgateway.sip2.errors import SIP2Error

MAX_VALUE = 255
#: characters no field value may hold on output
FORBIDDEN = frozenset("|\r\n")

#: the low half of Adler-32 is (1 + sum of the bytes) mod 65521: the exact sum for up to
#: 256 bytes (256 * 255 + 1 < 65521), computed in C about 8 times faster than sum()
ADLER_MAX = 256
#: character set as given -> codec name, filled by ``codec_name`` (read directly on hot paths)
CODEC_NAMES: dict[str, str] = {}


def byte_sum(data: bytes) -> int:
    """``sum(data)``, fast for bytes."""
    if type(data) is not bytes:
        return sum(data)
    if len(data) <= ADLER_MAX:
        return (adler32(data) & 0xFFFF) - 1
    total = 0
    for i in range(0, len(data), ADLER_MAX):
        total += (adler32(data[i:i + ADLER_MAX]) & 0xFFFF) - 1
    return total


def checksum(data: bytes) -> str:
    """The AZ value for ``data`` (everything from the message code up to and including "AZ")."""
    return "%04X" % (-byte_sum(data) & 0xFFFF)


def with_sequence(data: bytes, sequence: str) -> bytes:
    """``data``, a message ending in "AZ<checksum>" without AY, as it is formatted with
    "AY<sequence>" (ASCII digits): the sequence number goes before AZ and the checksum takes
    its bytes off, so nothing before it is summed again."""
    seq = b"AY" + sequence.encode("ascii")
    return b"%sAZ%04X" % (data[:-6] + seq, (int(data[-4:], 16) - sum(seq)) & 0xFFFF)


def codec_name(encoding: str) -> str:
    """The codec name for ``encoding``; SIP2's separators and tags must stay single ASCII bytes."""
    name = CODEC_NAMES.get(encoding)
    if name is not None:
        return name
    try:
        info = codecs.lookup(encoding)
    except LookupError:
        raise SIP2Error(f"unknown character set {encoding!r}") from None
    probe = "09AZaz| "
    try:
        compatible = info.encode(probe)[0] == probe.encode("ascii") and info.decode(probe.encode("ascii"))[0] == probe
    except (UnicodeError, TypeError):
        compatible = False
    if not compatible:
        raise SIP2Error(f"character set {encoding!r} is not ASCII-compatible")
    CODEC_NAMES[encoding] = info.name
    return info.name
