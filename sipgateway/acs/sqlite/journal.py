"""The payments journal (OCLC Wise SIP2+) and the payments overview (41).

Every amount booked is one ``journal`` row: a payment towards a fee (a ``contribution`` for
a membership fee, a ``registration`` for a fine or charge), credit bought (``deposit``) or a
service paid (``usage``, 39).  ``method`` is the payment type (00 cash, 01 bank, 02 credit
card, 03 chip, 09 the patron's credit); ``code`` the Wise journal code of a usage debit;
``tracking`` the client's tracking number (37 FX).  The overview lists these rows; with FD
it lists the patron's unpaid fees instead.
"""

from __future__ import annotations

import sqlite3
from datetime import date

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs import wise as w
from sipgateway.acs.sqlite import patrons
from sipgateway.acs.sqlite.context import Tx, money, parse_stamp
from sipgateway.acs.sqlite.unoffered import PUNCH_CARDS

#: the most lines one overview lists (the latest payments, the oldest unpaid fees)
MAX_LINES = 100
#: the largest amount one request may book (1,000,000.00): a bigger one is a typing error
MAX_CENTS = 100_000_000
#: fee category of a membership fee (Wise's registration type 1); 2 fines and charges, 3 sales, 4 other
MEMBERSHIP = 1
KIND_NAMES = {"contribution": "Contribution", "registration": "Registration", "deposit": "Deposit",
              "usage": "Usage"}
METHOD_NAMES = {0: "Cash", 1: "Bank", 2: "Credit card", 3: "Chip", 9: "Deposit"}
#: 41's selectors: which kinds each lists (the deposit: credit bought and credit spent)
_SELECTED = (("contributions", ("contribution",)), ("registrations", ("registration",)),
             ("deposit", ("deposit", "usage")))


def record_payment(tx: Tx, patron_id: int, cents: int, payment: rq.FeePayment) -> tuple[int, str]:
    """The ``payments`` row of a 37: its id and transaction id (the request's BK, else ``P<id>``)."""
    t = tx.terminal
    payment_id = tx.run(
        "INSERT INTO payments (patron_id, amount_cents, currency, payment_type, fee_type, transaction_id, account, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        patron_id, cents, tx.ctx.currency, payment.payment_type, int(payment.fee_type),
        payment.transaction_id or "", t.account if t else "", tx.stamp)
    transaction_id = payment.transaction_id or f"P{payment_id}"
    if not payment.transaction_id:
        tx.run("UPDATE payments SET transaction_id = ? WHERE id = ?", transaction_id, payment_id)
    return payment_id, transaction_id


def pay_fee(tx: Tx, payment_id: int, fee_id: int, cents: int, method: int, tracking: str | None) -> None:
    """``cents`` of payment ``payment_id`` towards fee ``fee_id``: paid, allocated and booked."""
    tx.run("UPDATE fees SET paid_cents = paid_cents + ? WHERE id = ?", cents, fee_id)
    tx.run("INSERT INTO payment_allocations (payment_id, fee_id, amount_cents) VALUES (?, ?, ?)",
           payment_id, fee_id, cents)
    t = tx.terminal
    tx.run("INSERT INTO journal (at, patron_id, payment_id, fee_id, kind, amount_cents, method, tracking, account, "
           f"description) SELECT ?, patron_id, ?, id, CASE category WHEN {MEMBERSHIP} THEN 'contribution' "
           "ELSE 'registration' END, ?, ?, ?, ?, description FROM fees WHERE id = ?",
           tx.stamp, payment_id, cents, method, tracking or "", t.account if t else "", fee_id)


def book(tx: Tx, kind: str, cents: int, method: int, patron_id: int | None, *, payment_id: int | None = None,
         code: str = "", tracking: str | None = None, description: str = "") -> None:
    """One journal row that is not a payment towards a fee (credit bought, a usage debit)."""
    t = tx.terminal
    tx.run("INSERT INTO journal (at, patron_id, payment_id, kind, amount_cents, method, code, tracking, account, "
           "description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", tx.stamp, patron_id, payment_id, kind, cents,
           method, code, tracking or "", t.account if t else "", description)


def method_name(method: int) -> str:
    return METHOD_NAMES.get(method, f"Method {method:02d}")


def _day(text: str) -> date:
    day = parse_stamp(text)
    assert day is not None
    return day.date()


def _note(text: str) -> w.PaymentsOverview:
    return w.PaymentsOverview(messages=m.Messages(screen=(text,)))


def payments_overview(tx: Tx, req: rq.PaymentsOverviewRequest) -> w.PaymentsOverview:
    patron = patrons.find(tx, req.patron_id)
    if patron is None:
        return _note(patrons.UNKNOWN_PATRON)
    if req.punches_only:
        return _note(PUNCH_CARDS)
    if req.date_to < req.date_from:
        return _note("The period is empty: the date to (FK) is before the date from (FJ)")
    period = (req.date_from.isoformat(), req.date_to.isoformat() + " 23:59:59")
    if req.open_only:
        return _open_fees(tx, patron, period)
    kinds = [kind for selector, names in _SELECTED if getattr(req, selector) for kind in names]
    kinds = kinds or list(KIND_NAMES)
    methods = [] if req.payment_method is None else [req.payment_method]
    rows = tx.all(f"SELECT at, kind, amount_cents, method, description FROM journal WHERE patron_id = ? "
                  f"AND at BETWEEN ? AND ? AND kind IN ({', '.join('?' * len(kinds))})"
                  f"{' AND method = ?' if methods else ''} ORDER BY at DESC, id DESC LIMIT {MAX_LINES + 1}",
                  patron["id"], *period, *kinds, *methods)
    lines = tuple(w.Payment(day=_day(r["at"]), kind=KIND_NAMES[r["kind"]], amount=money(r["amount_cents"]),
                            method=method_name(r["method"]), description=r["description"])
                  for r in reversed(rows[:MAX_LINES]))
    if not lines:
        note = "No payments in this period"
    elif len(rows) > MAX_LINES:
        note = f"The latest {MAX_LINES} payments of this period are shown"
    else:
        note = f"{len(lines)} payment(s)"
    return w.PaymentsOverview(payments=lines, messages=m.Messages(screen=(note,)))


def _open_fees(tx: Tx, patron: sqlite3.Row, period: tuple[str, str]) -> w.PaymentsOverview:
    """FD: the unpaid fees created in the period, oldest first; the id is what CG names."""
    rows = tx.all("SELECT f.id, f.created_at, f.description, coalesce(i.title, '') AS title, f.category, "
                  "f.amount_cents - f.paid_cents AS due FROM fees f LEFT JOIN items i ON i.id = f.item_id "
                  "WHERE f.patron_id = ? AND f.paid_cents < f.amount_cents AND f.created_at BETWEEN ? AND ? "
                  f"ORDER BY f.created_at, f.id LIMIT {MAX_LINES + 1}", patron["id"], *period)
    lines = tuple(w.OpenRegistration(created=_day(r["created_at"]), description=r["description"],
                                     title=r["title"], calculated=_day(r["created_at"]), amount=money(r["due"]),
                                     status="", sent_to_collector=None, registration_id=str(r["id"]),
                                     kind=r["category"])
                  for r in rows[:MAX_LINES])
    if not lines:
        note = "No unpaid fees in this period"
    elif len(rows) > MAX_LINES:
        note = f"The oldest {MAX_LINES} unpaid fees of this period are shown"
    else:
        note = f"{len(lines)} unpaid fee(s)"
    return w.PaymentsOverview(open_registrations=lines, messages=m.Messages(screen=(note,)))
