"""``sipgateway unlock``: list and lift login lockouts and PIN locks in the gateway's database.

The gateway reads its locks from the database on every login and PIN check, so what this
command removes is gone for a running gateway at once, without a restart.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from datetime import datetime
from typing import TextIO

from sipgateway.attempts import LOGIN, LOGIN_ACCOUNT, LOGIN_ADDRESS, PIN_PATRON, PIN_TERMINAL, Record
from sipgateway.config import DEFAULT_DATABASE

_WHAT = {LOGIN: "login from address with account", LOGIN_ADDRESS: "login from address",
         LOGIN_ACCOUNT: "login to account", PIN_PATRON: "PIN of patron", PIN_TERMINAL: "PINs from terminal"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("subject", metavar="ADDRESS|ACCOUNT|PATRON", nargs="?",
                   help="lift every lock and forget every failure counted for this client address, SC account "
                        "or patron id")
    p.add_argument("--list", action="store_true", help="list the locks in force and the failures being counted")
    p.add_argument("--database", default=DEFAULT_DATABASE, metavar="sqlite:PATH",
                   help=f"the gateway's database (default {DEFAULT_DATABASE})")


def _show(record: Record, now: float, was: str = "") -> str:
    key = record.key
    if record.locked(now):
        until = datetime.fromtimestamp(record.locked_until).strftime("%Y-%m-%d %H:%M:%S")
        state = f"{was}LOCKED until {until}"
    else:
        state = f"{was}not locked"
    source = f", last from {record.last_from}" if record.last_from else ""
    return f"{_WHAT.get(key.scope, key.scope)} {key.describe()}: {state}, {record.failures} failed{source}"


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if bool(args.list) == bool(args.subject):
        err.write("sipgateway unlock: give ADDRESS, ACCOUNT or PATRON to unlock, or --list\n")
        return 2
    from sipgateway.acs.postgresql.target import redact
    from sipgateway.acs.sqlite import attempts
    from sipgateway.acs.sqlite.backend import database_path, missing_database
    from sipgateway.acs.sqlite.schema import connect, write_transaction

    try:
        path = database_path(args.database)
    except ValueError as e:
        err.write(f"sipgateway unlock: {e}\n")
        return 2
    missing = missing_database(path)
    if missing:
        err.write(f"sipgateway unlock: {missing}\n")
        return 1
    try:
        conn = connect(path)
    except sqlite3.Error as e:
        err.write(f"sipgateway unlock: cannot open {redact(path)!r}: {e}\n")
        return 1
    path = redact(path)
    now = time.time()
    try:
        with write_transaction(conn):
            records = attempts.records(conn) if args.list else attempts.unlock(conn, args.subject.strip())
    except sqlite3.Error as e:
        if "no such table" in str(e):
            err.write(f"sipgateway unlock: {path!r} has no lockout table: start this version of the gateway on it "
                      "once (it adds the table)\n")
        else:
            err.write(f"sipgateway unlock: {path!r}: {e}\n")
        return 1
    finally:
        conn.close()
    if args.list:
        locked = [r for r in records if r.locked(now)]
        counting = [r for r in records if not r.locked(now) and r.expires_at > now]
        if not locked and not counting:
            out.write("no locks, no failures being counted\n")
        for record in locked + counting:
            out.write(_show(record, now) + "\n")
        return 0
    if not records:
        err.write(f"sipgateway unlock: nothing is locked or counted for {args.subject!r}\n")
        return 1
    for record in records:
        out.write("cleared " + _show(record, now, was="was ") + "\n")
    return 0
