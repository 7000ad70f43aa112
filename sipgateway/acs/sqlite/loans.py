"""Checkout (11), renew (29) and renew all (65)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import items, patrons
from sipgateway.acs.sqlite.context import Tx, local, parse_stamp, stamp, title_key


def _result(req: rq.CheckoutRequest, item: sqlite3.Row | None, ok: bool, message: str | None = None,
            **extra) -> m.CirculationResult:
    if item is not None:
        extra.setdefault("title", item["title"])
        extra.setdefault("media_type", item["media_type"])
        extra.setdefault("magnetic_media", bool(item["magnetic_media"]))
    return m.CirculationResult(ok=ok, patron_id=req.patron_id, item_id=req.item_id,
                               messages=m.Messages(screen=(message,) if message else ()), **extra)


def _refuse(tx: Tx, op: str, req: rq.CheckoutRequest, item: sqlite3.Row | None, message: str,
            patron_valid: bool, pin_valid: bool | None) -> m.CirculationResult:
    tx.log(op, False, req.patron_id, req.item_id or req.title_id, message)
    return _result(req, item, False, message, patron_valid=patron_valid, pin_valid=pin_valid,
                   desensitize=False, renewal_ok=False)


def _ok(tx: Tx, op: str, req: rq.CheckoutRequest, item: sqlite3.Row, loan_id: int, due: datetime | None,
        pin_valid: bool | None, message: str | None = None, renewed: bool = False) -> m.CirculationResult:
    tx.log(op, True, req.patron_id, item["barcode"], message or (f"due {stamp(due)}" if due else ""))
    return _result(req, item, True, message, renewal_ok=renewed, desensitize=True, security_inhibit=False,
                   due_date=due, pin_valid=pin_valid, transaction_id=f"L{loan_id}",
                   item_properties=item["properties"] or None)


def _who(tx: Tx, op: str, req: rq.CheckoutRequest,
         pin: str | None) -> tuple[sqlite3.Row, patrons.Borrowing, bool | None] | m.CirculationResult:
    """The patron, their borrowing (read before anything is written) and the PIN check of a
    checkout or renewal; or the refusal.  ``pin`` None: not checked (a terminal recording
    what it did offline)."""
    who = patrons.identify(tx, req.patron_id, pin, borrower=True)
    if who.refusal is not None:
        return _refuse(tx, op, req, items.find(tx, req.item_id), who.refusal, who.row is not None, who.pin_valid)
    assert who.borrowing is not None  # read with the patron
    return who.patron, who.borrowing, who.pin_valid


def checkout(tx: Tx, req: rq.CheckoutRequest) -> m.CirculationResult:
    op = "checkout"
    if req.no_block:
        return _offline_checkout(tx, req)
    who = _who(tx, op, req, req.patron_pin)
    if isinstance(who, m.CirculationResult):
        return who
    patron, borrowing, pin_valid = who
    item, loan = items.find_with_loan(tx, req.item_id)
    if item is None:
        return _refuse(tx, op, req, None, items.UNKNOWN_ITEM, True, pin_valid)
    if req.cancel:
        return _cancel_checkout(tx, req, patron, item, loan, pin_valid)
    if loan is not None and loan["patron_id"] == patron["id"]:
        return _already_lent(tx, req, patron, borrowing, item, loan, pin_valid)
    if loan is not None:
        return _refuse(tx, op, req, item, "This item is checked out to another patron; please see staff",
                       True, pin_valid)
    reason = patrons.charge_refusal(tx, patron, borrowing)
    if reason:
        return _refuse(tx, op, req, item, reason, True, pin_valid)

    hold, queue = items.live_holds_for(tx, item)
    if hold is not None and hold["patron_id"] != patron["id"]:
        return _refuse(tx, op, req, item, "This item is on hold for another patron", True, pin_valid)
    if hold is None:
        if queue and queue[0]["patron_id"] != patron["id"]:
            return _refuse(tx, op, req, item, "This item is reserved for another patron", True, pin_valid)
        hold = queue[0] if queue else None

    due = tx.rules.due_date(item["media_type"], tx.now)
    loan_id = _lend(tx, patron, item, due, hold, req.item_properties)
    return _ok(tx, op, req, item, loan_id, due, pin_valid)


def _already_lent(tx: Tx, req: rq.CheckoutRequest, patron: sqlite3.Row, borrowing: patrons.Borrowing,
                  item: sqlite3.Row, loan: items.Loan, pin_valid: bool | None) -> m.CirculationResult:
    """A checkout of a copy this patron already has: usually the same 11 resent after a lost
    reply (kiosks reconnect and send it again).  The loan exists, so the answer is ok: a
    renewal when the SC allows renewals (sc_renewal_policy Y) and the rules allow one that
    moves the due date; otherwise the loan as it is, with its due date.  Never a second loan,
    and never a second ``checkout`` in the circulation log."""
    due = parse_stamp(loan["due_at"])
    assert due is not None
    if req.renewal_policy and not (patrons.renewal_refusal(tx, patron, borrowing)
                                   or renewal_problem(tx, loan, item)):
        later = max(tx.rules.due_date(item["media_type"], tx.now), due)
        if later > due:  # the same day's resend would only use up a renewal
            extend(tx, loan, item, later)
            return _ok(tx, "renew", req, item, loan["id"], later, pin_valid, f"Renewed until {stamp(later)}",
                       renewed=True)
    return _ok(tx, "checkout_repeated", req, item, loan["id"], due, pin_valid,
               f"Already checked out to you, due {stamp(due)}")


def _lend(tx: Tx, patron: sqlite3.Row, item: sqlite3.Row, due: datetime, hold: sqlite3.Row | None,
          properties: str | None, offline: bool = False) -> int:
    t = tx.terminal
    loan_id = tx.run(
        "INSERT INTO loans (item_id, patron_id, out_at, due_at, offline, account, location, hold_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        item["id"], patron["id"], tx.stamp, stamp(due), int(offline), t.account if t else "", tx.place(),
        hold["id"] if hold is not None else None)
    tx.run("UPDATE items SET status = 'charged', current_location = ?, destination_location = NULL, "
           "properties = coalesce(?, properties) WHERE id = ?", tx.place(), properties, item["id"])
    if hold is not None:
        tx.run("UPDATE holds SET status = 'fulfilled', closed_at = ?, "
               "trapped_item_id = coalesce(trapped_item_id, ?) WHERE id = ?", tx.stamp, item["id"], hold["id"])
    return loan_id


def _offline_checkout(tx: Tx, req: rq.CheckoutRequest) -> m.CirculationResult:
    """no_block: the terminal already lent the item while offline; record it whatever the
    rules say.  Only an unknown patron or item cannot be recorded."""
    op = "checkout"
    who = patrons.identify(tx, req.patron_id, None)
    item = items.find(tx, req.item_id)
    if who.refusal is not None:
        return _refuse(tx, op, req, item, who.refusal, False, None)
    patron = who.patron
    if item is None:
        return _refuse(tx, op, req, None, items.UNKNOWN_ITEM, True, None)
    due = local(req.nb_due_date) if req.nb_due_date else tx.rules.due_date(item["media_type"], tx.now)
    loan = items.open_loan(tx, item)
    if loan is not None and loan["patron_id"] == patron["id"]:
        tx.run("UPDATE loans SET due_at = ? WHERE id = ?", stamp(due), loan["id"])
        return _ok(tx, op, req, item, loan["id"], due, None, "Offline checkout recorded")
    if loan is not None:  # the item went out again offline: close the earlier loan
        tx.run("UPDATE loans SET returned_at = ? WHERE id = ?", tx.stamp, loan["id"])
    hold = items.trapped_hold(tx, item)
    if hold is not None and hold["patron_id"] != patron["id"]:
        # the copy set aside for someone else left the building: their hold waits again
        tx.run("UPDATE holds SET status = 'waiting', trapped_item_id = NULL, shelf_expires_at = NULL "
               "WHERE id = ?", hold["id"])
        hold = None
    if hold is None:
        queue = [h for h in items.waiting_holds(tx, item) if h["patron_id"] == patron["id"]]
        hold = queue[0] if queue else None
    loan_id = _lend(tx, patron, item, due, hold, req.item_properties, offline=True)
    return _ok(tx, op, req, item, loan_id, due, None, "Offline checkout recorded")


def _cancel_checkout(tx: Tx, req: rq.CheckoutRequest, patron: sqlite3.Row, item: sqlite3.Row,
                     loan: items.Loan | None, pin_valid: bool | None) -> m.CirculationResult:
    """BI=Y: undo this patron's checkout of the item (e.g. the terminal could not desensitize it)."""
    op = "checkout_cancel"
    if loan is None or loan["patron_id"] != patron["id"]:
        return _refuse(tx, op, req, item, "There is no checkout of this item to you to cancel", True, pin_valid)
    tx.run("UPDATE loans SET returned_at = ?, cancelled = 1 WHERE id = ?", tx.stamp, loan["id"])
    status = "available"
    if loan["hold_id"] is not None:
        # the checkout had fulfilled a hold: the copy goes back to the hold shelf for it
        tx.run("UPDATE holds SET status = 'on_shelf', closed_at = NULL, trapped_item_id = ?, "
               "shelf_expires_at = coalesce(shelf_expires_at, ?) WHERE id = ?",
               item["id"], stamp(tx.rules.shelf_expiry(tx.now)), loan["hold_id"])
        status = "on_hold_shelf"
    tx.run("UPDATE items SET status = ? WHERE id = ?", status, item["id"])
    tx.log(op, True, req.patron_id, item["barcode"], f"loan L{loan['id']} cancelled")
    return _result(req, item, True, "Checkout cancelled", desensitize=False, renewal_ok=False, pin_valid=pin_valid,
                   transaction_id=f"L{loan['id']}")


def renewal_problem(tx: Tx, loan: items.Loan, item: sqlite3.Row) -> str | None:
    if loan["renewals"] >= tx.rules.max_renewals:
        return f"This item has reached its renewal limit ({tx.rules.max_renewals})"
    trapped, queue = items.holds_for(tx, item)
    if trapped is not None or any(h["patron_id"] != loan["patron_id"] for h in queue):
        return "This item is on hold for another patron and cannot be renewed"
    return None


def extend(tx: Tx, loan: items.Loan, item: sqlite3.Row, due: datetime | None = None) -> datetime:
    """Renew ``loan``: a new loan period from today, never shorter than the current one."""
    current = parse_stamp(loan["due_at"])
    assert current is not None
    new = due or max(tx.rules.due_date(item["media_type"], tx.now), current)
    tx.run("UPDATE loans SET due_at = ?, renewals = renewals + 1 WHERE id = ?", stamp(new), loan["id"])
    return new


def _renew(tx: Tx, op: str, req: rq.CheckoutRequest, patron: sqlite3.Row, borrowing: patrons.Borrowing,
           item: sqlite3.Row, loan: items.Loan, pin_valid: bool | None) -> m.CirculationResult:
    reason = patrons.renewal_refusal(tx, patron, borrowing) or renewal_problem(tx, loan, item)
    if reason:
        return _refuse(tx, op, req, item, reason, True, pin_valid)
    due = extend(tx, loan, item)
    return _ok(tx, op, req, item, loan["id"], due, pin_valid, f"Renewed until {stamp(due)}", renewed=True)


def renew(tx: Tx, req: rq.CheckoutRequest) -> m.CirculationResult:
    op = "renew"
    who = _who(tx, op, req, None if req.no_block else req.patron_pin)
    if isinstance(who, m.CirculationResult):
        return who
    patron, borrowing, pin_valid = who
    if req.item_id:
        item = items.find(tx, req.item_id)
    else:  # renew by title: the patron's loan of a copy with that title
        item = tx.one("SELECT i.* FROM loans l JOIN items i ON i.id = l.item_id WHERE l.patron_id = ? "
                      "AND l.returned_at IS NULL AND lower(trim(i.title)) = ? ORDER BY l.due_at, l.id LIMIT 1",
                      patron["id"], title_key(req.title_id or ""))
        if item is not None:
            req = replace(req, item_id=item["barcode"])
    if item is None:
        return _refuse(tx, op, req, None, items.UNKNOWN_ITEM if req.item_id else
                       "You have no item with this title checked out", True, pin_valid)
    loan = items.open_loan(tx, item)
    if loan is None:
        return _refuse(tx, op, req, item, "This item is not checked out", True, pin_valid)
    if loan["patron_id"] != patron["id"] and not req.third_party:
        return _refuse(tx, op, req, item, "This item is checked out to another patron", True, pin_valid)
    if req.no_block:
        due = extend(tx, loan, item, local(req.nb_due_date) if req.nb_due_date else None)
        return _ok(tx, op, req, item, loan["id"], due, None, "Offline renewal recorded", renewed=True)
    return _renew(tx, op, req, patron, borrowing, item, loan, pin_valid)


def renew_all(tx: Tx, barcode: str, pin: str | None) -> m.RenewAllResult:
    op = "renew_all"
    who = patrons.identify(tx, barcode, pin)
    if who.refusal is not None:
        tx.log(op, False, barcode, detail=who.problem)
        return m.RenewAllResult(ok=False, messages=m.Messages(screen=(who.refusal,)))
    patron = who.patron
    loans = tx.all("SELECT l.*, i.barcode FROM loans l JOIN items i ON i.id = l.item_id "
                   "WHERE l.patron_id = ? AND l.returned_at IS NULL ORDER BY l.due_at, l.id", patron["id"])
    reason = patrons.renewal_refusal(tx, patron, patrons.standing(tx, patron))
    if reason:
        tx.log(op, False, barcode, detail=reason)
        return m.RenewAllResult(ok=False, unrenewed=tuple(row["barcode"] for row in loans),
                                messages=m.Messages(screen=(reason,)))
    renewed, unrenewed = [], []
    for loan in loans:
        item = tx.one("SELECT * FROM items WHERE id = ?", loan["item_id"])
        if renewal_problem(tx, loan, item) is None:
            extend(tx, loan, item)
            renewed.append(loan["barcode"])
        else:
            unrenewed.append(loan["barcode"])
    summary = f"Renewed {len(renewed)} of {len(loans)} items"
    tx.log(op, True, barcode, detail=summary)
    return m.RenewAllResult(ok=True, renewed=tuple(renewed), unrenewed=tuple(unrenewed),
                            messages=m.Messages(screen=(summary,)))
