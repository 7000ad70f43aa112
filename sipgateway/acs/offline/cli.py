"""``sipgateway offline report`` and ``sipgateway offline export``: the offline journal in
the gateway's database, read (and, with ``export --mark-done``, taken) by an operator.

report: how many transactions are pending, sent (outcome being resolved), done and in
conflict, then every entry with the library system's answer; ``--json`` for scripts.
export: the pending transactions (or with ``--conflicts`` the conflicting ones) as a Koha
``.koc`` file or an Evergreen offline transaction file, on standard output.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from dataclasses import asdict
from datetime import datetime
from typing import TextIO

from sipgateway.acs.offline.export import FORMATS, export_lines
from sipgateway.acs.offline.journal import CONFLICT, PENDING, SENT, STATES, Entry, Journal, JournalError
from sipgateway.acs.postgresql.target import redact

PROG = "sipgateway offline"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="offline_command", required=True, metavar="report|export")
    report = sub.add_parser("report", help="pending, replayed and conflicting offline transactions")
    report.add_argument("--json", action="store_true", help="one JSON document instead of text")
    export = sub.add_parser("export", help="offline transactions as a Koha .koc or Evergreen offline file")
    export.add_argument("--format", required=True, choices=FORMATS, help="koc (Koha) or evergreen")
    export.add_argument("--since", metavar="DATE", help="only transactions accepted at or after DATE "
                                                        "(YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS', local time)")
    export.add_argument("--conflicts", action="store_true", help="the conflicting transactions instead of the "
                                                                 "pending ones")
    export.add_argument("--mark-done", action="store_true",
                        help="mark the pending transactions exported as done, so that the gateway never replays "
                             "them (use when the file is imported into the library system instead)")
    for q in (report, export):
        q.add_argument("--database", required=True, metavar="sqlite:PATH", help="the gateway's database")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from sipgateway.acs.sqlite.backend import database_path, missing_database

    try:
        path = database_path(args.database)
        since = _since(getattr(args, "since", None))
    except ValueError as e:
        err.write(f"{PROG}: {e}\n")
        return 2
    missing = missing_database(path)
    if missing:
        err.write(f"{PROG}: {missing}\n")
        return 1
    try:
        journal = Journal.open(path, migrate=False)
    except (sqlite3.Error, JournalError) as e:
        err.write(f"{PROG}: {e}\n")
        return 1
    path = redact(path)
    try:
        if args.offline_command == "report":
            return _report(journal, out, args.json)
        return _export(journal, out, err, args, since)
    except sqlite3.Error as e:
        err.write(f"{PROG}: {path!r}: {e}\n")
        return 1
    finally:
        journal.close()


def _since(text: str | None) -> float | None:
    if not text:
        return None
    for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text.strip(), form).timestamp()
        except ValueError:
            continue
    raise ValueError(f"--since {text!r}: use YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS'")


def _stamp(seconds: float | None) -> str:
    return "" if seconds is None else datetime.fromtimestamp(int(seconds)).strftime("%Y-%m-%d %H:%M:%S")


def _report(journal: Journal, out: TextIO, as_json: bool) -> int:
    counts = journal.counts()
    entries = journal.entries()
    if as_json:
        rows = [{**asdict(e), "accepted": _stamp(e.accepted_at), "due": _stamp(e.due_at)} for e in entries]
        out.write(json.dumps({"counts": counts, "entries": rows}, indent=1, ensure_ascii=False) + "\n")
        return 0
    out.write(", ".join(f"{counts[s]} {s}" for s in STATES) + "\n")
    for e in entries:
        out.write(_line(e) + "\n")
    return 0


def _line(e: Entry) -> str:
    who = f"patron {e.patron_id} " if e.patron_id else ""
    due = f" due {_stamp(e.due_at)}" if e.due_at is not None else ""
    text = f"#{e.id} {e.state:<8} {_stamp(e.accepted_at)} {e.kind:<8} {who}item {e.item_id}{due} via {e.account}"
    if e.reply:
        text += f"\n    answer: {e.reply}"
    if e.note:
        text += f"\n    note: {e.note}"
    return text


def _export(journal: Journal, out: TextIO, err: TextIO, args: argparse.Namespace, since: float | None) -> int:
    if args.conflicts and args.mark_done:
        err.write(f"{PROG} export: --mark-done takes pending transactions, not conflicts\n")
        return 2
    if args.conflicts:
        entries = journal.entries((CONFLICT,), since)
    elif args.mark_done:
        entries = journal.take_pending(time.time(), f"exported as a {args.format} file", since)
    else:
        entries = journal.entries((PENDING,), since)
    for line in export_lines(entries, args.format):
        out.write(line + "\n")
    unknown = journal.entries((SENT,), since)
    if unknown and not args.conflicts:
        err.write(f"{PROG} export: {len(unknown)} transaction(s) were sent and their outcome is being resolved; "
                  "not exported (see 'sipgateway offline report')\n")
    return 0
