"""Renewal options (70, OCLC Wise SIP2+): what renewing each loan would do, without renewing.

The same rules as a renewal (29, loans.py): a loan can be renewed when the patron may
renew and the item has renewals left and no other patron waits for it; the new due date is
the one a renewal now would give.  A loan that cannot be renewed says why in its remarks.
This library charges nothing for loans or renewals and has no punch cards, so those parts
are zero; the fine is what returning the item now would cost.
"""

from __future__ import annotations

from decimal import Decimal

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs import wise as w
from sipgateway.acs.sqlite import loans, patrons
from sipgateway.acs.sqlite.context import Tx, money, parse_stamp

#: the most loans one answer lists
MAX_OPTIONS = 100
_NONE = Decimal("0.00")


def renewal_options(tx: Tx, req: rq.RenewalOptionsRequest) -> w.RenewalOptions:
    patron, borrowing = patrons.find_borrower(tx, req.patron_id)
    if patron is None or borrowing is None:
        return w.RenewalOptions(messages=m.Messages(screen=(patrons.UNKNOWN_PATRON,)))
    item_filter = " AND i.barcode = ?" if req.item_id else ""
    rows = tx.all("SELECT l.id, l.patron_id, l.due_at, l.renewals, l.item_id FROM loans l "
                  "JOIN items i ON i.id = l.item_id WHERE l.patron_id = ? AND l.returned_at IS NULL"
                  f"{item_filter} ORDER BY l.due_at, l.id LIMIT {MAX_OPTIONS}",
                  patron["id"], *([req.item_id] if req.item_id else []))
    if not rows:
        text = "This item is not checked out to you" if req.item_id else "You have no items checked out"
        return w.RenewalOptions(messages=m.Messages(screen=(text,)))
    refusal = patrons.renewal_refusal(tx, patron, borrowing)
    options = []
    for loan in rows:
        item = tx.one("SELECT * FROM items WHERE id = ?", loan["item_id"])
        due = parse_stamp(loan["due_at"])
        assert item is not None and due is not None
        problem = refusal or loans.renewal_problem(tx, loan, item)
        new_due = None if problem else max(tx.rules.due_date(item["media_type"], tx.now), due)
        options.append(w.RenewalOption(
            item_id=item["barcode"], title=item["title"], due_date=due.date(),
            new_due_date=None if new_due is None else new_due.date(), fine=money(tx.rules.overdue_fine(due, tx.now)),
            loan_cost=_NONE, punches=0, renewal_cost=_NONE, remarks=problem or ""))
    renewable = sum(o.new_due_date is not None for o in options)
    return w.RenewalOptions(options=tuple(options),
                            messages=m.Messages(screen=(f"{renewable} of {len(options)} item(s) can be renewed",)))
