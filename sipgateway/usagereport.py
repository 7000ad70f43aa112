"""``sipgateway report usage``: the usage figures in the gateway's database, added up by
the dimensions asked for, one column per outcome.  It opens the file read-only, so it can
run beside a running gateway (whose figures reach the file every 10 seconds)."""

from __future__ import annotations

import argparse
import csv
import os
import sqlite3
import sys
from datetime import date
from typing import TextIO
from urllib.parse import quote

from sipgateway.acs.postgresql import is_url
from sipgateway.acs.postgresql.target import redact
from sipgateway.config import DEFAULT_DATABASE

#: what ``--by`` may name, in the order the columns come out
DIMENSIONS = ("day", "institution", "listener", "account", "terminal", "code")
DEFAULT_BY = "day,institution,listener,account,terminal,code"
#: the outcomes a request can have (gateway.py), each a column
OUTCOMES = ("ok", "refused", "failed", "bad", "replayed")
PROG = "sipgateway report usage"


class Usage(Exception):
    """A bad argument: exit status 2."""


def _day(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {value!r}") from None


def _by(value: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    wrong = [name for name in names if name not in DIMENSIONS]
    if wrong or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(wrong) or 'nothing'}: --by takes one or more of "
                                         f"{','.join(DIMENSIONS)}")
    return tuple(dict.fromkeys(names))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database", default=DEFAULT_DATABASE, metavar="sqlite:PATH",
                   help=f"the gateway's database (default {DEFAULT_DATABASE}); opened read-only")
    p.add_argument("--from", dest="first", type=_day, metavar="DATE", help="first day, YYYY-MM-DD (default: all)")
    p.add_argument("--to", dest="last", type=_day, metavar="DATE", help="last day, YYYY-MM-DD (default: all)")
    p.add_argument("--by", type=_by, default=_by(DEFAULT_BY), metavar="DIMENSIONS",
                   help=f"comma-separated, one or more of {','.join(DIMENSIONS)} (default: all of them)")
    p.add_argument("--csv", action="store_true", help="comma-separated values with a header line")


def register(subparsers: argparse._SubParsersAction) -> None:
    """``sipgateway report usage``."""
    p = subparsers.add_parser("report", help="reports from the gateway's database",
                              description="Reports from the gateway's database.")
    reports = p.add_subparsers(dest="report", required=True, metavar="REPORT")
    usage = reports.add_parser("usage", help="requests per day, institution, listener, account, terminal and code",
                               description="Requests answered, added up by the dimensions --by names, with a column "
                                           "per outcome: ok, refused (the reply says not done), failed (the library "
                                           "system broke or did not answer), bad (96), replayed (a resend answered "
                                           "from the last reply), and their total.")
    add_arguments(usage)
    usage.set_defaults(handler=run)


def open_read_only(database: str) -> sqlite3.Connection:
    """The database file, read-only; ``OSError`` or ``sqlite3.Error`` saying why not."""
    from sipgateway.acs.sqlite.backend import database_path, missing_database

    path = database_path(database)
    if is_url(path):   # PostgreSQL: a connection that cannot write
        from sipgateway.acs.sqlite.schema import connect

        conn = connect(path)
        conn.execute("SET default_transaction_read_only = on")
        return conn  # type: ignore[return-value]  # sqlite3's API, see acs/postgresql/connection.py
    path = os.path.abspath(path)
    missing = missing_database(path)
    if missing:
        raise FileNotFoundError(missing)
    return sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)


def query(conn: sqlite3.Connection, by: tuple[str, ...], first: str | None, last: str | None) -> list[tuple]:
    """Rows of (the ``by`` values..., a count per outcome..., total)."""
    columns = ", ".join(by)
    outcomes = ", ".join(f"sum(CASE WHEN outcome = '{o}' THEN requests ELSE 0 END)" for o in OUTCOMES)
    sql = (f"SELECT {columns}, {outcomes}, sum(requests) FROM usage_figures "
           f"WHERE day >= ? AND day <= ? GROUP BY {columns} ORDER BY {columns}")
    return conn.execute(sql, (first or "", last or "9999-12-31")).fetchall()


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if args.first and args.last and args.first > args.last:
        err.write(f"{PROG}: --from {args.first} is after --to {args.last}\n")
        return 2
    try:
        conn = open_read_only(args.database)
    except ValueError as e:
        err.write(f"{PROG}: {e}\n")
        return 2
    except (OSError, sqlite3.Error) as e:
        err.write(f"{PROG}: {e}\n")
        return 1
    try:
        rows = query(conn, args.by, args.first, args.last)
    except sqlite3.Error as e:
        if "no such table" in str(e):
            err.write(f"{PROG}: {redact(args.database)!r} has no usage figures: start this version of the gateway "
                      "on it once (it adds them)\n")
        else:
            err.write(f"{PROG}: {redact(args.database)!r}: {e}\n")
        return 1
    finally:
        conn.close()
    header = (*args.by, *OUTCOMES, "total")
    if args.csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return 0
    if not rows:
        out.write("no usage figures" + _period(args.first, args.last) + "\n")
        return 0
    width = len(args.by)
    totals = [sum(row[i] for row in rows) for i in range(width, len(header))]
    table = [header, *[tuple(str(v) if v != "" else "-" for v in row) for row in rows],
             ("total", *[""] * (width - 1), *map(str, totals))]
    sizes = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        cells = [cell.ljust(sizes[i]) if i < width else cell.rjust(sizes[i]) for i, cell in enumerate(line)]
        out.write("  ".join(cells).rstrip() + "\n")
    return 0


def _period(first: str | None, last: str | None) -> str:
    if first and last:
        return f" from {first} to {last}"
    if first:
        return f" from {first}"
    return f" up to {last}" if last else ""
