"""Patrons and items from CSV files (``sipgateway db import``): read and check the whole
file first, then write it in one transaction, so that a file with a bad line changes nothing.

A file is UTF-8 (a byte-order mark is allowed) with a header line naming its columns, in
any order and case; a row whose barcode is in the database updates that row (only the
columns the file has), any other adds one.  PINs are hashed as the gateway verifies them
(credentials.py); the hashing runs on every core, before the transaction.
"""

from __future__ import annotations

import csv
import io
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from sipgateway.acs.sqlite.context import stamp
from sipgateway.acs.sqlite.credentials import DEFAULT_ITERATIONS, hash_secret

#: the longest value a text column takes (a SIP2 field holds at most 255 characters)
MAX_TEXT = 255
#: bad lines listed at most; the rest are counted
MAX_PROBLEMS = 20


class BadFile(ValueError):
    """The file cannot be imported: one line per problem, each naming its line number."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise ValueError(f"is longer than {MAX_TEXT} characters")
    return value


def _three_digits(value: str) -> str:
    if len(value) != 3 or not value.isdigit():
        raise ValueError(f"{value!r} is not three digits")
    return value


def _day(value: str) -> str | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise ValueError(f"{value!r} is not a date YYYY-MM-DD") from None


def _flag(value: str) -> int:
    found = {"1": 1, "yes": 1, "true": 1, "y": 1, "0": 0, "no": 0, "false": 0, "n": 0}.get(value.lower())
    if found is None:
        raise ValueError(f"{value!r} is not yes or no (1 or 0)")
    return found


def _count(value: str) -> int:
    if not value.isdigit() or int(value) > 100_000:
        raise ValueError(f"{value!r} is not a whole number from 0 to 100000")
    return int(value)


def _cents(value: str) -> int:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount < 0 or amount > 1_000_000 or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"{value!r} is not an amount like 10.00")
    return int(amount * 100)


def _security(value: str) -> int:
    if value not in ("0", "1", "2", "3"):
        raise ValueError(f"{value!r} is not 0 (other), 1 (none), 2 (tattle-tape) or 3 (whisper tape)")
    return int(value)


@dataclass(frozen=True)
class Column:
    #: the table's column
    field: str
    check: Callable[[str], object]
    #: what an empty cell means
    default: object


PATRON_COLUMNS = {
    "barcode": Column("barcode", _text, ""),
    "pin": Column("pin_hash", _text, None),  # hashed before it is written
    "name": Column("name", _text, ""),
    "email": Column("email", _text, ""),
    "phone": Column("phone", _text, ""),
    "address": Column("address", _text, ""),
    "language": Column("language", _three_digits, "000"),
    "home_library": Column("home_library", _text, ""),
    "expires_on": Column("expires_on", _day, None),
    "blocked": Column("blocked", _flag, 0),
    "block_message": Column("block_message", _text, ""),
    "fee_limit": Column("fee_limit_cents", _cents, 1000),
    "charge_limit": Column("charge_limit", _count, 25),
    "overdue_limit": Column("overdue_limit", _count, 5),
    "hold_limit": Column("hold_limit", _count, 10),
}
ITEM_COLUMNS = {
    "barcode": Column("barcode", _text, ""),
    "title": Column("title", _text, ""),
    "author": Column("author", _text, ""),
    "call_number": Column("call_number", _text, ""),
    "media_type": Column("media_type", _three_digits, "001"),
    "collection_code": Column("collection_code", _text, ""),
    "permanent_location": Column("permanent_location", _text, ""),
    "current_location": Column("current_location", _text, ""),
    "owner": Column("owner", _text, ""),
    "security_marker": Column("security_marker", _security, 2),
    "magnetic_media": Column("magnetic_media", _flag, 0),
    "properties": Column("properties", _text, ""),
}


@dataclass(frozen=True)
class Kind:
    table: str
    columns: dict[str, Column]
    required: tuple[str, ...]


PATRONS = Kind("patrons", PATRON_COLUMNS, ("barcode", "pin", "name"))
ITEMS = Kind("items", ITEM_COLUMNS, ("barcode", "title"))
KINDS = {"patrons": PATRONS, "items": ITEMS}


@dataclass
class Parsed:
    header: tuple[str, ...]
    #: one dict per data line: column name -> checked value
    rows: list[dict[str, object]]


def parse(data: bytes, kind: Kind) -> Parsed:
    """The file's rows, checked; ``BadFile`` listing every bad line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise BadFile([f"line {line}: not UTF-8 (byte {data[e.start]:#04x})"]) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[str] = []
    try:
        header = tuple(name.strip().lower() for name in next(reader, []))
    except csv.Error as e:
        raise BadFile([f"line 1: {e}"]) from None
    _check_header(header, kind, problems)
    if problems:
        raise BadFile(problems)
    rows: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    while True:
        try:
            values = next(reader, None)
        except csv.Error as e:
            problems.append(f"line {reader.line_num}: {e}")
            break
        if values is None:
            break
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue  # a blank line
        if len(values) != len(header):
            problems.append(f"line {line}: {len(values)} values, the header names {len(header)}")
            continue
        row = _row(header, values, kind, line, problems)
        if row is None:
            continue
        barcode = str(row["barcode"])
        if barcode in seen:
            problems.append(f"line {line}: barcode {barcode!r} is on line {seen[barcode]} too")
            continue
        seen[barcode] = line
        rows.append(row)
    if problems:
        if len(problems) > MAX_PROBLEMS:
            problems[MAX_PROBLEMS:] = [f"and {len(problems) - MAX_PROBLEMS} more bad lines"]
        raise BadFile(problems)
    return Parsed(header, rows)


def _check_header(header: tuple[str, ...], kind: Kind, problems: list[str]) -> None:
    for name in dict.fromkeys(header):
        if name not in kind.columns:
            problems.append(f"line 1: unknown column {name!r} (the columns are {', '.join(kind.columns)})")
        elif header.count(name) > 1:
            problems.append(f"line 1: column {name!r} is named twice")
    missing = [name for name in kind.required if name not in header]
    if missing:
        problems.append(f"line 1: the header must name the columns {', '.join(kind.required)}; "
                        f"{', '.join(missing)} missing")


def _row(header: tuple[str, ...], values: list[str], kind: Kind, line: int,
         problems: list[str]) -> dict[str, object] | None:
    row: dict[str, object] = {}
    bad = False
    for name, raw in zip(header, values, strict=True):
        value = raw.strip()
        column = kind.columns[name]
        if name == "barcode" and not value:
            problems.append(f"line {line}: the barcode is empty")
            bad = True
            continue
        try:
            row[name] = column.check(value) if value or name == "pin" else column.default
        except ValueError as e:
            shown = "the PIN is too long" if name == "pin" else f"{name} {e}"  # never a PIN in an error
            problems.append(f"line {line}: {shown}")
            bad = True
    return None if bad else row


def hash_pins(parsed: Parsed, iterations: int = DEFAULT_ITERATIONS) -> None:
    """Replace each PIN by its hash (None where the cell is empty), on every core:
    PBKDF2 releases the interpreter's lock while it runs."""
    pins = [str(row["pin"]) for row in parsed.rows]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        hashes = list(pool.map(lambda pin: hash_secret(pin, iterations) if pin else None, pins))
    for row, hashed in zip(parsed.rows, hashes, strict=True):
        row["pin"] = hashed


def write(conn: sqlite3.Connection, parsed: Parsed, kind: Kind, now: datetime) -> tuple[int, int]:
    """Add or update every row, in the caller's transaction; (added, updated)."""
    header = parsed.header
    fields = [kind.columns[name].field for name in header]
    updates = []
    for name, field in zip(header, fields, strict=True):
        if name == "pin":  # an empty PIN leaves an existing patron's PIN as it is
            updates.append(f"{field} = coalesce(excluded.{field}, {kind.table}.{field})")
        elif name != "barcode":
            updates.append(f"{field} = excluded.{field}")
    extra, extra_values = ["created_at"], [stamp(now)]
    if kind is ITEMS and "current_location" not in header and "permanent_location" in header:
        extra.append("current_location")  # a new item starts where it belongs
    sql = (f"INSERT INTO {kind.table} ({', '.join(fields + extra)}) VALUES ({', '.join('?' * len(fields + extra))}) "
           f"ON CONFLICT (barcode) DO UPDATE SET {', '.join(updates) or 'barcode = excluded.barcode'}")
    barcodes = [row["barcode"] for row in parsed.rows]
    updated = 0
    for start in range(0, len(barcodes), 500):  # SQLite takes a bounded number of parameters
        chunk = barcodes[start:start + 500]
        updated += conn.execute(f"SELECT count(*) FROM {kind.table} WHERE barcode IN ({', '.join('?' * len(chunk))})",
                                chunk).fetchone()[0]
    moved = ["permanent_location"] if len(extra) > 1 else []
    conn.executemany(sql, ([row[name] for name in header] + extra_values + [row[name] for name in moved]
                           for row in parsed.rows))
    return len(barcodes) - updated, updated
