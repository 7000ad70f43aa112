"""``sipgateway db``: put the library's data into the embedded library system's database,
and look after its SC accounts and locks, on a stopped or a running gateway.

Every command is one transaction: a file with a bad line, a wrong account name or two
passwords that differ change nothing.  A running gateway sees the change within a second
(its read cache lives that long).  Passwords are read from the terminal (or a file), never
from the command line, where every user of the machine could read them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sqlite3
import sys
from datetime import datetime
from typing import TextIO

from sipgateway.acs.postgresql import is_url
from sipgateway.acs.postgresql.target import redact
from sipgateway.acs.sqlite import accounts, imports
from sipgateway.acs.sqlite.context import Context, Tx
from sipgateway.acs.sqlite.credentials import VerifiedSecrets, hash_secret
from sipgateway.acs.sqlite.rules import CirculationRules
from sipgateway.acs.sqlite.schema import SchemaError, connect, has_table, migrate, write_transaction
from sipgateway.config import DEFAULT_DATABASE

PROG = "sipgateway db"
#: the longest password read from a file or the terminal
MAX_PASSWORD = 1024


class Failed(Exception):
    """What the command could not do, in one line (exit status 1)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("db", help="import patrons and items, manage SC accounts and locks",
                              description="The embedded library system's database: import patrons and items from "
                                          "CSV, add and change SC accounts, list and lift locks.")
    p.add_argument("--database", default=DEFAULT_DATABASE, metavar="sqlite:PATH",
                   help=f"the gateway's database (default {DEFAULT_DATABASE})")
    p.add_argument("--init", action="store_true", help="create the database if it does not exist")
    commands = p.add_subparsers(dest="db_command", required=True, metavar="COMMAND")

    imp = commands.add_parser("import", help="add or update patrons or items from a CSV file",
                              description="Add or update patrons or items from a UTF-8 CSV file with a header line "
                                          "(see README.rst, 'Importing data'). A bad line is reported by its number "
                                          "and nothing of the file is applied.")
    imp.add_argument("what", choices=sorted(imports.KINDS), metavar="patrons|items")
    imp.add_argument("file", metavar="FILE.csv")
    imp.set_defaults(handler=_import)

    account = commands.add_parser("account", help="add an SC account, change its password, disable or enable it",
                                  description="SC accounts kept in the database (an account with a password in the "
                                              "config file is written from there at every start).")
    actions = account.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    # no abbreviations: "--password SECRET" must not be taken for --password-file
    add = actions.add_parser("add", allow_abbrev=False, help="add an SC account",
                             description="Add an SC account; its password is read from the terminal, twice, or "
                                         "from --password-file.")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--institution", required=True, metavar="I", help="its institution id (AO)")
    add.add_argument("--library-name", default="", metavar="TEXT", help="the library name its 98 reports (AM)")
    add.add_argument("--terminal-location", default="", metavar="TEXT",
                     help="where its terminals are, when their 93 gives no CP")
    add.add_argument("--encoding", default="utf-8", help="its character set (default utf-8; e.g. ascii, cp850)")
    add.add_argument("--error-detection", default="auto", choices=("auto", "required", "off"),
                     help="its checksum policy (default auto)")
    _password_file(add)
    add.set_defaults(handler=_account_add)
    passwd = actions.add_parser("passwd", allow_abbrev=False, help="change an SC account's password",
                                description="Change an SC account's password (read from the terminal, twice, or "
                                            "from --password-file).")
    passwd.add_argument("name", metavar="NAME")
    _password_file(passwd)
    passwd.set_defaults(handler=_account_passwd)
    for action, enabled in (("disable", False), ("enable", True)):
        sub = actions.add_parser(action, help=f"{action} an SC account",
                                 description=f"{action.capitalize()} an SC account: a disabled account cannot log in.")
        sub.add_argument("name", metavar="NAME")
        sub.set_defaults(handler=_account_enabled, enabled=enabled)

    lockouts = commands.add_parser("lockouts", help="list login lockouts and PIN locks",
                                   description="List the locks in force and the failures being counted.")
    lockouts.set_defaults(handler=_unlock, list=True, subject=None)
    unlock = commands.add_parser("unlock", help="lift the locks of an address, an SC account or a patron",
                                 description="Lift every login lockout and PIN lock of a client address, an SC "
                                             "account or a patron, and forget the failures counted for it.")
    unlock.add_argument("subject", metavar="ADDRESS|ACCOUNT|PATRON")
    unlock.set_defaults(handler=_unlock, list=False)


def _password_file(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-file", metavar="FILE",
                   help="read the password from the first line of FILE instead of the terminal")


# --- the database --------------------------------------------------------------------------

def _open(args: argparse.Namespace) -> tuple[sqlite3.Connection, Tx]:
    from sipgateway.acs.sqlite.backend import database_path, missing_database

    path = database_path(args.database)
    shown = redact(path)
    if not is_url(path):
        path = shown = os.path.abspath(path)
        missing = None if args.init else missing_database(path, can_init=True)
        if missing:
            raise Failed(missing)
    try:
        conn = connect(path)
        if is_url(path) and not args.init and not has_table(conn, "schema_version"):
            conn.close()
            raise Failed(f"{shown!r} has no sipgateway tables (give the gateway's --database, or --init to "
                         "create them)")
        migrate(conn)
    except (sqlite3.Error, SchemaError) as e:
        raise Failed(f"cannot open {shown!r}: {e}") from None
    ctx = Context(clock=datetime.now, currency="USD", rules=CirculationRules(), secrets=VerifiedSecrets(1))
    return conn, Tx(conn, ctx)


def _in_transaction(args: argparse.Namespace, work) -> int:
    """Run ``work(conn, tx)`` in one transaction: its line goes out when it has committed."""
    try:
        conn, tx = _open(args)
    except ValueError as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 2
    except Failed as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 1
    try:
        with write_transaction(conn):
            done = work(conn, tx)
    except (Failed, ValueError, sqlite3.Error) as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 1
    finally:
        conn.close()
    sys.stdout.write(done + "\n")
    return 0


# --- import --------------------------------------------------------------------------------

def _import(args: argparse.Namespace) -> int:
    kind = imports.KINDS[args.what]
    try:
        with open(args.file, "rb") as f:
            data = f.read()
    except OSError as e:
        sys.stderr.write(f"{PROG}: cannot read {args.file}: {e.strerror}\n")
        return 1
    try:
        parsed = imports.parse(data, kind)
    except imports.BadFile as e:
        for problem in e.problems:
            sys.stderr.write(f"{PROG}: {args.file}: {problem}\n")
        sys.stderr.write(f"{PROG}: {args.file}: nothing imported\n")
        return 1
    if kind is imports.PATRONS:
        imports.hash_pins(parsed)

    def work(conn: sqlite3.Connection, tx: Tx) -> str:
        added, updated = imports.write(conn, parsed, kind, tx.now)
        return f"{args.what}: {added} added, {updated} updated from {args.file}"

    return _in_transaction(args, work)


# --- SC accounts -----------------------------------------------------------------------------

def read_password(args: argparse.Namespace, stdin: TextIO | None = None) -> str:
    """From ``--password-file`` (its first line) or the terminal (twice, the same)."""
    if args.password_file:
        try:
            with open(args.password_file, encoding="utf-8") as f:
                password = f.readline(MAX_PASSWORD + 2).rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as e:
            raise Failed(f"cannot read the password from {args.password_file}: "
                         f"{getattr(e, 'strerror', None) or 'not UTF-8'}") from None
    else:
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("The same again: ") != password:
            raise Failed("the two passwords differ; nothing changed")
    if not password:
        raise Failed("the password is empty; nothing changed")
    if len(password) > MAX_PASSWORD:
        raise Failed(f"the password is longer than {MAX_PASSWORD} characters; nothing changed")
    return password


def _with_password(args: argparse.Namespace, work) -> int:
    try:
        password = read_password(args)
    except Failed as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 1
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write(f"\n{PROG}: no password given; nothing changed\n")
        return 1
    return _in_transaction(args, lambda conn, tx: work(tx, password))


def _account_add(args: argparse.Namespace) -> int:
    def work(tx: Tx, password: str) -> str:
        if tx.one("SELECT 1 FROM sc_accounts WHERE name = ?", args.name):
            raise Failed(f"the SC account {args.name!r} exists already (change its password with 'account passwd')")
        accounts.ensure(tx, args.name, password, args.institution, args.encoding, args.error_detection,
                        args.library_name, args.terminal_location, True)
        return f"added SC account {args.name!r} of institution {args.institution!r}"

    return _with_password(args, work)


def _account_passwd(args: argparse.Namespace) -> int:
    def work(tx: Tx, password: str) -> str:
        _exists(tx, args.name)
        tx.run("UPDATE sc_accounts SET password_hash = ? WHERE name = ?", hash_secret(password), args.name)
        return f"changed the password of SC account {args.name!r}"

    return _with_password(args, work)


def _account_enabled(args: argparse.Namespace) -> int:
    def work(conn: sqlite3.Connection, tx: Tx) -> str:
        _exists(tx, args.name)
        tx.run("UPDATE sc_accounts SET enabled = ? WHERE name = ?", int(args.enabled), args.name)
        return f"{'enabled' if args.enabled else 'disabled'} SC account {args.name!r}"

    return _in_transaction(args, work)


def _exists(tx: Tx, name: str) -> None:
    if not tx.one("SELECT 1 FROM sc_accounts WHERE name = ?", name):
        raise Failed(f"there is no SC account {name!r}")


# --- locks -----------------------------------------------------------------------------------

def _unlock(args: argparse.Namespace) -> int:
    from sipgateway import unlock

    return unlock.run(args)
