"""Parse and format SIP2 messages rule by rule: the reference path (error detection and the
lenient-input, strict-output rules of docs/architecture.rst, "Protocol decisions").

``codec.parse`` and ``codec.format_message`` take a fast path for well-formed traffic and
hand everything else to these functions, which check each rule in turn and raise the
error that names the field, the position and the reason. They are also what the fast
path is tested against. The error-detection block (AY/AZ) is found and verified on the
raw bytes, because the checksum is a sum of the encoded bytes; everything else works on
the decoded text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sipgateway.sip2.dates import date_problem
from sipgateway.sip2.errors import ChecksumError, SIP2Error, UnknownMessageError
from sipgateway.sip2.message import Message
from sipgateway.sip2.messages import MESSAGES, MessageSpec
from sipgateway.sip2.tags import SECRET_TAGS
from sipgateway.sip2.values import INPUT_WIDTHS, TAG_RULES, input_problem, sequence_problem
from sipgateway.sip2.wire import FORBIDDEN, MAX_VALUE, byte_sum, checksum, codec_name

#: dateless 65 (PHP): the date is missing when the message goes straight on with one of these
RENEW_ALL_TAGS = ("AO", "AA")
BY_BYTES: dict[bytes, MessageSpec] = {code.encode("ascii"): spec for code, spec in MESSAGES.items()}
HEX = frozenset(b"0123456789abcdefABCDEF")
DIGITS = frozenset(b"0123456789")
#: what a line may end with besides the message
TRAILING = b" \t\r\n\x00\x0b\x0c"


def _char_position(data: bytes, index: int, encoding: str) -> int:
    """Byte offset -> character offset, for error messages about non-ASCII input."""
    return len(data[:index].decode(encoding, "replace"))


def _latin1_sum_matches(summed: bytes, encoding: str, expected: int) -> bool:
    """Old Perl servers and clients sum characters, each code point mod 256."""
    if summed.isascii():
        return False  # same sum as the bytes: already failed
    try:
        text = summed.decode(encoding)
    except UnicodeDecodeError:
        return False
    return (sum(ord(c) & 0xFF for c in text) + expected) & 0xFFFF == 0


def _decode_error(data: bytes, e: UnicodeDecodeError, spec: MessageSpec, encoding: str) -> SIP2Error:
    start = e.start
    where: str | None = None
    fixed_end = 2 + spec.fixed_len
    if start < fixed_end:
        for name, first, stop, _check in spec.parse_plan:
            if first <= start < stop:
                where = name
    else:
        bar = data.rfind(b"|", 0, start)
        tag_at = max(bar + 1, fixed_end)
        where = data[tag_at:tag_at + 2].decode("ascii", "replace")
    return SIP2Error(f"byte 0x{data[start]:02x} is not valid {encoding}", where, _char_position(data, start, encoding))


def parse_checked(data: bytes, encoding: str = "utf-8", *, verify: bool = True) -> Message:
    """``codec.parse``, every rule checked in turn: the reference for the fast path."""
    enc = codec_name(encoding)
    if type(data) is not bytes:
        data = bytes(data)
    stripped = data.rstrip(TRAILING)
    if len(stripped) < 2:
        raise SIP2Error("too short", None, 0)
    spec = BY_BYTES.get(stripped[:2])
    if spec is None:
        raise UnknownMessageError("unknown message code", None, 0, detail=repr(stripped[:2].decode(enc, "replace")))
    fixed_end = 2 + spec.fixed_len
    # trailing spaces may belong to the fixed part (blank dates, unknown counts): keep those
    data = stripped if len(stripped) >= fixed_end else data[:fixed_end]

    # -- error detection: "AY<d>AZ<hhhh>" (or "AZ<hhhh>") at the very end, "|" before it optional
    fields: dict[str, str | list[str]] = {}
    sequence: str | None = None
    body_end = len(data)
    az = data.rfind(b"AZ", 2)
    if az >= 0 and data.find(b"|", az) < 0:
        ay = _sequence_start(data, az)
        has_ay = ay >= 0
        if has_ay or az == fixed_end or data[az - 1:az] == b"|":
            hexpart = data[az + 2:]
            if len(hexpart) != 4 or not HEX.issuperset(hexpart):
                raise ChecksumError("malformed checksum", "AZ", _char_position(data, az, enc),
                                    detail="AZ needs exactly 4 hex digits")
            if has_ay:
                seq = data[ay + 2:az].decode("ascii", "replace")
                if sequence_problem("AY", seq) is not None:
                    raise SIP2Error("sequence number not a digit", "AY", _char_position(data, ay, enc))
                sequence = seq
                body_end = ay
            else:
                body_end = az
            if verify:
                expected = int(hexpart, 16)
                summed = data[:az + 2]
                if (byte_sum(summed) + expected) & 0xFFFF and not _latin1_sum_matches(summed, enc, expected):
                    raise ChecksumError("checksum mismatch", "AZ", _char_position(data, az, enc),
                                        detail=f"computed {checksum(summed)}")
            checksum_text = hexpart.decode("ascii")
        else:
            az = -1
    else:
        az = -1

    try:
        text = data[:body_end].decode(enc)
    except UnicodeDecodeError as e:
        raise _decode_error(data, e, spec, enc) from None

    # -- fixed fields
    tlen = len(text)
    fixed: dict[str, str] = {}
    code = spec.code
    if code == "65" and text[2:4] in RENEW_ALL_TAGS:
        pos = 2  # PHP sends 65 without its transaction date
    else:
        for name, start, stop, check in spec.parse_plan:
            if stop > tlen:
                raise SIP2Error(f"truncated fixed field {name}", name, start)
            v = text[start:stop]
            problem = check(name, v)
            if problem is not None:
                raise SIP2Error(problem, name, start, detail=repr(v))
            fixed[name] = v
        pos = fixed_end
        if code == "16" and text[pos:pos + 1].isdigit():
            pos = _php_hold_expiry(text, pos, fields)
    if text[pos:pos + 1] == "|":
        pos += 1  # stray "|" after the fixed part (9900302.00|, 70<date>|AA...)

    # -- variable fields
    if pos < tlen:
        repeatable = spec.repeatable
        widths = INPUT_WIDTHS
        pieces = text[pos:].split("|")
        for piece in pieces:
            if len(piece) > 1:
                tag = piece[:2]
                value = piece[2:]
                if len(value) > MAX_VALUE:
                    raise SIP2Error("field too long (>255)", tag, _piece_position(pieces, piece, pos))
                width = widths.get(tag)
                if width is not None and len(value) != width:
                    problem = input_problem(tag, value)
                    if problem is not None:
                        error = ChecksumError if tag == "AZ" else SIP2Error
                        raise error(problem, tag, _piece_position(pieces, piece, pos))
                put_field(fields, tag, value, repeatable)
            elif piece:
                raise SIP2Error("malformed field", None, _piece_position(pieces, piece, pos),
                                detail="a field starts with a two-character tag")

    if az >= 0:
        if sequence is not None:
            fields["AY"] = sequence
        fields["AZ"] = checksum_text
    for tag in spec.required:
        if tag not in fields:
            raise SIP2Error(f"missing required field {tag}", tag)
    for group in spec.one_of:
        if not any(tag in fields for tag in group):
            raise SIP2Error(f"missing required field {' or '.join(group)}", group[0])
    return Message(code, fixed, fields)


def put_field(fields: dict[str, str | list[str]], tag: str, value: str, repeatable: frozenset[str]) -> None:
    """Add one variable field as read: a repeatable tag's values in a list, in order; a
    single-valued tag given twice keeps its first value (as Evergreen reads it)."""
    if tag in repeatable:
        values = fields.get(tag)
        if values is None:
            fields[tag] = [value]
        else:
            values.append(value)  # type: ignore[union-attr]
    elif tag not in fields:
        fields[tag] = value


def _sequence_start(data: bytes, az: int) -> int:
    """Where "AY" starts when it directly precedes the "AZ" at ``az``, else -1. The sequence
    number between them is the run of digits before AZ (clients past 9 send AY10), or one
    other byte, which is then refused as not a digit."""
    start = az
    while start > 4 and data[start - 1] in DIGITS:
        start -= 1
    if start < az and data[start - 2:start] == b"AY":
        return start - 2
    return az - 3 if az >= 5 and data[az - 3:az - 1] == b"AY" else -1


def _piece_position(pieces: list[str], piece: str, start: int) -> int:
    """Where ``piece`` (an object from ``pieces``) starts; only computed for errors."""
    for p in pieces:
        if p is piece:
            break
        start += len(p) + 1
    return start


def _php_hold_expiry(text: str, pos: int, fields: dict[str, str | list[str]]) -> int:
    """16 from PHP-style servers: an 18-character expiration date as a fixed field."""
    v = text[pos:pos + 18]
    problem = date_problem(v)
    if problem is not None:
        raise SIP2Error(problem, "BW", pos, detail=repr(v))
    fields["BW"] = v
    return pos + 18


# -- output ---------------------------------------------------------------------------

def _value_problem(tag: str, value: object) -> str | None:
    if not isinstance(value, str):
        return f"value must be text, not {type(value).__name__}"
    if len(value) > MAX_VALUE:
        return "field too long (>255)"
    if not FORBIDDEN.isdisjoint(value):
        return "value contains '|' or CR/LF"
    rule = TAG_RULES.get(tag)
    return rule.problem_out(value) if rule is not None else None


def format_checked(code: str, fixed: Mapping[str, str],
                   fields: Mapping[str, str | Sequence[str] | None] = {},  # noqa: B006 - never mutated
                   *, sequence: str | None = None, error_detection: bool = False,
                   encoding: str = "utf-8") -> bytes:
    """``codec.format_message``, every rule checked in turn: the reference for the fast path."""
    spec = MESSAGES.get(code)
    if spec is None:
        raise UnknownMessageError("unknown message code", None, 0, detail=repr(code))
    enc = codec_name(encoding)
    parts = [code]
    for name, width, start, check in spec.format_plan:
        v = fixed.get(name)
        if v is None:
            raise SIP2Error("missing fixed field", name, start)
        if type(v) is not str or len(v) != width:
            raise SIP2Error(f"wrong width (needs {width} characters)", name, start, detail=repr(v))
        problem = check(name, v)
        if problem is not None:
            raise SIP2Error(problem, name, start, detail=repr(v))
        parts.append(v)
    if len(fixed) > len(spec.format_plan) or not spec.fixed_names.issuperset(fixed):
        extra = sorted(set(fixed) - spec.fixed_names)
        if extra:
            raise SIP2Error(f"not a fixed field of message {code}", extra[0])

    tagset = spec.tagset
    forbidden = FORBIDDEN
    append = parts.append
    for tag, rule in spec.emit_plan:
        v = fields.get(tag)
        if v is None:
            continue
        # the common cases with the checks inlined; _emit does the rest and raises
        if type(v) is str:
            if len(v) <= MAX_VALUE and forbidden.isdisjoint(v) and (rule is None or rule.problem_out(v) is None):
                append(f"{tag}{v}|")
                continue
        elif type(v) is list:
            for item in v:
                if (type(item) is str and len(item) <= MAX_VALUE and forbidden.isdisjoint(item)
                        and (rule is None or rule.problem_out(item) is None)):
                    append(f"{tag}{item}|")
                else:
                    _emit(parts, tag, (item,))
            continue
        _emit(parts, tag, v)
    for tag, v in (() if tagset.issuperset(fields) else fields.items()):
        if tag not in tagset and v is not None:
            if type(tag) is not str or len(tag) != 2 or not tag.isprintable() or not forbidden.isdisjoint(tag):
                raise SIP2Error("a tag is two printable characters", repr(tag))
            _emit(parts, tag, v)
    for tag in spec.required:
        if fields.get(tag) is None:
            raise SIP2Error(f"missing required field {tag}", tag)
    for group in spec.one_of:
        if all(fields.get(tag) is None for tag in group):
            raise SIP2Error(f"missing required field {' or '.join(group)}", group[0])

    if error_detection:
        if sequence is not None:
            problem = sequence_problem("AY", sequence) if type(sequence) is str else "sequence number not a digit"
            if problem is not None:
                raise SIP2Error(problem, "AY")
            append("AY" + sequence)
        append("AZ")
    elif sequence is not None:
        raise SIP2Error("a sequence number needs error_detection=True", "AY")
    text = "".join(parts)
    try:
        data = text.encode(enc)
    except UnicodeEncodeError as e:
        raise _encode_error(spec, parts, e, enc) from None
    if error_detection:
        data += checksum(data).encode("ascii")
    return data


def _emit(parts: list[str], tag: str, value: str | Sequence[str]) -> None:
    """Append one field per value (a list repeats the tag), checking each value."""
    if isinstance(value, str):
        values: Sequence[str | None] = (value,)
    elif isinstance(value, Sequence):
        values = value
    else:
        raise SIP2Error(f"value must be text or a list of texts, not {type(value).__name__}", tag)
    for v in values:
        if v is None:
            continue
        problem = _value_problem(tag, v)
        if problem is not None:
            raise SIP2Error(problem, tag, len("".join(parts)))
        parts.append(f"{tag}{v}|")


def _encode_error(spec: MessageSpec, parts: list[str], e: UnicodeEncodeError, encoding: str) -> SIP2Error:
    """Which field holds the character ``encoding`` cannot represent. ``parts`` is
    [code, fixed values..., one "<tag><value>|" per variable field, AY/AZ parts]."""
    offset = 0
    nfixed = len(spec.format_plan)
    where = None
    for i, part in enumerate(parts):
        if offset + len(part) > e.start:
            where = spec.format_plan[i - 1][0] if 1 <= i <= nfixed else part[:2]
            break
        offset += len(part)
    char = "" if where in SECRET_TAGS else f" {e.object[e.start]!r}"
    return SIP2Error(f"character{char} cannot be encoded in {encoding}", where, e.start)
