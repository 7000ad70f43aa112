"""The offline journal: transactions accepted while the library system was down, in the
gateway's own database (``--database sqlite:PATH``, tables ``offline_journal`` and
``offline_logins`` of the schema's migrations).

Each entry moves ``pending`` -> ``sent`` -> ``done`` | ``conflict`` and never back but for
one step: ``sent`` -> ``pending`` when the library system is known not to have received it
(the request never left the gateway, or asking it showed the transaction is not there).
Every change is its own committed transaction (WAL, ``synchronous=FULL``), so an entry
accepted has been written to disk before the device hears "ok", and one marked ``sent``
before it is written to the library system: after a crash an entry still ``sent`` is the one
whose fate is unknown, and the replay asks the library system about it before sending it
again (replay.py).

Plain synchronous SQLite; ``AsyncJournal`` (runner.py) calls it from one thread of its own.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sipgateway.acs.postgresql.target import redact
from sipgateway.acs.sqlite import schema
from sipgateway.acs.sqlite.credentials import check_secret, hash_secret

CHECKOUT, CHECKIN = "checkout", "checkin"
PENDING, SENT, DONE, CONFLICT = "pending", "sent", "done", "conflict"
OPEN_STATES = (PENDING, SENT)
STATES = (PENDING, SENT, DONE, CONFLICT)
#: entries waiting to be replayed, at most: beyond it nothing more is accepted offline
MAX_OPEN = 100_000
#: replayed entries (done) kept for the report this long; conflicts are kept until removed
DONE_KEPT_SECONDS = 30 * 86400.0
#: remembered device logins, at most (the oldest are forgotten)
MAX_LOGINS = 10_000
#: characters of the library system's answer kept with an entry
REPLY_LIMIT = 500

_COLUMNS = ("id, kind, state, accepted_at, account, institution, location, patron_id, item_id, due_at, attempts, "
            "changed_at, reply, note")


class JournalError(Exception):
    """The journal cannot be used (no table, a transition from the wrong state)."""


@dataclass(frozen=True)
class Entry:
    id: int
    kind: str
    state: str
    accepted_at: float
    account: str
    institution: str
    location: str
    patron_id: str
    item_id: str
    due_at: float | None
    attempts: int = 0
    changed_at: float = 0.0
    reply: str = ""
    note: str = ""
    #: ``accept`` found this entry already waiting: the same transaction sent again
    repeated: bool = False


@dataclass(frozen=True)
class Refused:
    """Not accepted offline: ``reason`` is for the device's screen."""

    reason: str


class Journal:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    @classmethod
    def open(cls, path: str, *, migrate: bool = True) -> Journal:
        """The journal in the database at ``path`` (which must exist); its tables are added
        by the schema's migrations when ``migrate``, else they must be there."""
        conn = schema.connect(path, create=False)
        try:
            if migrate:
                schema.migrate(conn)
            elif not schema.has_table(conn, "offline_journal"):
                raise JournalError(f"{redact(path)!r} has no offline journal: start this version of the gateway on "
                                   "it once (it adds the tables)")
        except BaseException:
            conn.close()
            raise
        return cls(conn)

    def close(self) -> None:
        self.conn.close()

    # --- accepting ----------------------------------------------------------------------

    def accept(self, kind: str, *, now: float, account: str, institution: str, location: str, patron_id: str,
               item_id: str, due_at: float | None, max_checkouts: int) -> Entry | Refused:
        """Write one transaction accepted offline, committed before this returns; or say why not.
        The same transaction as the item's last one waiting (a device sending it again) is not
        written twice: that entry is returned, marked ``repeated``."""
        if kind not in (CHECKOUT, CHECKIN):
            raise JournalError(f"unknown kind {kind!r}")
        with self._transaction():
            last = self.conn.execute(f"SELECT {_COLUMNS} FROM offline_journal WHERE item_id = ? AND state IN "
                                     "('pending', 'sent') ORDER BY id DESC LIMIT 1", (item_id,)).fetchone()
            if last is not None and last[1] == kind and last[7] == patron_id:
                # a device that lost the answer sends the same transaction again: once is enough
                # (a second checkout to the same patron would be a renewal to some library systems)
                return Entry(*last, repeated=True)
            if self._count("state IN ('pending', 'sent')") >= MAX_OPEN:
                return Refused("The offline store is full; please ask staff")
            if kind == CHECKOUT and self._count("state IN ('pending', 'sent') AND kind = 'checkout' AND patron_id = ?",
                                                (patron_id,)) >= max_checkouts:
                return Refused(f"At most {max_checkouts} checkouts while the library system is offline")
            cur = self.conn.execute(
                "INSERT INTO offline_journal (kind, accepted_at, account, institution, location, patron_id, item_id, "
                "due_at, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, now, account, institution, location, patron_id, item_id, due_at, now))
            return Entry(cur.lastrowid or 0, kind, PENDING, now, account, institution, location, patron_id, item_id,
                         due_at, 0, now)

    # --- replaying ----------------------------------------------------------------------

    def next_open(self) -> Entry | None:
        """The oldest entry not yet replayed (pending or sent), in the order of acceptance."""
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM offline_journal WHERE state IN ('pending', 'sent') "
                                "ORDER BY id LIMIT 1").fetchone()
        return None if row is None else Entry(*row)

    def open_items(self) -> Counter[str]:
        """Entries not yet replayed, by item: online transactions for these items wait."""
        rows = self.conn.execute("SELECT item_id, count(*) FROM offline_journal WHERE state IN ('pending', 'sent') "
                                 "GROUP BY item_id")
        return Counter({item: n for item, n in rows})

    def mark_sent(self, entry_id: int, now: float) -> None:
        """pending -> sent, committed before the entry is written to the library system."""
        self._move(entry_id, PENDING, SENT, now, attempts=True)

    def mark_pending(self, entry_id: int, now: float, note: str) -> None:
        """sent -> pending: the library system has not got it (never sent, or asked)."""
        self._move(entry_id, SENT, PENDING, now, note=note)

    def finish(self, entry_id: int, state: str, now: float, reply: str, note: str = "") -> None:
        """sent -> done or conflict, with what the library system answered."""
        if state not in (DONE, CONFLICT):
            raise JournalError(f"an entry is finished as done or conflict, not {state!r}")
        self._move(entry_id, SENT, state, now, reply=reply[:REPLY_LIMIT], note=note)

    def _move(self, entry_id: int, old: str, new: str, now: float, *, attempts: bool = False,
              reply: str | None = None, note: str | None = None) -> None:
        with self._transaction():
            cur = self.conn.execute(
                "UPDATE offline_journal SET state = ?, changed_at = ?, attempts = attempts + ?, "
                "reply = coalesce(?, reply), note = coalesce(?, note) WHERE id = ? AND state = ?",
                (new, now, 1 if attempts else 0, reply, note, entry_id, old))
            if cur.rowcount != 1:
                found = self.conn.execute("SELECT state FROM offline_journal WHERE id = ?", (entry_id,)).fetchone()
                raise JournalError(f"offline entry {entry_id}: cannot go from {old} to {new}, it is "
                                   f"{found[0] if found else 'not there'}")

    # --- reading, pruning ---------------------------------------------------------------

    def entries(self, states: Iterable[str] = STATES, since: float | None = None) -> list[Entry]:
        wanted = tuple(states)
        marks = ", ".join("?" * len(wanted))
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM offline_journal WHERE state IN ({marks}) "
                                 "AND accepted_at >= ? ORDER BY id", (*wanted, since or 0.0))
        return [Entry(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        found = dict(self.conn.execute("SELECT state, count(*) FROM offline_journal GROUP BY state").fetchall())
        return {state: found.get(state, 0) for state in STATES}

    def take_pending(self, now: float, note: str, since: float | None = None) -> list[Entry]:
        """pending -> done for every pending entry (accepted at ``since`` or later), at once:
        handed to the library system another way (an export file), never replayed."""
        with self._transaction():
            taken = self.entries((PENDING,), since)
            self.conn.executemany("UPDATE offline_journal SET state = 'done', changed_at = ?, note = ? "
                                  "WHERE id = ? AND state = 'pending'", [(now, note, e.id) for e in taken])
        return taken

    def prune(self, now: float) -> int:
        """Forget entries replayed (done) more than ``DONE_KEPT_SECONDS`` ago."""
        with self._transaction():
            return self.conn.execute("DELETE FROM offline_journal WHERE state = 'done' AND changed_at < ?",
                                     (now - DONE_KEPT_SECONDS,)).rowcount

    # --- device logins (pass-through mode) ----------------------------------------------

    def remember_login(self, login: str, password: str, now: float) -> None:
        """Keep a hash of credentials the library system accepted (unchanged ones are not rewritten)."""
        row = self.conn.execute("SELECT secret FROM offline_logins WHERE login = ?", (login,)).fetchone()
        if row is not None and check_secret(password, row[0]):
            return
        secret = hash_secret(password)
        with self._transaction():
            self.conn.execute("INSERT INTO offline_logins (login, secret, accepted_at) VALUES (?, ?, ?) ON CONFLICT "
                              "(login) DO UPDATE SET secret = excluded.secret, accepted_at = excluded.accepted_at",
                              (login, secret, now))
            self.conn.execute("DELETE FROM offline_logins WHERE login IN (SELECT login FROM offline_logins "
                              "ORDER BY accepted_at DESC LIMIT -1 OFFSET ?)", (MAX_LOGINS,))

    def check_login(self, login: str, password: str) -> bool:
        """True when these are the credentials the library system last accepted for ``login``."""
        row = self.conn.execute("SELECT secret FROM offline_logins WHERE login = ?", (login,)).fetchone()
        return row is not None and check_secret(password, row[0])

    # --- helpers ------------------------------------------------------------------------

    def _count(self, where: str, args: tuple = ()) -> int:
        return self.conn.execute(f"SELECT count(*) FROM offline_journal WHERE {where}", args).fetchone()[0]

    def _transaction(self) -> AbstractContextManager[None]:
        return schema.write_transaction(self.conn)
