"""Micro-benchmark of the codec's hot path: ``python bench/codec.py``.

Prints microseconds per ``parse`` of typical requests (with AY/AZ and without) and of the
replies a front gateway reads from a library system, and per ``format_message`` of typical
replies (shaped as ``sipgateway.replies`` builds them, None values included, with AY/AZ),
best of several rounds.

``warm``: the same message again and again, as under load, when every request of a second
carries the same date. ``cold``: a date never seen before in every message (more dates
than the codec remembers), the worst case for what the fast path remembers.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable

from sipgateway.sip2.codec import checksum, format_message, parse

DATE = "20260101    120000"
NO_DATE = " " * 18


def _ed(text: str) -> bytes:
    data = text.encode("ascii")
    return data + checksum(data).encode("ascii")


REQUESTS: dict[str, bytes] = {
    "99": _ed("9900302.00AY1AZ"),
    "93": _ed("9300CNsc1|COpass1|CPMAIN|AY2AZ"),
    "63": _ed(f"63001{DATE}{' ' * 10}AOMAIN|AA100001|AC|AD1234|AY3AZ"),
    "17": _ed(f"17{DATE}AOMAIN|AB200001|AC|AY4AZ"),
    "11": _ed(f"11NN{DATE}{NO_DATE}AOMAIN|AABENCHP1|ABBENCHI1|AC|AY5AZ"),
    "09": _ed(f"09N{DATE}{DATE}APMAIN|AOMAIN|ABBENCHI1|AC|AY6AZ"),
    "23": _ed(f"23001{DATE}AOMAIN|AA100001|AC|AD1234|AY7AZ"),
}

_STATUS = " " * 14
REPLIES: dict[str, tuple[str, dict[str, str], dict[str, object]]] = {
    "94": ("94", {"ok": "1"}, {}),
    "98": ("98", {"online_status": "Y", "checkin_ok": "Y", "checkout_ok": "Y", "acs_renewal_policy": "Y",
                  "status_update_ok": "N", "offline_ok": "N", "timeout_period": "010", "retries_allowed": "003",
                  "date_time_sync": DATE, "protocol_version": "2.00"},
           {"AO": "MAIN", "AM": "Main Library", "BX": "YYYYNNYYYNYNNYYY", "AN": None}),
    "18": ("18", {"circulation_status": "03", "security_marker": "01", "fee_type": "01", "transaction_date": DATE},
           {"CF": None, "AH": None, "CJ": None, "CM": None, "AB": "200001",
            "AJ": "The Hitchhiker's Guide to the Galaxy", "BG": "MAIN", "BH": None, "BV": None, "CK": "001",
            "AQ": "MAIN", "AP": "MAIN", "CH": None, "CT": None, "CS": "823.914 ADA"}),
    "64": ("64", {"patron_status": _STATUS, "language": "001", "transaction_date": DATE,
                  "hold_items_count": "0000", "overdue_items_count": "0000", "charged_items_count": "0002",
                  "fine_items_count": "0000", "recall_items_count": "0000", "unavailable_holds_count": "0000"},
           {"AO": "MAIN", "AA": "100001", "AE": "Jane Reader", "BL": "Y", "CQ": "Y", "BH": None, "BV": None,
            "BZ": "0010", "CA": "0005", "CB": "0020", "CC": None, "BD": None, "BE": "jane@example.org",
            "BF": None, "AF": ["Welcome"]}),
    "12": ("12", {"ok": "1", "renewal_ok": "N", "magnetic_media": "N", "desensitize": "Y",
                  "transaction_date": DATE},
           {"AO": "MAIN", "AA": "BENCHP1", "AB": "BENCHI1", "AJ": "A Title", "AH": "20260115    235900",
            "BT": None, "CI": None, "BH": None, "BV": None, "CK": "001", "CH": None, "BK": None,
            "BL": "Y", "CQ": None}),
    "10": ("10", {"ok": "1", "resensitize": "Y", "magnetic_media": "N", "alert": "N", "transaction_date": DATE},
           {"AO": "MAIN", "AB": "BENCHI1", "AQ": "MAIN", "AJ": "A Title", "CL": None, "AA": "BENCHP1",
            "CK": "001", "CH": None, "CR": None, "CS": None, "CT": None, "CV": None, "CY": None, "DA": None}),
    "24": ("24", {"patron_status": _STATUS, "language": "001", "transaction_date": DATE},
           {"AO": "MAIN", "AA": "100001", "AE": "Jane Reader", "BL": "Y", "CQ": "Y", "BH": None, "BV": None}),
}


#: replies parsed too (by a front gateway): each has a list or a width-checked tag
REPLIES_PARSED = ("98", "18", "64", "12")

#: distinct dates in a cold run: more than any cache of the codec holds
COLD_DATES = 20000


def _dates(count: int) -> list[str]:
    return [f"2026{1 + i // 86400 % 12:02d}{1 + i // 3600 % 24:02d}    "
            f"{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}" for i in range(count)]


def _best(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Microseconds per call, best of ``repeat`` rounds of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def _best_each(fn: Callable[[object], object], items: list, repeat: int) -> float:
    """Microseconds per call of ``fn`` on each of ``items``, best of ``repeat`` rounds."""
    def one_round() -> None:
        for item in items:
            fn(item)
    return min(timeit.repeat(one_round, number=1, repeat=repeat)) / len(items) * 1e6


def run(number: int, repeat: int, cold: bool = False, cold_dates: int = COLD_DATES) -> list[tuple[str, float]]:
    """(label, microseconds per call) for every row."""
    rows: list[tuple[str, float]] = []
    dates = _dates(cold_dates) if cold else []
    for code, data in REQUESTS.items():
        if not cold:
            plain = data[:data.rindex(b"AY")]
            rows.append((f"parse {code} +AY/AZ", _best(lambda data=data: parse(data), number, repeat)))
            rows.append((f"parse {code}", _best(lambda plain=plain: parse(plain), number, repeat)))
        elif DATE.encode() in data:
            text = data[:data.rindex(b"AY")].decode("ascii")
            items = [_ed(text.replace(DATE, d) + "AY1AZ") for d in dates]
            rows.append((f"parse {code} +AY/AZ cold", _best_each(parse, items, repeat)))
    for code in REPLIES_PARSED:  # what a front gateway reads from the library system
        c, fixed, fields = REPLIES[code]
        name = next(k for k, v in fixed.items() if v == DATE)
        lines = [format_message(c, {**fixed, name: d}, fields, sequence="2", error_detection=True)
                 for d in (dates if cold else [DATE])]
        if cold:
            rows.append((f"parse reply {code} +AY/AZ cold", _best_each(parse, lines, repeat)))
        else:
            rows.append((f"parse reply {code} +AY/AZ", _best(lambda line=lines[0]: parse(line), number, repeat)))
    for code, (c, fixed, fields) in REPLIES.items():
        seq = "1" if c != "94" else None
        if not cold:
            rows.append((f"format {code} +AY/AZ", _best(
                lambda c=c, fixed=fixed, fields=fields, seq=seq: format_message(
                    c, fixed, fields, sequence=seq, error_detection=True), number, repeat)))
            continue
        name = next((k for k, v in fixed.items() if v == DATE), None)
        if name is None:
            continue
        variants = [{**fixed, name: d} for d in dates]
        rows.append((f"format {code} +AY/AZ cold", _best_each(
            lambda f, c=c, fields=fields, seq=seq: format_message(c, f, fields, sequence=seq, error_detection=True),
            variants, repeat)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/codec.py", description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--number", type=int, default=20000, help="calls per round (default 20000)")
    ap.add_argument("-r", "--repeat", type=int, default=5, help="rounds; the best is shown (default 5)")
    ap.add_argument("--cold", action="store_true", help="also a new date in every message (worst case)")
    args = ap.parse_args(argv)
    if args.number < 1 or args.repeat < 1:
        ap.error("--number and --repeat must be at least 1")
    rows = run(args.number, args.repeat)
    if args.cold:
        rows += run(args.number, args.repeat, cold=True)
    for label, us in rows:
        print(f"{label:<27} {us:6.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
