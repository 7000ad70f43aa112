"""Bytes on an upstream connection: requests written per profile, replies read leniently.

Requests are strict (the codec's ``format_message``) with the profile's terminator and
checksum mode; replies go through the codec's lenient ``parse`` (lowercase checksums and
character sums accepted, a missing AZ accepted). ``show`` is the only way a raw line
reaches a log or an error: secrets masked, every byte outside printable ASCII escaped,
length bounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from sipgateway.acs.upstream.profiles import TERMINATORS, Profile
from sipgateway.sip2 import Message, format_message, parse
from sipgateway.sip2.wire import codec_name

#: the longest reply line accepted (a 64 listing many items is long; nothing needs more)
MAX_REPLY = 65536
#: the longest excerpt of a raw line in a log line or an error
SHOW_LIMIT = 200
#: reply lines remembered per settings (DecodedReplies), the longest kept, and how many
#: settings have a memo (at most 1 MB of lines each)
DECODED_REPLIES = 512
DECODED_LINE = 2048
MAX_MEMOS = 16
#: CO login password, AD patron password, AC terminal password: values never shown
_SECRET = re.compile(rb"(\||^|(?<=[0-9 Z]))(CO|AD|AC)([^|]*)")


@dataclass(frozen=True)
class WireSettings:
    """How one upstream connection writes and reads (the profile, with the URL's overrides)."""

    profile: Profile
    encoding: str
    checksum: str
    terminator: bytes
    #: log every line sent and received (masked), as [gateway] trace does for devices
    trace: bool = True

    @classmethod
    def for_profile(cls, profile: Profile, *, encoding: str | None = None, checksum: str | None = None,
                    terminator: str | None = None, trace: bool = True) -> WireSettings:
        return cls(profile=profile, encoding=codec_name(encoding or profile.encoding),
                   checksum=checksum or profile.checksum, terminator=TERMINATORS[terminator or profile.terminator],
                   trace=trace)

    @property
    def error_detection(self) -> bool:
        return self.checksum != "none"


def encode_request(code: str, fixed: Mapping[str, str], fields: Mapping[str, object], sequence: str | None,
                   settings: WireSettings) -> bytes:
    """One request with its terminator. ``sequence`` (a digit) is used when the settings
    send error detection. Raises ``SIP2Error`` for a message that cannot be written."""
    enc = settings.encoding
    if settings.checksum == "bytes":
        body = format_message(code, dict(fixed), dict(fields), sequence=sequence, error_detection=True, encoding=enc)
    else:
        body = format_message(code, dict(fixed), dict(fields), encoding=enc)
        if settings.checksum == "characters":
            tail = ("AZ" if sequence is None else f"AY{sequence}AZ").encode("ascii")
            body += tail
            body += character_checksum(body.decode(enc)).encode("ascii")
    return body + settings.terminator


def resend_request(settings: WireSettings) -> bytes:
    """A 97 (Request ACS Resend): with a checksum and no sequence number when error
    detection is on, as the specification shows it."""
    if settings.checksum == "none":
        return b"97" + settings.terminator
    text = "97AZ"
    total = character_checksum(text)  # ASCII: the same over characters and bytes
    return (text + total).encode("ascii") + settings.terminator


def character_checksum(text: str) -> str:
    """AZ summed over characters (each code point's low byte) instead of encoded bytes."""
    return "%04X" % (-sum(ord(c) & 0xFF for c in text) & 0xFFFF)


def decode_reply(line: bytes, settings: WireSettings) -> Message:
    """One reply line (terminator already removed), normalised per profile. Raises
    ``SIP2Error`` (``ChecksumError`` for a checksum that does not match)."""
    msg = parse(line, settings.encoding, verify=settings.profile.verify_checksum)
    return settings.profile.normalise(msg)


class DecodedReplies:
    """Reply lines decoded lately, and what they decoded to, for connections that read alike.

    A decoded reply is a pure function of its bytes and the settings, so a line seen again
    (a library system answers the same question alike within a second, AY cycling through
    ten digits) is not parsed, checked and normalised again: its bytes were checked when it
    was first decoded.  Lines that fail to decode are never kept.  The same Message object is
    handed out again, so that what is read from it (``UpstreamACS``) can be remembered by
    its identity; nothing changes a reply Message (rules work on a copy).  Bounded: lines
    up to ``DECODED_LINE`` bytes, cleared when full."""

    __slots__ = ("settings", "size", "_lines")

    def __init__(self, settings: WireSettings, size: int = DECODED_REPLIES) -> None:
        self.settings = settings
        self.size = size
        self._lines: dict[bytes, Message] = {}

    def decode(self, line: bytes) -> Message:
        msg = self._lines.get(line)
        if msg is None:
            msg = decode_reply(line, self.settings)
            if len(line) > DECODED_LINE:  # a long listing: not kept
                return msg
            if len(self._lines) >= self.size:
                self._lines.clear()
            self._lines[line] = msg
        return msg


_MEMOS: dict[WireSettings, DecodedReplies] = {}


def decoded_replies(settings: WireSettings) -> DecodedReplies:
    """The memo shared by every connection with these settings (looked up once per connection)."""
    memo = _MEMOS.get(settings)
    if memo is None:
        if len(_MEMOS) >= MAX_MEMOS:
            _MEMOS.clear()
        memo = _MEMOS[settings] = DecodedReplies(settings)
    return memo



class Shown:
    """``show(data)`` computed only when a log observer formats it (trace lines cost nothing
    when nobody records them)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __str__(self) -> str:
        return show(self.data)

    def __format__(self, spec: str) -> str:
        return format(show(self.data), spec)


def show(data: bytes, limit: int = SHOW_LIMIT) -> str:
    """``data`` for a log line or an error: CO/AD/AC values masked, bytes outside printable
    ASCII (and the backslash) escaped, at most ``limit`` bytes shown."""
    masked = _SECRET.sub(lambda mo: mo.group(1) + mo.group(2) + (b"****" if mo.group(3) else b""), data)
    cut = masked[:limit]
    text = "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in cut)
    if len(masked) > limit:
        text += f"... ({len(data)} bytes)"
    return text
