"""Checkin (09): close the loan, charge an overdue fine, and route the copy: to the hold
shelf here, in transit to another pickup library, home to its permanent location, or
back on the shelf."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import items
from sipgateway.acs.sqlite.context import Tx, local, parse_stamp, show_money, stamp

#: sort bins (CL) for an automated sorter
BIN_HOLDS = "HOLDS"
BIN_TRANSIT = "TRANSIT"
#: the screen message of a checkin answered ok=0 because the item was not on loan
NOT_ON_LOAN = "This item was not checked out"


def _base(item: sqlite3.Row, **extra) -> m.CheckinResult:
    fields = {
        "ok": True, "item_id": item["barcode"], "permanent_location": item["permanent_location"],
        "title": item["title"], "resensitize": True, "magnetic_media": bool(item["magnetic_media"]),
        "media_type": item["media_type"], "collection_code": item["collection_code"] or None,
        "call_number": item["call_number"] or None, "item_properties": item["properties"] or None,
    }
    return m.CheckinResult(**{**fields, **extra})


def checkin(tx: Tx, req: rq.CheckinRequest) -> m.CheckinResult:
    op = "checkin"
    item, loan = items.find_with_loan(tx, req.item_id)
    if item is None:
        tx.log(op, False, item=req.item_id, detail="unknown item")
        return m.CheckinResult(ok=False, item_id=req.item_id, messages=m.Messages(screen=(items.UNKNOWN_ITEM,)))
    if req.cancel:
        return _cancel_checkin(tx, req, item)

    notes: list[str] = []
    borrower: str | None = None
    if loan is not None:
        borrower = loan["borrower"]
        returned = min(local(req.return_date), tx.now) if req.return_date else tx.now
        due = parse_stamp(loan["due_at"])
        assert due is not None
        fine = tx.rules.overdue_fine(due, returned)
        fee_id = None
        if fine:
            fee_id = tx.run(
                "INSERT INTO fees (patron_id, item_id, loan_id, fee_type, description, amount_cents, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", loan["patron_id"], item["id"], loan["id"], int(m.FeeType.OVERDUE),
                f"overdue: {item['barcode']} {item['title']}, due {loan['due_at'][:10]}", fine, tx.stamp)
            notes.append(f"Returned late: a fine of {show_money(fine, tx.ctx.currency)} was charged")
        tx.run("UPDATE loans SET returned_at = ?, fine_fee_id = ? WHERE id = ?", stamp(returned), fee_id,
               loan["id"])

    if req.item_properties is not None:
        tx.run("UPDATE items SET properties = ? WHERE id = ?", req.item_properties, item["id"])
        item = items.find(tx, req.item_id)
        assert item is not None
    result, hold = _route(tx, req, item, borrower, notes)
    if loan is not None and hold is not None:
        tx.run("UPDATE loans SET trapped_hold_id = ? WHERE id = ?", hold["id"], loan["id"])
    detail = "; ".join(filter(None, [f"from {borrower}" if borrower else "not checked out",
                                     f"hold {hold['id']}" if hold is not None else "", *result.messages.screen]))
    tx.log(op, True, borrower, item["barcode"], detail)
    if loan is None and tx.terminal is not None and not tx.terminal.checked_in_ok:
        # The account wants to hear about it (Koha's checked_in_ok=0): the checkin is done
        # all the same, so the database is as with checked_in_ok=1; only the answer differs.
        messages = replace(result.messages, screen=(NOT_ON_LOAN, *result.messages.screen))
        result = replace(result, ok=False, alert=True, messages=messages)
    return result


def _send(tx: Tx, item: sqlite3.Row, here: str, to: str) -> None:
    """The item leaves ``here`` for ``to`` (a hold's pickup place, or its home)."""
    tx.run("UPDATE items SET status = 'in_transit', current_location = ?, destination_location = ? WHERE id = ?",
           here, to, item["id"])


def _route(tx: Tx, req: rq.CheckinRequest, item: sqlite3.Row, borrower: str | None,
           notes: list[str]) -> tuple[m.CheckinResult, sqlite3.Row | None]:
    """Send the copy where it goes next.  The answer's screen shows ``notes`` (about the
    loan just closed), then what to do with the copy."""

    def answer(note: str = "", **extra) -> m.CheckinResult:
        screen = (*notes, note) if note else tuple(notes)
        return _base(item, patron_id=borrower, messages=m.Messages(screen=screen), **extra)

    here = tx.here(req.current_location)
    place = tx.place(req.current_location)
    hold, queue = items.live_holds_for(tx, item)
    if hold is None:
        hold = queue[0] if queue else None
    if hold is not None:
        holder = tx.one("SELECT barcode, name FROM patrons WHERE id = ?", hold["patron_id"])
        pickup = hold["pickup_location"]
        who = {"hold_patron_id": holder["barcode"], "hold_patron_name": holder["name"]}
        if pickup in here:
            shelf_until = hold["shelf_expires_at"] if hold["status"] == "on_shelf" else None
            tx.run("UPDATE holds SET status = 'on_shelf', trapped_item_id = ?, shelf_expires_at = ? WHERE id = ?",
                   item["id"], shelf_until or stamp(tx.rules.shelf_expiry(tx.now)), hold["id"])
            tx.run("UPDATE items SET status = 'on_hold_shelf', current_location = ?, destination_location = NULL "
                   "WHERE id = ?", place, item["id"])
            return answer("On hold: please hand this item to staff", alert=True, alert_type=m.AlertType.LOCAL_HOLD,
                          sort_bin=BIN_HOLDS, destination_location=pickup, **who), hold
        tx.run("UPDATE holds SET status = 'in_transit', trapped_item_id = ?, shelf_expires_at = NULL WHERE id = ?",
               item["id"], hold["id"])
        _send(tx, item, place, pickup)
        return answer(f"On hold: please hand this item to staff (to {pickup})", alert=True,
                      alert_type=m.AlertType.REMOTE_HOLD, sort_bin=BIN_TRANSIT, destination_location=pickup,
                      **who), hold
    home = item["permanent_location"]
    if home and home not in here:
        _send(tx, item, place, home)
        return answer(f"Please hand this item to staff (returns to {home})", alert=True,
                      alert_type=m.AlertType.TRANSFER, sort_bin=BIN_TRANSIT, destination_location=home), None
    tx.run("UPDATE items SET status = 'available', current_location = ?, destination_location = NULL WHERE id = ?",
           place, item["id"])
    return answer(), None


def _cancel_checkin(tx: Tx, req: rq.CheckinRequest, item: sqlite3.Row) -> m.CheckinResult:
    """BI=Y: undo the last checkin of this copy (the terminal could not resensitize it):
    the loan is open again, its unpaid fine is dropped, a hold it trapped waits again."""
    op = "checkin_cancel"
    loan = tx.one("SELECT * FROM loans WHERE item_id = ? ORDER BY id DESC LIMIT 1", item["id"])
    if loan is None or loan["returned_at"] is None or loan["cancelled"] or item["status"] == "charged":
        tx.log(op, False, item=item["barcode"], detail="no checkin to cancel")
        return m.CheckinResult(ok=False, item_id=item["barcode"], permanent_location=item["permanent_location"],
                               title=item["title"],
                               messages=m.Messages(screen=("There is no checkin of this item to cancel",)))
    if loan["fine_fee_id"] is not None:
        tx.run("UPDATE loans SET fine_fee_id = NULL WHERE id = ?", loan["id"])
        tx.run("DELETE FROM fees WHERE id = ? AND paid_cents = 0", loan["fine_fee_id"])
    if loan["trapped_hold_id"] is not None:
        tx.run("UPDATE holds SET status = 'waiting', trapped_item_id = NULL, shelf_expires_at = NULL "
               "WHERE id = ? AND trapped_item_id = ? AND status IN ('in_transit', 'on_shelf')",
               loan["trapped_hold_id"], item["id"])
    tx.run("UPDATE loans SET returned_at = NULL, trapped_hold_id = NULL WHERE id = ?", loan["id"])
    tx.run("UPDATE items SET status = 'charged', destination_location = NULL WHERE id = ?", item["id"])
    borrower = tx.value("SELECT barcode FROM patrons WHERE id = ?", loan["patron_id"])
    tx.log(op, True, borrower, item["barcode"], f"loan L{loan['id']} open again")
    return _base(item, resensitize=False, patron_id=borrower, messages=m.Messages(screen=("Checkin cancelled",)))
