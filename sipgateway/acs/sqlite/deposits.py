"""Fee paid (37) in OCLC Wise's SIP2+ form, and what a patron may spend (CC).

A Wise 37 says what its amount (BV) is for, in parts that add up to it: FA membership fees,
FB fines and charges, FC credit (the deposit).  Each of the first two pays fees of its
kind: the fees CG lists, in the order given, when it lists any, else the oldest open ones.
Whatever a part does not use goes to the patron's credit, with FC.  Payment type 09 pays
from the credit instead of bringing money: it cannot buy credit, must be covered by the
credit, and takes from it only what the fees use.

The fee limit reported in 38 and 40 (CC) is what the patron may spend now: their credit
plus the most they may owe (``fee_limit_cents``) less their unpaid fines and charges
(membership fees do not count), never below zero.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import journal
from sipgateway.acs.sqlite.context import Tx, money, show_money, to_cents

_SPENDABLE = f"""
    SELECT p.deposit_cents + p.fee_limit_cents - coalesce((SELECT sum(amount_cents - paid_cents) FROM fees
        WHERE patron_id = p.id AND paid_cents < amount_cents AND category != {journal.MEMBERSHIP}), 0)
    FROM patrons p WHERE p.id = ?"""


def spendable(tx: Tx, patron_id: int) -> int:
    """CC in cents."""
    return max(0, tx.value(_SPENDABLE, patron_id) or 0)


def fee_limit(tx: Tx, patron_id: int) -> Decimal:
    return money(spendable(tx, patron_id))


def _parts(payment: rq.FeePayment, cents: int) -> tuple[int, int, int] | str:
    """(membership, fines and charges, credit) in cents, or why they cannot be used.  A 37
    paying from the credit without parts pays fines and charges."""
    amounts = (payment.membership, payment.registrations, payment.deposit)
    if all(a is None for a in amounts):
        return 0, cents, 0
    parts = [0 if a is None else to_cents(a) if a.is_finite() else None for a in amounts]
    if any(p is None for p in parts):
        return "The amounts for FA, FB and FC must be in whole cents"
    membership, registrations, deposit = (int(p or 0) for p in parts)
    if min(membership, registrations, deposit) < 0:
        return "The amounts for FA, FB and FC cannot be negative"
    return membership, registrations, deposit


def settle(tx: Tx, payment: rq.FeePayment, patron: sqlite3.Row, cents: int, ids: list[int]) -> m.FeePaidResult:
    """The Wise form of ``fees.fee_paid``, after its checks of the patron, PIN, currency,
    amount, CG and BK."""
    currency = tx.ctx.currency

    def refuse(message: str) -> m.FeePaidResult:
        tx.log("fee_paid", False, payment.patron_id, detail=message)
        return m.FeePaidResult(accepted=False, patron_id=payment.patron_id, transaction_id=payment.transaction_id,
                               fee_limit=fee_limit(tx, patron["id"]), messages=m.Messages(screen=(message,)))

    if cents > journal.MAX_CENTS:
        return refuse(f"The amount is more than {show_money(journal.MAX_CENTS, currency)}")
    parts = _parts(payment, cents)
    if isinstance(parts, str):
        return refuse(parts)
    if sum(parts) != cents:
        return refuse(f"The amounts for FA, FB and FC add up to {show_money(sum(parts), currency)}, not to the "
                      f"fee amount {show_money(cents, currency)}")
    from_credit = payment.payment_type == rq.USE_DEPOSIT
    credit = patron["deposit_cents"]
    if from_credit and parts[2]:
        return refuse("Credit cannot be bought with credit (payment type 09)")
    if from_credit and credit < cents:
        return refuse(f"Your credit ({show_money(credit, currency)}) does not cover {show_money(cents, currency)}")

    open_fees = tx.all("SELECT id, category, amount_cents - paid_cents AS due FROM fees "
                       "WHERE patron_id = ? AND paid_cents < amount_cents ORDER BY created_at, id", patron["id"])
    by_id = {f["id"]: f for f in open_fees}
    for fee_id in ids:
        if fee_id not in by_id:
            return refuse(f"Fee {fee_id} is not an open fee of yours")
    budget = {True: parts[0], False: parts[1]}  # by "is a membership fee"
    paid: list[tuple[int, int]] = []
    for fee in [by_id[i] for i in ids] if ids else open_fees:
        membership = fee["category"] == journal.MEMBERSHIP
        part = min(budget[membership], fee["due"])
        if part > 0:
            budget[membership] -= part
            paid.append((fee["id"], part))
    used = sum(part for _, part in paid)
    if from_credit and not used:
        return refuse("You owe no fees that this payment could pay")

    payment_id, transaction_id = journal.record_payment(tx, patron["id"], used if from_credit else cents, payment)
    for fee_id, part in paid:
        journal.pay_fee(tx, payment_id, fee_id, part, payment.payment_type, payment.tracking)
    notes = [f"Paid {show_money(used, currency)} towards {len(paid)} fee(s)"] if paid else []
    if from_credit:
        credit -= used
        notes[0] += " from your credit"
    elif cents > used:
        credit += cents - used
        journal.book(tx, "deposit", cents - used, payment.payment_type, patron["id"], payment_id=payment_id,
                     tracking=payment.tracking, description="Credit")
        notes.append(f"{show_money(cents - used, currency)} added to your credit")
    if credit != patron["deposit_cents"]:
        tx.run("UPDATE patrons SET deposit_cents = ? WHERE id = ?", credit, patron["id"])
    notes.append(f"your credit is {show_money(credit, currency)}")
    note = "; ".join(notes)
    note = note[:1].upper() + note[1:]
    tx.log("fee_paid", True, payment.patron_id, detail=f"{transaction_id}: {note}")
    return m.FeePaidResult(accepted=True, patron_id=payment.patron_id, transaction_id=transaction_id,
                           fee_limit=fee_limit(tx, patron["id"]), messages=m.Messages(screen=(note,)))
