"""Offline transactions as the files library systems import by hand, for those that ignore
SIP2's no-block flag or when staff want to resolve conflicts themselves.

* Koha's offline circulation file (``.koc``): a ``Version=1.0`` header line of tab-separated
  ``key=value`` pairs, then one tab-separated line per transaction: the time as
  ``YYYY-MM-DD HH:MM:SS mmm`` (milliseconds), then ``issue`` CARDNUMBER BARCODE or
  ``return`` BARCODE (``payment`` CARDNUMBER AMOUNT is never written: no fee is taken
  offline).
* Evergreen's offline transaction file: one JSON object per line, ``type`` checkout or
  checkin, ``timestamp`` (epoch seconds), ``barcode``, and for a checkout
  ``patron_barcode``, ``checkout_time`` and ``due_date``, for a checkin ``backdate``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sipgateway import __version__
from sipgateway.acs.offline.journal import CHECKOUT, Entry

FORMATS = ("koc", "evergreen")


def koc_time(seconds: float) -> str:
    at = datetime.fromtimestamp(seconds)
    return f"{at:%Y-%m-%d %H:%M:%S} {at.microsecond // 1000:03d}"


def koc_lines(entries: Iterable[Entry]) -> list[str]:
    lines = [f"Version=1.0\tGenerator=sipgateway\tGeneratorVersion={__version__}"]
    for e in entries:
        if e.kind == CHECKOUT:
            lines.append(f"{koc_time(e.accepted_at)}\tissue\t{_clean(e.patron_id)}\t{_clean(e.item_id)}")
        else:
            lines.append(f"{koc_time(e.accepted_at)}\treturn\t{_clean(e.item_id)}")
    return lines


def evergreen_lines(entries: Iterable[Entry]) -> list[str]:
    lines = []
    for e in entries:
        at = datetime.fromtimestamp(int(e.accepted_at))
        record: dict[str, object]
        if e.kind == CHECKOUT:
            due = datetime.fromtimestamp(int(e.due_at)) if e.due_at is not None else None
            record = {"type": "checkout", "timestamp": int(e.accepted_at), "barcode": e.item_id,
                      "patron_barcode": e.patron_id, "checkout_time": f"{at:%Y-%m-%d %H:%M:%S}",
                      "due_date": f"{due:%Y-%m-%d}" if due else ""}
        else:
            record = {"type": "checkin", "timestamp": int(e.accepted_at), "barcode": e.item_id,
                      "backdate": f"{at:%Y-%m-%d}"}
        lines.append(json.dumps(record, ensure_ascii=False))
    return lines


def export_lines(entries: Iterable[Entry], form: str) -> list[str]:
    if form == "koc":
        return koc_lines(entries)
    if form == "evergreen":
        return evergreen_lines(entries)
    raise ValueError(f"--format {form!r}: use {' or '.join(FORMATS)}")


def _clean(value: str) -> str:
    """A barcode as one tab-separated column (a tab or line break in it would break the file)."""
    return value.replace("\t", " ").replace("\r", " ").replace("\n", " ")
