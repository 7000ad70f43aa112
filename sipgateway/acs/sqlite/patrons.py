"""Patrons: lookup, PIN check, standing (counts, balance, flags) and the 23/63/01/25/35 answers."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields, replace
from datetime import date
from typing import NamedTuple

from sipgateway.acs import model as m
from sipgateway.acs.sqlite.context import Tx, money, parse_day, show_money

UNKNOWN_PATRON = "Unknown patron; please see staff"
INVALID_PIN = "Invalid PIN"
ACTIVE_HOLDS = "('waiting', 'in_transit', 'on_shelf')"


@dataclass(frozen=True)
class Borrowing:
    """What the charge and renewal rules weigh: a patron's loans and what they owe."""

    charged: int
    overdue: int
    balance_cents: int


@dataclass(frozen=True)
class Standing(Borrowing):
    """A patron's counts and money at the moment of a transaction."""

    fines_cents: int      # overdue fines part of the balance
    fees_open: int        # number of fees not fully paid
    holds: int            # active holds (waiting, in transit, on the shelf)
    holds_ready: int      # on the hold shelf


# The columns of a ``Borrowing`` and of a ``Standing`` for the patron row ``p``, in the order of their fields.
_BORROWING = """
    (SELECT count(*) FROM loans WHERE patron_id = p.id AND returned_at IS NULL) AS charged,
    (SELECT count(*) FROM loans WHERE patron_id = p.id AND returned_at IS NULL AND due_at < :now) AS overdue,
    (SELECT coalesce(sum(amount_cents - paid_cents), 0) FROM fees
        WHERE patron_id = p.id AND paid_cents < amount_cents) AS balance_cents"""
_STANDING = f"""{_BORROWING},
    (SELECT coalesce(sum(amount_cents - paid_cents), 0) FROM fees
        WHERE patron_id = p.id AND paid_cents < amount_cents AND fee_type = {int(m.FeeType.OVERDUE)}) AS fines_cents,
    (SELECT count(*) FROM fees WHERE patron_id = p.id AND paid_cents < amount_cents) AS fees_open,
    (SELECT count(*) FROM holds WHERE patron_id = p.id AND status IN {ACTIVE_HOLDS}) AS holds,
    (SELECT count(*) FROM holds WHERE patron_id = p.id AND status = 'on_shelf') AS holds_ready"""

#: what the charge rules read of a patron (``find_borrower`` reads only these: every column
#: fetched costs about 0.2 µs more)
CHARGE_COLUMNS = ("id", "barcode", "pin_hash", "blocked", "block_message", "expires_on", "card_lost",
                  "fee_limit_cents", "charge_limit", "overdue_limit")
_BORROWER = f"""
    SELECT {", ".join(f"p.{c}" for c in CHARGE_COLUMNS)}, {_BORROWING}
    FROM patrons p WHERE p.barcode = :barcode"""
_BORROWING_SIZE = len(fields(Borrowing))


def find(tx: Tx, barcode: str) -> sqlite3.Row | None:
    if not barcode:
        return None
    return tx.one("SELECT * FROM patrons WHERE barcode = ?", barcode)


def find_borrower(tx: Tx, barcode: str) -> tuple[sqlite3.Row | None, Borrowing | None]:
    """``find`` (its ``CHARGE_COLUMNS`` only) and the patron's ``Borrowing``, in one query
    (checkout and renewal).  The borrowing is read now: it is right until the transaction
    writes something."""
    if not barcode:
        return None, None
    row = tx.one(_BORROWER, {"barcode": barcode, "now": tx.stamp})
    if row is None:
        return None, None
    return row, Borrowing(*row[-_BORROWING_SIZE:])


def check_pin(tx: Tx, patron: sqlite3.Row, pin: str | None) -> bool | None:
    """None when no PIN was given; a patron without a PIN matches no PIN."""
    if pin is None:
        return None
    return tx.ctx.secrets.verify("patron", patron["barcode"], pin, patron["pin_hash"])


class Identified(NamedTuple):
    """The patron a request names and its PIN check: ``row`` None for an unknown patron,
    ``pin_valid`` None when no PIN was given (and False for an unknown patron given one).
    (A tuple: one is built on every patron request.)"""

    row: sqlite3.Row | None
    pin_valid: bool | None
    #: read with the patron when asked (``identify(borrower=True)``)
    borrowing: Borrowing | None = None

    @property
    def patron(self) -> sqlite3.Row:
        """The patron's row, once ``refusal`` has said None."""
        assert self.row is not None
        return self.row

    @property
    def refusal(self) -> str | None:
        """Why a request for this patron is refused (the screen message), or None."""
        if self.row is None:
            return UNKNOWN_PATRON
        return INVALID_PIN if self.pin_valid is False else None

    @property
    def problem(self) -> str:
        """The refusal as the short log detail of the patron requests (01, 25, 65)."""
        return "unknown patron" if self.row is None else "invalid PIN"


def identify(tx: Tx, barcode: str, pin: str | None, *, borrower: bool = False) -> Identified:
    """Find the patron and check the PIN (pass None to skip it); with ``borrower``, only
    what the charge rules need, and the patron's ``Borrowing`` (``find_borrower``)."""
    borrowing = None
    if borrower:
        row, borrowing = find_borrower(tx, barcode)
    else:
        row = find(tx, barcode)
    if row is None:
        return Identified(None, None if pin is None else False)
    return Identified(row, check_pin(tx, row, pin), borrowing)


def standing(tx: Tx, patron: sqlite3.Row) -> Standing:
    return Standing(*tx.one(f"SELECT {_STANDING} FROM patrons p WHERE p.id = :id",
                            {"id": patron["id"], "now": tx.stamp}))


def expired(patron: sqlite3.Row, today: date) -> bool:
    expires = parse_day(patron["expires_on"])
    return expires is not None and expires < today


def over_fee_limit(patron: sqlite3.Row, s: Borrowing) -> bool:
    return s.balance_cents > patron["fee_limit_cents"]


def flags(tx: Tx, patron: sqlite3.Row, s: Standing) -> frozenset[m.PatronFlag]:
    F = m.PatronFlag
    out: set[m.PatronFlag] = set()
    blocked = bool(patron["blocked"]) or expired(patron, tx.now.date())
    owes = over_fee_limit(patron, s)
    if blocked:
        out |= {F.CHARGE_DENIED, F.RENEWAL_DENIED, F.RECALL_DENIED, F.HOLD_DENIED}
    if patron["card_lost"]:
        out |= {F.CARD_LOST, F.CHARGE_DENIED}
    if s.charged >= patron["charge_limit"]:
        out |= {F.TOO_MANY_CHARGED, F.CHARGE_DENIED}
    if s.overdue >= patron["overdue_limit"]:
        out |= {F.TOO_MANY_OVERDUE, F.CHARGE_DENIED}
    if owes:
        out |= {F.EXCESSIVE_FEES, F.CHARGE_DENIED, F.RENEWAL_DENIED, F.HOLD_DENIED}
        if s.fines_cents > patron["fee_limit_cents"]:
            out.add(F.EXCESSIVE_FINES)
    if s.holds >= patron["hold_limit"]:
        out.add(F.HOLD_DENIED)
    return frozenset(out)


def _blocked_reason(tx: Tx, patron: sqlite3.Row, s: Borrowing) -> str | None:
    if patron["blocked"]:
        return patron["block_message"] or "Your account is blocked; please see staff"
    if expired(patron, tx.now.date()):
        return f"Your library card expired on {patron['expires_on']}; please see staff"
    if patron["card_lost"]:
        return "This card has been reported lost; please see staff"
    if over_fee_limit(patron, s):
        return (f"You owe {show_money(s.balance_cents, tx.ctx.currency)}, more than the limit of "
                f"{show_money(patron['fee_limit_cents'], tx.ctx.currency)}; please pay your fees first")
    return None


def charge_refusal(tx: Tx, patron: sqlite3.Row, s: Borrowing) -> str | None:
    """Why this patron may not borrow now, or None."""
    reason = _blocked_reason(tx, patron, s)
    if reason:
        return reason
    if s.charged >= patron["charge_limit"]:
        return f"You have reached your limit of {patron['charge_limit']} items"
    if s.overdue >= patron["overdue_limit"]:
        return f"You have {s.overdue} overdue items; please return them first"
    return None


def renewal_refusal(tx: Tx, patron: sqlite3.Row, s: Borrowing) -> str | None:
    return _blocked_reason(tx, patron, s)


def hold_refusal(tx: Tx, patron: sqlite3.Row, s: Standing) -> str | None:
    reason = _blocked_reason(tx, patron, s)
    if reason:
        return reason
    if s.holds >= patron["hold_limit"]:
        return f"You have reached your limit of {patron['hold_limit']} holds"
    return None


def _notes(tx: Tx, patron: sqlite3.Row, s: Standing) -> tuple[str, ...]:
    notes = []
    reason = _blocked_reason(tx, patron, s)
    if reason:
        notes.append(reason)
    elif s.balance_cents:
        notes.append(f"You owe {show_money(s.balance_cents, tx.ctx.currency)}")
    if s.holds_ready:
        notes.append(f"{s.holds_ready} hold(s) waiting for you")
    return tuple(notes)


def unknown_status(barcode: str, pin: str | None) -> m.PatronStatus:
    return m.PatronStatus(patron_id=barcode, valid=False, pin_valid=None if pin is None else False,
                          flags=m.UNKNOWN_PATRON_FLAGS, messages=m.Messages(screen=(UNKNOWN_PATRON,)))


def status_of(tx: Tx, patron: sqlite3.Row, pin_valid: bool | None,
              s: Standing | None = None) -> m.PatronStatus:
    """The 24/26 answer.  With a wrong PIN the name and flags are shown, but no contact
    details or money: those are for the card holder only."""
    s = s or standing(tx, patron)
    base = m.PatronStatus(patron_id=patron["barcode"], name=patron["name"], valid=True, pin_valid=pin_valid,
                          flags=flags(tx, patron, s), language=patron["language"])
    if pin_valid is False:
        return replace(base, messages=m.Messages(screen=(INVALID_PIN,)))
    return replace(base, currency=tx.ctx.currency, fee_amount=money(s.balance_cents),
                   fee_limit=money(patron["fee_limit_cents"]), home_address=patron["address"] or None,
                   email=patron["email"] or None, phone=patron["phone"] or None,
                   messages=m.Messages(screen=_notes(tx, patron, s)))


def _status(tx: Tx, barcode: str, pin: str | None, who: Identified) -> m.PatronStatus:
    """The 24 answer to ``who``: unknown, or with its PIN check."""
    if who.row is None:
        return unknown_status(barcode, pin)
    return status_of(tx, who.row, who.pin_valid)


def patron_status(tx: Tx, barcode: str, pin: str | None) -> m.PatronStatus:
    return _status(tx, barcode, pin, identify(tx, barcode, pin))


def _item_list(tx: Tx, patron: sqlite3.Row, which: m.ItemList) -> list[str]:
    p = patron["id"]
    if which is m.ItemList.CHARGED:
        rows = tx.all("SELECT i.barcode FROM loans l JOIN items i ON i.id = l.item_id "
                      "WHERE l.patron_id = ? AND l.returned_at IS NULL ORDER BY l.due_at, l.id", p)
    elif which is m.ItemList.OVERDUE:
        rows = tx.all("SELECT i.barcode FROM loans l JOIN items i ON i.id = l.item_id "
                      "WHERE l.patron_id = ? AND l.returned_at IS NULL AND l.due_at < ? ORDER BY l.due_at, l.id",
                      p, tx.stamp)
    elif which is m.ItemList.HOLD:
        rows = tx.all("SELECT i.barcode FROM holds h JOIN items i ON i.id = h.trapped_item_id "
                      "WHERE h.patron_id = ? AND h.status = 'on_shelf' ORDER BY h.queued_at, h.id", p)
    elif which is m.ItemList.UNAVAILABLE_HOLD:
        rows = tx.all("SELECT coalesce(i.barcode, h.title) FROM holds h LEFT JOIN items i ON i.id = h.item_id "
                      "WHERE h.patron_id = ? AND h.status IN ('waiting', 'in_transit') ORDER BY h.queued_at, h.id",
                      p)
    elif which is m.ItemList.FINE:
        # "<fee id> <amount> <currency> <description>": the id is what a 37 may name in CG
        cur = tx.ctx.currency
        return [f"{r['id']} {show_money(r['amount_cents'] - r['paid_cents'], cur)} {r['description']}".rstrip()
                for r in tx.all("SELECT id, amount_cents, paid_cents, description FROM fees "
                                "WHERE patron_id = ? AND paid_cents < amount_cents ORDER BY created_at, id", p)]
    else:  # recalls: this library system does not recall items
        return []
    return [r[0] for r in rows]


def cut(entries: list[str], start: int | None, end: int | None) -> tuple[str, ...]:
    """Entries ``start``..``end``, 1-based and inclusive; defaults 1 and the last one."""
    first = max(start or 1, 1)
    last = len(entries) if end is None else min(end, len(entries))
    if last < first:
        return ()
    return tuple(entries[first - 1:last])


def patron_information(tx: Tx, barcode: str, pin: str | None, which: m.ItemList | None,
                       start: int | None, end: int | None) -> m.PatronInformation:
    who = identify(tx, barcode, pin)
    patron = who.row
    if patron is None or who.pin_valid is False:
        return m.PatronInformation(**_fields(_status(tx, barcode, pin, who)), item_list=which)
    s = standing(tx, patron)
    status = status_of(tx, patron, who.pin_valid, s)
    return m.PatronInformation(
        **_fields(status),
        hold_count=s.holds_ready, overdue_count=s.overdue, charged_count=s.charged, fine_count=s.fees_open,
        recall_count=0, unavailable_hold_count=s.holds - s.holds_ready,
        hold_limit=patron["hold_limit"], overdue_limit=patron["overdue_limit"],
        charged_limit=patron["charge_limit"], item_list=which,
        items=cut(_item_list(tx, patron, which), start, end) if which is not None else (),
    )


def _fields(status: m.PatronStatus) -> dict:
    return {f: getattr(status, f) for f in m.PatronStatus.__dataclass_fields__}


def _refused(tx: Tx, operation: str, barcode: str, pin: str | None, who: Identified) -> m.PatronStatus | None:
    """The logged refusal of a patron request (01, 25) for ``who``, or None when it may go on."""
    if who.refusal is None:
        return None
    tx.log(operation, False, barcode, detail=who.problem)
    return _status(tx, barcode, pin, who)


def block(tx: Tx, barcode: str, message: str, card_retained: bool) -> m.PatronStatus:
    who = identify(tx, barcode, None)   # blocking a card asks no PIN
    refused = _refused(tx, "block_patron", barcode, None, who)
    if refused is not None:
        return refused
    text = message.strip() or "Blocked by a self-check terminal; please see staff"
    tx.run("UPDATE patrons SET blocked = 1, block_message = ?, card_retained = ? WHERE id = ?",
           text, int(card_retained), who.patron["id"])
    tx.log("block_patron", True, barcode, detail=text + (" (card retained)" if card_retained else ""))
    patron = find(tx, barcode)
    assert patron is not None
    status = status_of(tx, patron, None)
    if card_retained:
        status = replace(status, messages=m.Messages(screen=(*status.messages.screen,
                                                             "Your card was retained by the machine")))
    return status


def enable(tx: Tx, barcode: str, pin: str | None) -> m.PatronStatus:
    who = identify(tx, barcode, pin)
    refused = _refused(tx, "patron_enable", barcode, pin, who)
    if refused is not None:
        return refused
    tx.run("UPDATE patrons SET blocked = 0, block_message = '', card_retained = 0 WHERE id = ?", who.patron["id"])
    tx.log("patron_enable", True, barcode)
    patron = find(tx, barcode)
    assert patron is not None
    return status_of(tx, patron, who.pin_valid)


def end_session(tx: Tx, barcode: str) -> m.EndSessionResult:
    return m.EndSessionResult(ended=True, patron_id=barcode,
                              messages=m.Messages(screen=("Thank you for using the library",)))
