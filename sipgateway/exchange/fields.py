"""Model values to SIP2 field text and back.

Output is strict (SIP2 specification, "Data conventions"): Y/N/U flags, 1/0 status bits,
4-digit zero-padded counts, amounts with two decimals, 18-character dates or a blank field
rather than an invented date, texts without separators and at most 255 characters each.
Input is lenient: whatever a library system's server sends that has a clear meaning.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sipgateway.acs import model as m
from sipgateway.sip2 import Message, SIP2Error, parse_sip_date, sip_date

#: the longest value of one field
MAX_VALUE = 255

_CLEAN = str.maketrans({"|": " ", "\r": " ", "\n": " ", "\0": " "})


# --- out ---------------------------------------------------------------------------------

def yn(value: bool | None, unknown: str = "N") -> str:
    if value is None:
        return unknown
    return "Y" if value else "N"


def bit(value: bool) -> str:
    return "1" if value else "0"


def clean(text: object, encoding: str = "utf-8") -> str:
    """One field value: no separators, at most 255 characters, representable in ``encoding``."""
    s = text if type(text) is str else str(text)
    if len(s) <= MAX_VALUE and (encoding == "utf-8" or s.isascii()) and "|" not in s and s.isprintable():
        return s  # the usual case, decided by three C-level scans
    s = s.translate(_CLEAN)
    if len(s) > MAX_VALUE:
        s = s[:MAX_VALUE]
    if encoding not in ("utf-8", "utf8"):
        try:
            s.encode(encoding)
        except UnicodeEncodeError:
            # e.g. a title with accents on an ASCII account: drop the accents, then '?'
            folded = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
            s = folded.encode(encoding, errors="replace").decode(encoding)
    return s


def texts(lines: Iterable[str], encoding: str) -> list[str]:
    """Screen messages / print lines: cleaned, long ones split into 255-character pieces."""
    out: list[str] = []
    for line in lines:
        s = str(line).translate(_CLEAN)
        for start in range(0, max(len(s), 1), MAX_VALUE):
            out.append(clean(s[start:start + MAX_VALUE], encoding))
    return out


def opt(value: object, encoding: str) -> str | None:
    return None if value is None else clean(value, encoding)


def date_or_blank(value: datetime | None) -> str:
    return "" if value is None else sip_date(value)


def opt_date(value: datetime | None) -> str | None:
    return None if value is None else sip_date(value)


def money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


_COUNTS = tuple(f"{i:04d}" for i in range(10000))


def count(n: int) -> str:
    """A 4-digit count, clamped to 0000..9999."""
    return _COUNTS[max(0, min(int(n), 9999))]


def opt_count(n: int | None) -> str | None:
    return None if n is None else count(n)


def two_digits(value: int | None) -> str | None:
    return None if value is None else f"{int(value):02d}"


def patron_status_field(flags: Iterable[m.PatronFlag]) -> str:
    chars = [" "] * 14
    for flag in flags:
        chars[int(flag)] = "Y"
    return "".join(chars)


def language(value: str | None, requested: str = "000") -> str:
    """The patron's language when the ACS knows it, else the one the SC asked in."""
    if value and value != "000" and len(value) == 3 and value.isdigit():
        return value
    return requested if len(requested) == 3 and requested.isdigit() else "000"


def add_messages(fields: dict[str, object], msgs: m.Messages, encoding: str) -> None:
    if msgs.screen:
        fields["AF"] = texts(msgs.screen, encoding)
    if msgs.print_lines:
        fields["AG"] = texts(msgs.print_lines, encoding)


def add_extra(fields: dict[str, object], extra: Iterable[tuple[str, str]], encoding: str) -> None:
    """Fields the model does not name (vendor tags carried through), after the known ones;
    a tag the builder set keeps the builder's value, a tag given twice becomes a list."""
    taken = {tag for tag, value in fields.items() if value is not None}
    for tag, value in extra:
        if tag in taken:
            continue
        value = clean(value, encoding)
        present = fields.get(tag)
        if present is None:
            fields[tag] = value
        elif type(present) is list:
            present.append(value)
        else:
            fields[tag] = [present, value]


# --- in ------------------------------------------------------------------------------------

def flag(value: str | None) -> bool | None:
    """Y/N/U (or 1/0) to True/False/None."""
    if value in ("Y", "y", "1"):
        return True
    if value in ("N", "n", "0"):
        return False
    return None


def date(value: str | None) -> datetime | None:
    """An 18-character SIP2 date; blank or unreadable is None."""
    if not value or not value.strip():
        return None
    try:
        return parse_sip_date(value)
    except SIP2Error:
        return None


def amount(value: str | None) -> Decimal | None:
    if value is None or not value.strip():
        return None
    try:
        d = Decimal(value.strip().replace(",", ""))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def integer(value: str | None) -> int | None:
    value = (value or "").strip()
    return int(value) if value.isdigit() else None


def flags(text: str) -> frozenset[m.PatronFlag]:
    return frozenset(m.PatronFlag(i) for i, c in enumerate(text[:14]) if c in "Yy")


def text(msg: Message, tag: str) -> str:
    return msg.get(tag) or ""


def values(msg: Message, tag: str) -> tuple[str, ...]:
    v = msg.fields.get(tag)
    if v is None:
        return ()
    return tuple(v) if type(v) is list else (v,)


def messages(msg: Message) -> m.Messages:
    return m.Messages(screen=values(msg, "AF"), print_lines=values(msg, "AG"))


def extra_fields(msg: Message, known: Iterable[str] | Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    """The fields of ``msg`` that are not in ``known`` (and not AY/AZ), in order; a
    repeated tag gives one pair per value."""
    known = set(known) | {"AY", "AZ"}
    out: list[tuple[str, str]] = []
    for tag, value in msg.fields.items():
        if tag in known:
            continue
        if type(value) is list:
            out.extend((tag, v) for v in value)
        else:
            out.append((tag, value))  # type: ignore[arg-type]
    return tuple(out)
