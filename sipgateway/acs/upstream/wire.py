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
from sipgateway.sip2 import Message, checksum, format_message, parse
from sipgateway.sip2.checked import DIGITS, HEX
from sipgateway.sip2.wire import codec_name, with_sequence

#: the longest reply line accepted (a 64 listing many items is long; nothing needs more)
MAX_REPLY = 65536
#: the longest excerpt of a raw line in a log line or an error
SHOW_LIMIT = 200
#: reply lines remembered per settings (DecodedReplies), the longest kept, and how many
#: settings have a memo (at most 1 MB of lines each)
DECODED_REPLIES = 512
DECODED_LINE = 2048
MAX_MEMOS = 32
#: requests remembered as written, per settings (EncodedRequests)
ENCODED_REQUESTS = 512
_ED_TAGS = ("AY", "AZ")
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
    (a library system answers the same question alike within a second) is not parsed,
    checked and normalised again.  A line ending in the usual "AY<digit>AZ<checksum>" is
    kept by what comes before AY: the same answer with another sequence number (devices and
    connections count AY through ten digits) is the same Message, once its checksum is
    checked; the sequence number is handed back beside it.  Messages are handed out without
    AY and AZ, so that the same Message object comes back for the same answer and what is
    read from it (``UpstreamACS``) can be remembered by its identity; nothing changes a
    reply Message (rules work on a copy).  Lines that fail to decode are never kept.
    Bounded: lines up to ``DECODED_LINE`` bytes, cleared when full."""

    __slots__ = ("settings", "size", "_bodies", "_lines")

    def __init__(self, settings: WireSettings, size: int = DECODED_REPLIES) -> None:
        self.settings = settings
        self.size = size
        #: what comes before "AY<digit>AZ<checksum>" -> the Message without AY/AZ
        self._bodies: dict[bytes, Message] = {}
        #: any other line -> (the Message without AY/AZ, its AY or None)
        self._lines: dict[bytes, tuple[Message, str | None]] = {}

    def decode(self, line: bytes) -> tuple[Message, str | None]:
        """The reply ``line`` reads as (without AY/AZ) and its sequence number (AY) or None.
        Raises ``SIP2Error`` (``ChecksumError`` for a checksum that does not match)."""
        tailed = len(line) > 9 and line[-9:-7] == b"AY" and line[-6:-4] == b"AZ" and line[-7] in DIGITS
        if tailed:
            msg = self._bodies.get(line[:-9])
            if msg is not None:
                if not self._checks_out(line):
                    decode_reply(line, self.settings)  # accepts it (a character sum) or raises
                return msg, chr(line[-7])
        else:
            entry = self._lines.get(line)
            if entry is not None:
                return entry
        msg = decode_reply(line, self.settings)
        sequence = msg.sequence
        if "AY" in msg.fields or "AZ" in msg.fields:
            msg = Message(msg.code, msg.fixed, {tag: v for tag, v in msg.fields.items() if tag not in _ED_TAGS})
        if len(line) <= DECODED_LINE:  # a long listing is not kept
            if tailed:
                _keep(self._bodies, line[:-9], msg, self.size)
            else:
                _keep(self._lines, line, (msg, sequence), self.size)
        return msg, sequence

    def _checks_out(self, line: bytes) -> bool:
        """The AZ of ``line`` is what ``decode_reply`` accepts at once (hex digits; with
        checksums verified, our byte sum in either case); anything else is left to it."""
        digits = line[-4:]
        if not HEX.issuperset(digits):
            return False
        return not self.settings.profile.verify_checksum or checksum(line[:-4]).encode("ascii") == digits.upper()


def _keep(memo: dict, key: object, value: object, size: int) -> None:
    """``memo[key] = value``, the memo emptied first when it holds ``size`` entries."""
    if len(memo) >= size:
        memo.clear()
    memo[key] = value


class EncodedRequests:
    """Requests written lately, for connections that write alike: the same request objects
    (``UpstreamACS`` hands them out again for a read within a second) are the same bytes
    but for the sequence number, which ``request`` puts in (``with_sequence``).  Entries keep
    the objects, so their ids cannot be reused while they live.  Bounded: cleared when full."""

    __slots__ = ("settings", "size", "_requests")

    def __init__(self, settings: WireSettings, size: int = ENCODED_REQUESTS) -> None:
        self.settings = settings
        self.size = size
        self._requests: dict[tuple, tuple[Mapping[str, str], Mapping[str, object], bytes]] = {}

    def request(self, code: str, fixed: Mapping[str, str], fields: Mapping[str, object],
                sequence: str | None) -> bytes:
        """``encode_request`` of these, remembered. Raises ``SIP2Error`` as it does."""
        key = (code, id(fixed), id(fields))
        entry = self._requests.get(key)
        if entry is not None and entry[0] is fixed and entry[1] is fields:
            data = entry[2]
        else:
            data = encode_request(code, fixed, fields, None, self.settings)
            _keep(self._requests, key, (fixed, fields, data), self.size)
        if sequence is None or self.settings.checksum == "none":
            return data
        end = len(data) - len(self.settings.terminator)
        return with_sequence(data[:end], sequence) + data[end:]


_MEMOS: dict[tuple[type, WireSettings], DecodedReplies | EncodedRequests] = {}


def decoded_replies(settings: WireSettings) -> DecodedReplies:
    """The memo shared by every connection with these settings (looked up once per connection)."""
    return _memo(DecodedReplies, settings)  # type: ignore[return-value]


def encoded_requests(settings: WireSettings) -> EncodedRequests:
    """The memo shared by every connection with these settings (looked up once per connection)."""
    return _memo(EncodedRequests, settings)  # type: ignore[return-value]


def _memo(kind: type, settings: WireSettings) -> DecodedReplies | EncodedRequests:
    memo = _MEMOS.get((kind, settings))
    if memo is None:
        if len(_MEMOS) >= MAX_MEMOS:
            _MEMOS.clear()
        memo = _MEMOS[kind, settings] = kind(settings)
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
