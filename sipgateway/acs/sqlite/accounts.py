"""SC (self-check) accounts: login (93), lookup without a password, and config upserts."""

from __future__ import annotations

import codecs
import sqlite3

from sipgateway.acs import model as m
from sipgateway.acs.sqlite.context import Tx
from sipgateway.acs.sqlite.credentials import check_secret, hash_secret


def _account(row: sqlite3.Row) -> m.Account:
    return m.Account(name=row["name"], institution=row["institution"], encoding=row["encoding"],
                     error_detection=m.ErrorDetection(row["error_detection"]), library_name=row["library_name"],
                     terminal_location=row["terminal_location"])


def _enabled(tx: Tx, name: str) -> sqlite3.Row | None:
    if not name:
        return None
    return tx.one("SELECT * FROM sc_accounts WHERE name = ? AND enabled = 1", name)


def authenticate(tx: Tx, name: str, password: str) -> m.Account | None:
    row = _enabled(tx, name)
    if row is None or not tx.ctx.secrets.verify("sc", name, password, row["password_hash"]):
        return None
    return _account(row)


def lookup(tx: Tx, name: str) -> m.Account | None:
    row = _enabled(tx, name)
    return None if row is None else _account(row)


def status(tx: Tx, supported: frozenset[str]) -> m.ACSStatus:
    """The 98 for the terminal's account: online, with the names the account gives."""
    t = tx.terminal
    assert t is not None
    row = tx.one("SELECT library_name, terminal_location FROM sc_accounts WHERE name = ?", t.account)
    return m.ACSStatus(online=True, checkin_ok=True, checkout_ok=True, renewal_ok=True, status_update_ok=True,
                       offline_ok=True, institution=t.institution, library_name=row["library_name"] if row else "",
                       terminal_location=(row["terminal_location"] if row else "") or t.location,
                       supported=supported)


def normalize_encoding(encoding: str) -> str:
    """A Python codec name ('UTF-8' → 'utf-8'); ValueError naming the value if unknown."""
    try:
        return codecs.lookup(encoding).name
    except (LookupError, TypeError):
        raise ValueError(f"account encoding {encoding!r} is not a known character set "
                         "(use e.g. utf-8, ascii, cp850, latin-1)") from None


def ensure(tx: Tx, name: str, password: str, institution: str, encoding: str, error_detection: str,
           library_name: str, terminal_location: str, enabled: bool) -> m.Account:
    """Create or update an account; the password is re-hashed only when it changed."""
    if not name or not institution:
        raise ValueError("an SC account needs a name and an institution")
    encoding = normalize_encoding(encoding)
    try:
        detection = m.ErrorDetection(error_detection.lower())
    except ValueError:
        raise ValueError(f"account {name!r}: error detection {error_detection!r} is not one of "
                         "auto, required, off") from None
    row = tx.one("SELECT password_hash FROM sc_accounts WHERE name = ?", name)
    if row is not None and check_secret(password, row["password_hash"]):
        stored = row["password_hash"]
    else:
        stored = hash_secret(password, tx.ctx.hash_iterations)
    tx.run("""INSERT INTO sc_accounts (name, password_hash, institution, encoding, error_detection, library_name,
                  terminal_location, enabled, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
              ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash,
                  institution = excluded.institution, encoding = excluded.encoding,
                  error_detection = excluded.error_detection, library_name = excluded.library_name,
                  terminal_location = excluded.terminal_location, enabled = excluded.enabled""",
           name, stored, institution, encoding, detection.value, library_name, terminal_location, int(enabled),
           tx.stamp)
    row = tx.one("SELECT * FROM sc_accounts WHERE name = ?", name)
    return _account(row)


def names(tx: Tx) -> set[str]:
    """Every SC account, enabled or not (what a listener may name)."""
    return {row[0] for row in tx.all("SELECT name FROM sc_accounts")}


def ensure_all(tx: Tx, rows: list[dict[str, str]]) -> list[str]:
    """``ensure`` each account (keyword arguments of ``ensure``) in one transaction: a reload
    writes all of the config's changes or none."""
    return [ensure(tx, enabled=True, **row).name for row in rows]
