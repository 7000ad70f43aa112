"""Fee paid (37): a payment reduces the named fees, then the oldest ones."""

from __future__ import annotations

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import deposits, journal, patrons
from sipgateway.acs.sqlite.context import Tx, show_money, to_cents


def _refuse(tx: Tx, payment: rq.FeePayment, message: str) -> m.FeePaidResult:
    tx.log("fee_paid", False, payment.patron_id, detail=message)
    return m.FeePaidResult(accepted=False, patron_id=payment.patron_id, transaction_id=payment.transaction_id,
                           messages=m.Messages(screen=(message,)))


def _fee_ids(text: str | None) -> list[int] | None:
    """CG: one fee id, or several joined by '+' (a trailing '+' is allowed); None if malformed."""
    if not text:
        return []
    parts = [p.strip() for p in text.split("+") if p.strip()]
    if not all(p.isdigit() for p in parts):
        return None
    return list(dict.fromkeys(int(p) for p in parts))  # a fee named twice is paid once


def fee_paid(tx: Tx, payment: rq.FeePayment) -> m.FeePaidResult:
    currency = tx.ctx.currency
    who = patrons.identify(tx, payment.patron_id, payment.patron_pin)
    if who.refusal is not None:
        return _refuse(tx, payment, who.refusal)
    patron = who.patron
    given = (payment.currency or "").strip().upper()
    if given and given != currency.upper():
        return _refuse(tx, payment, f"Payments are accepted in {currency} only")
    cents = to_cents(payment.amount) if payment.amount.is_finite() else None
    if cents is None:
        return _refuse(tx, payment, "The amount must be in whole cents")
    if cents <= 0:
        return _refuse(tx, payment, "The amount must be more than zero")
    ids = _fee_ids(payment.fee_id)
    if ids is None:
        return _refuse(tx, payment, "The fee identifier is not valid")

    if payment.transaction_id:
        earlier = tx.one("SELECT id, amount_cents FROM payments WHERE patron_id = ? AND transaction_id = ?",
                         patron["id"], payment.transaction_id)
        if earlier is not None:
            if earlier["amount_cents"] == cents:  # the terminal sent the same payment again
                return m.FeePaidResult(accepted=True, patron_id=payment.patron_id,
                                       transaction_id=payment.transaction_id,
                                       messages=m.Messages(screen=("This payment was already recorded",)))
            return _refuse(tx, payment, "This transaction id was already used for another payment")
    if payment.purposes_given:  # OCLC Wise SIP2+: parts for membership fees, fines, credit
        return deposits.settle(tx, payment, patron, cents, ids)

    open_fees = tx.all("SELECT id, amount_cents - paid_cents AS due FROM fees "
                       "WHERE patron_id = ? AND paid_cents < amount_cents ORDER BY created_at, id", patron["id"])
    balance = sum(f["due"] for f in open_fees)
    if cents > balance:
        return _refuse(tx, payment, f"The amount is more than what you owe ({show_money(balance, currency)})")
    by_id = {f["id"]: f for f in open_fees}
    for fee_id in ids:
        if fee_id not in by_id:
            return _refuse(tx, payment, f"Fee {fee_id} is not an open fee of yours")
    order = [by_id[i] for i in ids] + [f for f in open_fees if f["id"] not in ids]

    payment_id, transaction_id = journal.record_payment(tx, patron["id"], cents, payment)
    left = cents
    for fee in order:
        if left == 0:
            break
        part = min(left, fee["due"])
        journal.pay_fee(tx, payment_id, fee["id"], part, payment.payment_type, payment.tracking)
        left -= part
    note = (f"Paid {show_money(cents, currency)}; you now owe {show_money(balance - cents, currency)}")
    tx.log("fee_paid", True, payment.patron_id, detail=f"{transaction_id}: {note}")
    return m.FeePaidResult(accepted=True, patron_id=payment.patron_id, transaction_id=transaction_id,
                           messages=m.Messages(screen=(note,)))
