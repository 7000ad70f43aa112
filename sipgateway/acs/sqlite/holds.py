"""Hold (15): place (+) on a copy or a title, cancel (-), change (*) pickup or expiry."""

from __future__ import annotations

import sqlite3

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import items, patrons
from sipgateway.acs.sqlite.context import Tx, local, parse_stamp, stamp, title_key

ACTIVE = "('waiting', 'in_transit', 'on_shelf')"


def _refuse(tx: Tx, req: rq.HoldRequest, message: str, **extra) -> m.HoldResult:
    tx.log(f"hold{req.mode.value}", False, req.patron_id, req.item_id or req.title_id, message)
    return m.HoldResult(ok=False, patron_id=req.patron_id, item_id=req.item_id, title=req.title_id,
                        messages=m.Messages(screen=(message,)), **extra)


def hold(tx: Tx, req: rq.HoldRequest) -> m.HoldResult:
    who = patrons.identify(tx, req.patron_id, req.patron_pin)
    if who.refusal is not None:
        return _refuse(tx, req, who.refusal)
    patron = who.patron
    item = None
    if req.item_id:
        item = items.find(tx, req.item_id)
        if item is None:
            return _refuse(tx, req, items.UNKNOWN_ITEM)
    elif not (req.title_id or "").strip():
        return _refuse(tx, req, "A hold needs an item or a title")
    if req.mode is m.HoldMode.ADD:
        return _place(tx, req, patron, item)
    existing = _find(tx, patron, item, req.title_id)
    if existing is None:
        return _refuse(tx, req, "You have no hold on this item")
    if req.mode is m.HoldMode.DELETE:
        return _cancel(tx, req, existing)
    return _change(tx, req, existing)


def _find(tx: Tx, patron: sqlite3.Row, item: sqlite3.Row | None, title: str | None) -> sqlite3.Row | None:
    if item is not None:
        return tx.one(f"SELECT * FROM holds WHERE patron_id = ? AND status IN {ACTIVE} "
                      "AND (item_id = ? OR trapped_item_id = ?) ORDER BY queued_at, id LIMIT 1",
                      patron["id"], item["id"], item["id"])
    return tx.one(f"SELECT * FROM holds WHERE patron_id = ? AND status IN {ACTIVE} AND title_key = ? "
                  "ORDER BY queued_at, id LIMIT 1", patron["id"], title_key(title or ""))


def _position(tx: Tx, h: sqlite3.Row) -> int:
    """1 + the waiting holds ahead of ``h`` that compete for the same copies."""
    if h["status"] != "waiting":
        return 1
    if h["item_id"] is not None:
        rivals = "(item_id = :item OR (item_id IS NULL AND title_key = :key))"
    else:
        rivals = "title_key = :key"
    return 1 + tx.value(
        f"""SELECT count(*) FROM holds WHERE status = 'waiting' AND {rivals}
            AND (expires_at IS NULL OR expires_at >= :now) AND (queued_at < :at OR (queued_at = :at AND id < :id))""",
        {"item": h["item_id"], "key": h["title_key"], "now": tx.stamp, "at": h["queued_at"], "id": h["id"]})


def _answer(tx: Tx, h: sqlite3.Row, ok_message: str, available: bool = False) -> m.HoldResult:
    # the coalesce in Python: PostgreSQL cannot type coalesce() of two NULL parameters
    copy = h["item_id"] if h["item_id"] is not None else h["trapped_item_id"]
    barcode = None if copy is None else tx.value("SELECT barcode FROM items WHERE id = ?", copy)
    title = h["title"] or tx.value("SELECT title FROM items WHERE id = ?", h["item_id"])
    patron = tx.value("SELECT barcode FROM patrons WHERE id = ?", h["patron_id"])
    return m.HoldResult(ok=True, patron_id=patron, available=available, expiration_date=parse_stamp(h["expires_at"]),
                        queue_position=_position(tx, h) if h["status"] in ("waiting", "in_transit", "on_shelf")
                        else None,
                        pickup_location=h["pickup_location"], item_id=barcode, title=title,
                        messages=m.Messages(screen=(ok_message,)))


def _place(tx: Tx, req: rq.HoldRequest, patron: sqlite3.Row, item: sqlite3.Row | None) -> m.HoldResult:
    reason = patrons.hold_refusal(tx, patron, patrons.standing(tx, patron))
    if reason:
        return _refuse(tx, req, reason)
    if item is not None:
        key = title_key(item["title"])
        loan = items.open_loan(tx, item)
        if loan is not None and loan["patron_id"] == patron["id"]:
            return _refuse(tx, req, "You already have this item checked out")
        available = item["status"] in ("available", "reshelving") and items.trapped_hold(tx, item) is None
    else:
        key = title_key(req.title_id or "")
        copies = tx.all("SELECT * FROM items WHERE lower(trim(title)) = ?", key)
        if not copies:
            return _refuse(tx, req, "No item with this title is in the catalogue")
        available = any(c["status"] in ("available", "reshelving") for c in copies)
    if _find(tx, patron, item, req.title_id) is not None:
        return _refuse(tx, req, "You already have a hold on this " + ("item" if item is not None else "title"))
    expires = local(req.expiration_date) if req.expiration_date else tx.rules.hold_expiry(tx.now)
    if expires < tx.now:
        return _refuse(tx, req, "The hold expiry date is in the past")
    pickup = req.pickup_location or patron["home_library"] or (tx.terminal.institution if tx.terminal else "")
    hold_id = tx.run(
        "INSERT INTO holds (patron_id, item_id, title, title_key, pickup_location, hold_type, expires_at, queued_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        patron["id"], item["id"] if item is not None else None,
        None if item is not None else req.title_id, key, pickup,
        req.hold_type or (3 if item is not None else 2), stamp(expires), tx.stamp)
    h = tx.one("SELECT * FROM holds WHERE id = ?", hold_id)
    result = _answer(tx, h, f"Hold placed; pickup at {pickup}", available)
    tx.log("hold+", True, req.patron_id, req.item_id or req.title_id,
           f"hold {hold_id}, position {result.queue_position}, pickup {pickup}")
    return result


def _cancel(tx: Tx, req: rq.HoldRequest, h: sqlite3.Row) -> m.HoldResult:
    tx.run("UPDATE holds SET status = 'cancelled', closed_at = ? WHERE id = ?", tx.stamp, h["id"])
    if h["status"] == "on_shelf":
        # the copy on the hold shelf is free again: staff reshelve it (or a checkin re-routes it)
        tx.run("UPDATE items SET status = 'reshelving' WHERE id = ? AND status = 'on_hold_shelf'",
               h["trapped_item_id"])
    tx.log("hold-", True, req.patron_id, req.item_id or req.title_id, f"hold {h['id']} cancelled")
    result = _answer(tx, tx.one("SELECT * FROM holds WHERE id = ?", h["id"]), "Hold cancelled")
    return result


def _change(tx: Tx, req: rq.HoldRequest, h: sqlite3.Row) -> m.HoldResult:
    pickup = req.pickup_location or h["pickup_location"]
    if pickup != h["pickup_location"] and h["status"] != "waiting":
        return _refuse(tx, req, f"The item is already on its way to {h['pickup_location']}; please see staff")
    expires = stamp(local(req.expiration_date)) if req.expiration_date else h["expires_at"]
    if expires is not None and expires < tx.stamp:
        return _refuse(tx, req, "The hold expiry date is in the past")
    tx.run("UPDATE holds SET pickup_location = ?, expires_at = ? WHERE id = ?", pickup, expires, h["id"])
    tx.log("hold*", True, req.patron_id, req.item_id or req.title_id,
           f"hold {h['id']}: pickup {pickup}, expires {expires or 'never'}")
    return _answer(tx, tx.one("SELECT * FROM holds WHERE id = ?", h["id"]), "Hold changed",
                   available=h["status"] == "on_shelf")
