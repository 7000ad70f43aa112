"""Value rules: kinds of fixed fields and rules for fixed-width variable fields.

Each rule is a pair of checks, lenient for input and strict for output (docs/architecture.rst,
"Strict output, lenient input").
A check takes (field name, value of the right width) and returns None or the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from sipgateway.sip2.dates import BLANK_DATE, date_problem
from sipgateway.sip2.wire import MAX_VALUE

Check = Callable[[str, str], "str | None"]


def _digits(name: str, v: str) -> str | None:
    return None if v.isdigit() and v.isascii() else f"non-digit in {name}"


def _padded_digits(name: str, v: str) -> str | None:
    # input only: php-sip2 formats the 99 print width with sprintf("%3s") -> " 80"
    core = v.strip(" ")
    return None if not core or (core.isdigit() and core.isascii()) else f"non-digit in {name}"


def _count(name: str, v: str) -> str | None:
    # counts may be all spaces when unknown (EG), otherwise zero-padded digits
    if v.isdigit() and v.isascii():
        return None
    return None if v.isspace() else f"non-digit in {name}"


def _date(name: str, v: str) -> str | None:
    return date_problem(v)


def _optional_date(name: str, v: str) -> str | None:
    return None if v == BLANK_DATE else date_problem(v)


def _printable(name: str, v: str) -> str | None:
    return None if v.isprintable() else f"unprintable character in {name}"


def _letters(name: str, v: str) -> str | None:
    return None if v.isascii() and v.isalpha() and v.isupper() else f"bad value in {name}"


def _version(name: str, v: str) -> str | None:
    ok = v[1:2] == "." and v[0].isdigit() and v[2:].isdigit() and v.isascii()
    return None if ok else f"bad value in {name}"


def _flags(allowed: str, label: str) -> Check:
    """Every character one of ``allowed`` (Y/N, Y/N/U, 0/1 fields, one or more wide)."""
    chars = frozenset(allowed)

    def check(name: str, v: str) -> str | None:
        return None if chars.issuperset(v) else f"bad {label} in {name}"
    return check


def _choice(*values: str) -> Check:
    allowed = frozenset(values)

    def check(name: str, v: str) -> str | None:
        return None if v in allowed else f"bad value in {name}"
    return check


def _patron_status(accept_n: bool) -> Check:
    # Y = condition true, space = false; some SCs and old servers send N for false
    chars = frozenset("Y N" if accept_n else "Y ")

    def check(name: str, v: str) -> str | None:
        return None if chars.issuperset(v) else "bad patron status char"
    return check


def _summary(accept_n: bool) -> Check:
    chars = frozenset("Y N" if accept_n else "Y ")

    def check(name: str, v: str) -> str | None:
        if not chars.issuperset(v):
            return "bad summary char"
        return "more than one Y in summary" if v.count("Y") > 1 else None
    return check


YN = _flags("YN", "Y/N")
YNU = _flags("YNU", "Y/N/U")
BIT = _flags("01", "0/1")

#: kind -> (input check, output check)
KINDS: dict[str, tuple[Check, Check]] = {
    "date": (_date, _date),
    "optional_date": (_optional_date, _optional_date),
    "digits": (_digits, _digits),
    "padded_digits": (_padded_digits, _digits),
    "count": (_count, _count),
    "language": (_digits, _digits),
    "yn": (YN, YN),
    "ynu": (YNU, YNU),
    "bit": (BIT, BIT),
    "char": (_printable, _printable),
    "status_code": (_choice("0", "1", "2"), _choice("0", "1", "2")),
    "hold_mode": (_choice("+", "-", "*"), _choice("+", "-", "*")),
    "version": (_version, _version),
    "patron_status": (_patron_status(True), _patron_status(False)),
    "summary": (_summary(True), _summary(False)),
    # code tables: accept any two digits, emit only defined codes (circulation status, security
    # marker and fee type of the SIP2 specification's 18)
    "circulation_status": (_digits, _choice(*(f"{i:02d}" for i in range(1, 14)))),
    "security_marker": (_digits, _choice("00", "01", "02", "03")),
    "fee_type": (_digits, _choice(*(f"{i:02d}" for i in range(1, 10)))),
    "any_fee_type": (_digits, _digits),  # 37: WISE sends 00
    "payment_type": (_digits, _digits),
    "currency": (_printable, _letters),
}


class TagRule:
    """Output rule for a variable field with a fixed width and/or a fixed alphabet."""

    __slots__ = ("tag", "width", "check")

    def __init__(self, tag: str, width: int | None, check: Check | None) -> None:
        self.tag, self.width, self.check = tag, width, check

    def problem_out(self, v: str) -> str | None:
        """Exact width and alphabet: an unknown value is omitted (None), never sent blank."""
        if self.width is not None and len(v) != self.width:
            return f"field {self.tag} wrong width"
        return self.check(self.tag, v) if self.check else None


def sequence_problem(name: str, v: str) -> str | None:
    """SIP2 gives AY one digit; clients that count past 9 send AY10, AY11, ... which are
    accepted (and echoed as received): any run of ASCII digits a field may hold."""
    return None if 0 < len(v) <= MAX_VALUE and v.isdigit() and v.isascii() else "sequence number not a digit"


def _never(name: str, v: str) -> str | None:
    return "added by format_message: use sequence= and error_detection="


#: output rules (strict)
TAG_RULES: dict[str, TagRule] = {r.tag: r for r in [
    TagRule("AY", None, _never),
    TagRule("AZ", None, _never),
    TagRule("BX", 16, YN),
    TagRule("CK", 3, _digits),
    TagRule("BT", 2, KINDS["fee_type"][1]),
    TagRule("CV", 2, _digits),
    TagRule("BZ", 4, _digits),
    TagRule("CA", 4, _digits),
    TagRule("CB", 4, _digits),
    TagRule("BH", 3, _letters),
    TagRule("BY", 1, _digits),
    TagRule("CJ", None, _date),
    TagRule("CM", None, _date),
    TagRule("BW", None, _date),
    *(TagRule(tag, 1, YN) for tag in ("BL", "CQ", "BO", "BI", "CI")),
]}

#: input rules (lenient): only widths that shift meaning, and only for filled values
#: (WISE material types in CK may be letters; empty fields are legal everywhere).
#: AY and AZ are listed with widths that always send them to ``input_problem``.
INPUT_WIDTHS: dict[str, int] = {"BX": 16, "CK": 3, "BT": 2, "CV": 2, "BZ": 4, "CA": 4, "CB": 4,
                                "AY": 0, "AZ": -1}


def input_problem(tag: str, v: str) -> str | None:
    """Why an input value of a tag in INPUT_WIDTHS is refused, or None."""
    if tag == "AY":
        return sequence_problem(tag, v)
    if tag == "AZ":
        return "malformed checksum"  # AZ not at the end: the error-detection block is taken off first
    if v and len(v) != INPUT_WIDTHS[tag]:
        return f"field {tag} wrong width"
    return None
