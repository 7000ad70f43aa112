"""Parse and format SIP2 messages: lenient input, strict output (SIP2 error detection, AY/AZ;
the rules in docs/architecture.rst, "Protocol decisions").

Pure functions over bytes; no I/O. Both directions are driven by ``messages.MESSAGES``.

Each direction has a fast path for the traffic a gateway sees all day: a clean AY/AZ tail
(or none), fixed parts and field values that were already found valid, known tags. It
never decides anything on its own: whenever a message is not plainly valid it hands the
call to ``checked`` (every rule in turn), which gives the answer or raises the error
naming field, position and reason. What the fast path remembers is bounded: per message,
fixed parts already checked; per tag with an output rule, values already checked; per
message, the tag layouts of the field dicts it was given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from zlib import adler32

from sipgateway.sip2.checked import (
    BY_BYTES,
    HEX,
    RENEW_ALL_TAGS,
    TRAILING,
    format_checked,
    parse_checked,
    put_field,
)
from sipgateway.sip2.message import Message
from sipgateway.sip2.messages import MESSAGES, MessageSpec
from sipgateway.sip2.values import INPUT_WIDTHS, TAG_RULES, sequence_problem
from sipgateway.sip2.wire import ADLER_MAX, CODEC_NAMES, MAX_VALUE, byte_sum, checksum, codec_name

__all__ = ["Message", "checksum", "format_message", "parse", "to_json"]

#: a piece is "<tag><value>": at most this long
_MAX_PIECE = 2 + MAX_VALUE
#: longest message whose checksummed part (all but the 4 hex digits) Adler-32 sums exactly
_ADLER_N = ADLER_MAX + 4
#: entries kept per cache before it starts over (dates change every second, so fixed parts
#: and date values keep coming; a full cache is simply emptied)
_FIXED_CACHE = 2048
_VALUE_CACHE = 4096
_SHAPE_CACHE = 256


def _make_room(cache: dict | set, limit: int) -> None:
    """Empty ``cache`` when it holds ``limit`` entries, before one more is added."""
    if len(cache) >= limit:
        cache.clear()


# -- input ----------------------------------------------------------------------------

class _InPlan:
    """What ``parse`` needs per message code, plus the fixed parts already found valid.
    ``hot``: the attributes the fast path reads, as one tuple (unpacking it is cheaper)."""

    __slots__ = ("checks", "fixed_seen", "hot", "repeatable")

    def __init__(self, spec: MessageSpec) -> None:
        #: (name, start, stop, check, values already found valid), offsets within the fixed part
        self.checks = tuple((name, start - 2, stop - 2, check, set())
                            for name, start, stop, check in spec.parse_plan)
        self.fixed_seen: dict[str, dict[str, str]] = {}
        self.repeatable = spec.repeatable
        #: tags that need more than "the first value wins": lists, width rules, AY/AZ inside
        #: (``_special_fields``)
        special = frozenset(spec.repeatable | INPUT_WIDTHS.keys())
        #: 65 without its date and 16 with a PHP expiry date: parse_checked reads those
        quirk = spec.code in ("65", "16")
        self.hot = (spec.code, 2 + spec.fixed_len, special, frozenset(spec.required), spec.one_of, quirk,
                    self.fixed_seen, self)

    def fixed(self, text: str) -> dict[str, str] | None:
        """The fixed fields of ``text`` (exactly the fixed part), or None if any is refused."""
        fixed: dict[str, str] = {}
        for name, start, stop, check, seen in self.checks:
            v = text[start:stop]
            if v not in seen:
                if check(name, v) is not None:
                    return None
                _make_room(seen, _VALUE_CACHE)
                seen.add(v)
            fixed[name] = v
        _make_room(self.fixed_seen, _FIXED_CACHE)
        self.fixed_seen[text] = fixed
        return fixed


_IN = {code: _InPlan(spec).hot for code, spec in BY_BYTES.items()}
#: "AY<digit>AZ" -> the digit
_ED_TAILS = {b"AY%dAZ" % d: str(d) for d in range(10)}


def _quirk_applies(code: str, text: str, fixed_end: int) -> bool:
    if code == "65":
        return text[2:4] in RENEW_ALL_TAGS
    return text[fixed_end:fixed_end + 1].isdigit()


def parse(data: bytes, encoding: str = "utf-8", *, verify: bool = True) -> Message:
    """One message without its terminator (trailing CR/LF/whitespace tolerated).

    ``verify``: check AZ when present (ChecksumError on mismatch or a malformed AZ).
    Any other problem raises SIP2Error naming the field, the position and the reason."""
    enc = CODEC_NAMES.get(encoding) or codec_name(encoding)
    if type(data) is not bytes:
        data = bytes(data)
    stripped = data.rstrip(TRAILING)
    hot = _IN.get(stripped[:2])
    if hot is None:
        return parse_checked(data, encoding, verify=verify)
    code, fixed_end, special, required, one_of, quirk, fixed_seen, plan = hot
    n = len(stripped)

    # error detection: a clean "AY<digit>AZ<4 hex>" tail, or no "AZ" anywhere
    sequence = _ED_TAILS.get(stripped[n - 9:n - 4]) if n - 9 >= fixed_end else None
    if sequence is not None:
        hexpart = stripped[n - 4:]
        if verify:
            # compared with our own (uppercase) rendering; a mismatch or a character sum go the checked way
            summed = stripped[:n - 4]
            total = (adler32(summed) & 0xFFFF) - 1 if n <= _ADLER_N else byte_sum(summed)
            expected = b"%04X" % (-total & 0xFFFF)
            if expected != hexpart and expected != hexpart.upper():
                return parse_checked(data, encoding, verify=verify)
        elif not HEX.issuperset(hexpart):
            return parse_checked(data, encoding, verify=verify)
        body = stripped[:n - 9]
    elif n >= fixed_end and stripped.find(b"AZ", 2) < 0:
        body = stripped
    else:
        return parse_checked(data, encoding, verify=verify)
    try:
        text = body.decode(enc)
    except UnicodeDecodeError:
        return parse_checked(data, encoding, verify=verify)
    if len(text) < fixed_end or (quirk and _quirk_applies(code, text, fixed_end)):
        return parse_checked(data, encoding, verify=verify)

    # fixed fields: each distinct fixed part is checked once
    ftext = text[2:fixed_end]
    fixed = fixed_seen.get(ftext)
    if fixed is None:
        fixed = plan.fixed(ftext)
        if fixed is None:
            return parse_checked(data, encoding, verify=verify)

    # variable fields: plain "<tag><value>" pieces; empty pieces (a stray "|" after the fixed
    # part, the last "|") are skipped as parse_checked does; anything else goes its way
    fields: dict[str, str | list[str]] = {}
    pieces = text[fixed_end:].split("|")
    for piece in pieces:
        if len(piece) > 1:
            fields[piece[:2]] = piece[2:]
        elif piece:
            return parse_checked(data, encoding, verify=verify)
    if len(text) > _MAX_PIECE and max(map(len, pieces)) > _MAX_PIECE:
        return parse_checked(data, encoding, verify=verify)
    if len(fields) != len(pieces) - pieces.count("") or not special.isdisjoint(fields):
        special_fields = _special_fields(pieces, plan.repeatable)  # a tag twice, lists, widths
        if special_fields is None:
            return parse_checked(data, encoding, verify=verify)
        fields = special_fields
    if not fields.keys() >= required:
        return parse_checked(data, encoding, verify=verify)
    if one_of:
        for group in one_of:
            if fields.keys().isdisjoint(group):
                return parse_checked(data, encoding, verify=verify)
    if sequence is not None:
        fields["AY"] = sequence
        fields["AZ"] = hexpart.decode("ascii")
    return Message(code, fixed.copy(), fields)


#: tags with an input width (a value of another width is refused), AY/AZ aside
_WIDTHS = {tag: width for tag, width in INPUT_WIDTHS.items() if tag not in ("AY", "AZ")}


def _special_fields(pieces: list[str], repeatable: frozenset[str]) -> dict[str, str | list[str]] | None:
    """The variable fields as ``parse_checked`` reads them, for messages with repeated tags
    (lists such as AF and AU; duplicates of a single-valued tag: the first wins) or tags with
    an input width (CK, BZ, BX, ...), which upstream replies carry nearly always.  None where
    ``parse_checked`` must decide: a value of the wrong width, AY or AZ among the fields."""
    fields: dict[str, str | list[str]] = {}
    for piece in pieces:
        if not piece:
            continue
        tag = piece[:2]
        value = piece[2:]
        width = _WIDTHS.get(tag)
        if width is not None:
            if value and len(value) != width:
                return None
        elif tag == "AY" or tag == "AZ":
            return None
        put_field(fields, tag, value, repeatable)
    return fields


# -- output ---------------------------------------------------------------------------

#: per tag with an output rule: values already found valid
_VALID: dict[str, set[str]] = {tag: set() for tag in TAG_RULES}
#: sequence number -> the error-detection tail before the checksum
_AY_AZ = {str(d): f"AY{d}AZ" for d in range(10)}

#: one entry of a layout: a known tag and, if it has an output rule, its checked values
_Entry = tuple[str, "set[str] | None"]
#: a layout: the entries in table order, and a getter of the required tags' values
_Shape = tuple[tuple[_Entry, ...], Callable[[Mapping], tuple]]


def _valid_value(tag: str, seen: set[str], v: str) -> bool:
    """The output rule of ``tag`` accepts ``v`` (a str of at most MAX_VALUE characters);
    remembered in ``seen`` when so."""
    if TAG_RULES[tag].problem_out(v) is not None:
        return False
    _make_room(seen, _VALUE_CACHE)
    seen.add(v)
    return True


def _getter(names: Sequence[str]) -> Callable[[Mapping], tuple]:
    """``mapping -> tuple of its values for names`` (KeyError for a missing one)."""
    if len(names) > 1:
        return itemgetter(*names)
    if names:
        name = names[0]
        return lambda mapping: (mapping[name],)
    return lambda mapping: ()


class _OutPlan:
    """What ``format_message`` needs per message code, plus what it has already checked."""

    __slots__ = ("code", "spec", "values_of", "nfixed", "heads", "fixed_seen", "shapes")

    def __init__(self, spec: MessageSpec) -> None:
        self.code = spec.code
        self.spec = spec
        self.values_of = _getter([name for name, _w, _s, _c in spec.format_plan])
        self.nfixed = len(spec.format_plan)
        #: fixed values (in table order) already found valid -> code + fixed part
        self.heads: dict[tuple, str] = {}
        #: per fixed field, values already found valid (a new date, the same flags)
        self.fixed_seen = tuple(set() for _ in spec.format_plan)
        #: tuple(fields) -> its layout; layouts with an unknown tag or without a required
        #: tag are not kept (``shape`` gives None)
        self.shapes: dict[tuple, _Shape] = {}

    def head(self, values: tuple) -> str | None:
        """Code and fixed part for ``values``, or None if any is refused."""
        for (name, width, _start, check), seen, v in zip(self.spec.format_plan, self.fixed_seen, values,
                                                         strict=True):
            if type(v) is not str:
                return None
            if v not in seen:
                if len(v) != width or check(name, v) is not None:
                    return None
                _make_room(seen, _VALUE_CACHE)
                seen.add(v)
        head = self.code + "".join(values)
        _make_room(self.heads, _FIXED_CACHE)
        self.heads[values] = head
        return head

    def shape(self, keys: tuple) -> _Shape | None:
        """The layout for field dicts with exactly these keys, in this order."""
        spec = self.spec
        present = set(keys)
        if not spec.tagset.issuperset(present) or not present.issuperset(spec.required):
            return None
        entries = tuple((tag, _VALID.get(tag)) for tag in spec.fields if tag in present)
        shape = (entries, _getter(spec.required))
        _make_room(self.shapes, _SHAPE_CACHE)
        self.shapes[keys] = shape
        return shape


_OUT: dict[str, _OutPlan] = {code: _OutPlan(spec) for code, spec in MESSAGES.items()}


def format_message(code: str, fixed: Mapping[str, str],
                   fields: Mapping[str, str | Sequence[str] | None] = {},  # noqa: B006 - never mutated
                   *, sequence: str | None = None, error_detection: bool = False,
                   encoding: str = "utf-8") -> bytes:
    """Encoded bytes of one message WITHOUT terminator.

    Fixed fields in table order at exact widths; known tags in table order, then unknown
    tags in the order given; None values omitted; a list repeats its tag. With
    ``error_detection``: "AY<sequence>" (when ``sequence`` is not None) and "AZ<checksum>"."""
    plan = _OUT.get(code)  # type: ignore[call-overload]
    if plan is None or type(fixed) is not dict or type(fields) is not dict:
        return _checked(code, fixed, fields, sequence, error_detection, encoding)
    enc = CODEC_NAMES.get(encoding) or codec_name(encoding)

    # fixed part: each distinct tuple of values is checked once
    try:
        values = plan.values_of(fixed)
        head = plan.heads.get(values)
    except (KeyError, TypeError):  # a field missing, or a value that cannot be a key (so not text)
        head = values = None
    if head is None and values is not None:
        head = plan.head(values)
    keys = tuple(fields)
    shape = plan.shapes.get(keys)
    if shape is None:
        shape = plan.shape(keys)
    if head is None or shape is None or len(fixed) != plan.nfixed:
        return _checked(code, fixed, fields, sequence, error_detection, encoding)
    entries, required_values = shape
    if None in required_values(fields) or (plan.spec.one_of and not _one_of_given(plan.spec, fields)):
        return _checked(code, fixed, fields, sequence, error_detection, encoding)

    # variable part: separators in values are looked for once, in the joined text
    parts = [head]
    append = parts.append
    for tag, seen in entries:
        v = fields[tag]
        if v is None:
            continue
        if type(v) is str:
            if len(v) <= MAX_VALUE and (seen is None or v in seen or _valid_value(tag, seen, v)):
                append(f"{tag}{v}|")
                continue
        elif type(v) is list:
            for item in v:
                if type(item) is str:
                    if len(item) <= MAX_VALUE and (seen is None or item in seen or _valid_value(tag, seen, item)):
                        append(f"{tag}{item}|")
                        continue
                elif item is None:
                    continue
                break
            else:
                continue
        return _checked(code, fixed, fields, sequence, error_detection, encoding)
    separators = len(parts) - 1
    if error_detection:
        tail = "AZ" if sequence is None else _AY_AZ.get(sequence) if type(sequence) is str else None
        if tail is None and type(sequence) is str and sequence_problem("AY", sequence) is None:
            tail = f"AY{sequence}AZ"  # a client counting past 9: echoed as received
        if tail is None:
            return _checked(code, fixed, fields, sequence, error_detection, encoding)
        append(tail)
    elif sequence is not None:
        return _checked(code, fixed, fields, sequence, error_detection, encoding)
    text = "".join(parts)
    if text.count("|", len(head)) != separators or "\r" in text or "\n" in text:
        return _checked(code, fixed, fields, sequence, error_detection, encoding)
    try:
        data = text.encode(enc)
    except UnicodeEncodeError:
        return _checked(code, fixed, fields, sequence, error_detection, encoding)
    if error_detection:
        total = (adler32(data) & 0xFFFF) - 1 if len(data) <= ADLER_MAX else byte_sum(data)
        data += b"%04X" % (-total & 0xFFFF)
    return data


def _one_of_given(spec: MessageSpec, fields: Mapping) -> bool:
    return all(any(fields.get(tag) is not None for tag in group) for group in spec.one_of)


def _checked(code: str, fixed: Mapping[str, str], fields: Mapping, sequence: str | None, error_detection: bool,
             encoding: str) -> bytes:
    """The checked way: the answer for anything the fast path does not take on, or the error."""
    return format_checked(code, fixed, fields, sequence=sequence, error_detection=error_detection,
                          encoding=encoding)


def to_json(message: Message) -> dict:
    """``{"code", "fixed", "fields"}`` exactly as in vectors.jsonl (lists copied)."""
    return {
        "code": message.code,
        "fixed": dict(message.fixed),
        "fields": {tag: list(v) if type(v) is list else v for tag, v in message.fields.items()},
    }
