"""``sipgateway check-config FILE``: every check start-up makes, without binding anything.

The config loader stops at the first problem, so a file with problems is read again one
section at a time (the ``[gateway]`` section beside each, when it is good): each section's
first problem is reported, and the sections without one are checked together as start-up
would: listeners' endpoint strings, their certificate and key files (read, and matched),
the port numbers and interfaces (not tried: nothing is bound), and the accounts listeners
name (``account``, ``cert_accounts``) against the file's ``[account:NAME]`` sections and,
when ``--database`` is given or the file names one, the database (opened read-only).
Exit 0 with a summary, 1 with one line per problem, 2 for a wrong command line.
"""

from __future__ import annotations

import argparse
import configparser
import os
import sqlite3
import sys
from dataclasses import dataclass, field
from typing import TextIO

from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from sipgateway.acs.postgresql import is_url
from sipgateway.config import Config, ConfigError, load


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: the summary of a good file, one line each
    summary: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="the ini file (as given to twistd sipgateway --config)")
    p.add_argument("--database", metavar="sqlite:PATH",
                   help="check the accounts listeners name in this database too (default: the file's "
                        "[gateway] database, if it names one)")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    found = check(args.file, args.database)
    for line in found.warnings:
        out.write(f"{args.file}: warning: {line}\n")
    if found.problems:
        for line in found.problems:
            err.write(f"{args.file}: {line}\n")
        return 1
    out.write(f"{args.file}: OK\n")
    for line in found.summary:
        out.write(f"  {line}\n")
    return 0


def check(path: str, database: str | None = None) -> Findings:
    found = Findings()
    config = _load(path, database, found)
    if config is None:
        return found
    _check_listeners(config, found)
    known, where = _known_accounts(path, config, database, found)
    from sipgateway.startup import listener_account_problems

    for problem in listener_account_problems(config, known):
        found.problem(problem)
    if not found.problems:
        found.summary += _summary(config, where)
    return found


def _load(path: str, database: str | None, found: Findings) -> Config | None:
    """The config of the sections without problems; each section's problem in ``found``."""
    try:
        return load(path, database=database)
    except ConfigError as e:
        first = str(e)
    parser = _parser(path)
    if parser is None:  # the file itself cannot be read: that is the one problem
        found.problem(first)
        return None
    names = parser.sections()
    base = []
    if "gateway" in names:
        problem = _problem(path, database, ["gateway"])
        if problem is None:
            base = ["gateway"]
        else:
            found.problem(problem)
    good = list(base)
    for name in names:
        if name == "gateway":
            continue
        problem = _problem(path, database, [*base, name])
        if problem is None:
            good.append(name)
        else:
            found.problem(problem)
    if not found.problems:
        found.problem(first)  # a problem of sections together
        return None
    try:
        return load(path, database=database, sections=good)
    except ConfigError as e:
        found.problem(str(e))
        return None


def _parser(path: str) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error):
        return None
    return parser


def _problem(path: str, database: str | None, sections: list[str]) -> str | None:
    try:
        load(path, database=database, sections=sections)
    except ConfigError as e:
        return str(e)
    return None


def _check_listeners(config: Config, found: Findings) -> None:
    from twisted.internet import reactor

    from sipgateway.transports.listening import address_problem, listener_endpoint

    def warned(event: dict) -> None:
        if event.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical):
            found.warnings.append(formatEvent(event))

    globalLogPublisher.addObserver(warned)  # an expired certificate is a warning at start-up too
    try:
        for listener in config.listeners:
            problem = address_problem(listener.endpoint)
            if problem is not None:
                found.problem(f"listener {listener.settings.name}: {problem}")
                continue
            try:
                listener_endpoint(reactor, listener)
            except ConfigError as e:
                found.problem(str(e))
    finally:
        globalLogPublisher.removeObserver(warned)


def _known_accounts(path: str, config: Config, database: str | None,
                    found: Findings) -> tuple[set[str], str]:
    """The SC accounts listeners may name, and where they were looked up."""
    declared = {a.name for a in config.accounts if a.password}
    url = database or _named_database(path)
    if url is None:
        return declared, "the file's [account:NAME] sections (no database given: --database sqlite:PATH)"
    from sipgateway.acs.sqlite.backend import database_path
    from sipgateway.acs.sqlite.fixtures import ACCOUNTS

    try:
        file = database_path(url)
    except ValueError as e:
        found.problem(str(e))
        return declared, ""
    if is_url(file):
        return _postgresql_accounts(config, declared, found)
    if not os.path.exists(file) and (config.demo or config.init):  # start-up creates it
        demo = {row[0] for row in ACCOUNTS} if config.demo else set()
        return declared | demo, f"the file{' and the demo fixtures' if demo else ''} ({file} is created at start-up)"
    try:
        names = _database_accounts(url, file)
    except ValueError as e:
        found.problem(str(e))
        return declared, ""
    return declared | names, f"the file and the database {url} ({len(names)} SC accounts)"


def _named_database(path: str) -> str | None:
    """The file's [gateway] database, as written (also when another [gateway] key is wrong)."""
    parser = _parser(path)
    return parser.get("gateway", "database", fallback=None) if parser is not None else None


def _database_accounts(url: str, file: str) -> set[str]:
    """The SC accounts in the database, which is opened read-only (a running gateway's too)."""
    where = f"database {url!r}"
    if not os.path.exists(file):
        raise ValueError(f"{where}: {file} does not exist (start-up would stop; create it once with --init)")
    try:
        conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        try:
            return {row[0] for row in conn.execute("SELECT name FROM sc_accounts")}
        finally:
            conn.close()
    except sqlite3.Error as e:
        raise ValueError(f"{where}: cannot read its SC accounts: {e}") from None


def _postgresql_accounts(config: Config, declared: set[str], found: Findings) -> tuple[set[str], str]:
    """As for a file, from a ``postgresql://`` database (its tables created at start-up
    with --init or --demo)."""
    from sipgateway.acs.postgresql.target import remember
    from sipgateway.acs.sqlite.fixtures import ACCOUNTS
    from sipgateway.acs.sqlite.schema import connect, has_table

    remember(config.database, config.database_password)
    try:
        conn = connect(config.database)
        try:
            if not has_table(conn, "sc_accounts"):
                if config.demo or config.init:
                    demo = {row[0] for row in ACCOUNTS} if config.demo else set()
                    return declared | demo, f"the file{' and the demo fixtures' if demo else ''} (the tables of " \
                                            f"{config.database} are created at start-up)"
                found.problem(f"database {config.database!r}: it has no sipgateway tables (start-up would stop; "
                              "create them once with --init)")
                return declared, ""
            names = {row[0] for row in conn.execute("SELECT name FROM sc_accounts")}
        finally:
            conn.close()
    except sqlite3.Error as e:
        found.problem(f"database {config.database!r}: cannot read its SC accounts: {e}")
        return declared, ""
    return declared | names, f"the file and the database {config.database} ({len(names)} SC accounts)"


def _summary(config: Config, where: str) -> list[str]:
    lines = [f"listener {li.settings.name}: {li.kind}:{li.endpoint}"
             + (f" (account {li.settings.account})" if li.settings.account else "")
             + (f" ({len(li.settings.cert_accounts)} cert_accounts)" if li.settings.cert_accounts else "")
             for li in config.listeners]
    declared = [a.name for a in config.accounts]
    lines.append("SC account sections: " + (", ".join(declared) if declared else "none"))
    lines.append(f"accounts listeners name were looked up in {where}")
    lines.append(f"database: {config.database}" + (" (demo fixtures when new)" if config.demo else ""))
    return lines
