"""Usage debit (39, OCLC Wise SIP2+): a service paid at a device (printing, a room).

A known patron pays from their credit (FI 09), up to what they may spend (CC, see
deposits.py): what the credit does not cover becomes a fee they owe, of the category the
journal code names (its first digit: 2 fines and charges, 3 sales, 4 other revenue).  An
anonymous user (no AA) pays in cash or by card (FI 00-03), never from a credit.  Either way
the amount is booked in the journal under its code (FH).
"""

from __future__ import annotations

import re

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs import wise as w
from sipgateway.acs.sqlite import deposits, journal, patrons
from sipgateway.acs.sqlite.context import Tx, money, show_money, to_cents

#: a Wise journal code for revenue: four digits, the first 2, 3 or 4
JOURNAL_CODE = re.compile(r"[234][0-9]{3}")
#: FI: 00 cash, 01 bank, 02 credit card, 03 chip, 09 the patron's credit
METHODS = frozenset({0, 1, 2, 3, rq.USE_DEPOSIT})


def _refuse(tx: Tx, req: rq.UsageDebit, message: str, limit: int | None = None) -> w.UsageDebitResult:
    tx.log("usage_debit", False, req.patron_id, detail=message)
    return w.UsageDebitResult(accepted=False, patron_id=req.patron_id,
                              fee_limit=None if limit is None else money(limit), messages=m.Messages(screen=(message,)))


def usage_debit(tx: Tx, req: rq.UsageDebit) -> w.UsageDebitResult:
    currency = tx.ctx.currency
    cents = to_cents(req.amount) if req.amount.is_finite() else None
    if cents is None:
        return _refuse(tx, req, "The amount must be in whole cents")
    if cents <= 0:
        return _refuse(tx, req, "The amount must be more than zero")
    if cents > journal.MAX_CENTS:
        return _refuse(tx, req, f"The amount is more than {show_money(journal.MAX_CENTS, currency)}")
    if not JOURNAL_CODE.fullmatch(req.journal_code):
        return _refuse(tx, req, "The journal code (FH) must be four digits starting with 2, 3 or 4")
    if req.payment_method not in METHODS:
        return _refuse(tx, req, "The payment method (FI) must be 00, 01, 02, 03 or 09")
    code, method = req.journal_code, req.payment_method
    paid = f"Paid {show_money(cents, currency)}"
    if req.patron_id is None:
        if method == rq.USE_DEPOSIT:
            return _refuse(tx, req, "Anonymous usage cannot be paid from a credit (payment method 09)")
        journal.book(tx, "usage", cents, method, None, code=code, description=f"Usage {code}")
        tx.log("usage_debit", True, None, detail=f"{code}: {paid} ({journal.method_name(method)})")
        return w.UsageDebitResult(accepted=True, messages=m.Messages(screen=(paid,)))

    patron = patrons.find(tx, req.patron_id)
    if patron is None:
        return _refuse(tx, req, patrons.UNKNOWN_PATRON)
    if method != rq.USE_DEPOSIT:
        return _refuse(tx, req, "A patron pays usage from their credit (payment method 09)")
    if patron["card_lost"]:
        return _refuse(tx, req, "This card has been reported lost; please see staff")
    if patron["blocked"]:
        return _refuse(tx, req, patron["block_message"] or "Your account is blocked; please see staff")
    limit = deposits.spendable(tx, patron["id"])
    if cents > limit:
        return _refuse(tx, req, f"You may spend {show_money(limit, currency)}, less than "
                                f"{show_money(cents, currency)}", limit)
    taken = min(cents, patron["deposit_cents"])
    if taken:
        tx.run("UPDATE patrons SET deposit_cents = deposit_cents - ? WHERE id = ?", taken, patron["id"])
    if cents > taken:  # the rest is owed, as a fee of the journal code's category
        tx.run("INSERT INTO fees (patron_id, fee_type, category, description, amount_cents, created_at) "
               "VALUES (?, ?, ?, ?, ?, ?)", patron["id"], int(m.FeeType.OTHER), int(code[0]), f"Usage {code}",
               cents - taken, tx.stamp)
    journal.book(tx, "usage", cents, method, patron["id"], code=code, description=f"Usage {code}")
    note = paid + (f", {show_money(cents - taken, currency)} of it owed" if cents > taken else " from your credit")
    tx.log("usage_debit", True, req.patron_id, detail=f"{code}: {note}")
    return w.UsageDebitResult(accepted=True, patron_id=req.patron_id, fee_limit=money(limit - cents),
                              messages=m.Messages(screen=(note,)))
