"""Answers to the OCLC Wise SIP2+ requests, as plain values (the rest are in model.py).

Wise's own messages: 39 usage debit → 40, 41 payments overview → 42, 70 renewal options
→ 71, Y1 punch-card options → Y2, Y3 punch-card purchase → Y4, X1 save user name → X2.
Their lines (42 YZ, 71 GC, Y2 FG) are values here with one field per ``~``-separated part;
the request table (``sipgateway.exchange.wise``) writes and reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sipgateway.acs.model import Messages

#: tag -> value of fields the model does not name
Extra = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class UsageDebitResult:
    """Answer to usage debit (39 → 40)."""

    accepted: bool
    patron_id: str | None = None
    #: CC: what the patron may still spend (None for an anonymous user)
    fee_limit: Decimal | None = None
    messages: Messages = Messages()
    extra: Extra = ()


@dataclass(frozen=True)
class Payment:
    """One payment of a 42 (a YZ line: date ~ type ~ amount ~ method ~ description)."""

    day: date
    kind: str          # Contribution, Registration, Deposit, Usage
    amount: Decimal
    method: str        # Cash, Bank, Credit card, Chip, Deposit
    description: str = ""


@dataclass(frozen=True)
class OpenRegistration:
    """One unpaid fee of a 42 asked for with FD (a YZ line of ten parts).  ``registration_id``
    is what a 37 names in CG to pay it."""

    created: date | None
    description: str
    title: str
    calculated: date | None
    amount: Decimal
    #: I invoice, D debt collection, R payment arrangement, J collected by automatic invoice; "" none
    status: str
    sent_to_collector: date | None
    registration_id: str
    #: 1 membership, 2 registrations (fines, charges), 3 sales, 4 other revenue
    kind: int
    #: not payable before this date (a payment arrangement)
    arrangement: date | None = None


@dataclass(frozen=True)
class PunchBalance:
    """One punch card of a 42 asked for with FG: its name and its punches left (or ``Ransomed``)."""

    name: str
    balance: str


@dataclass(frozen=True)
class PaymentsOverview:
    """Answer to payments overview (41 → 42): one of the three lists, as asked."""

    payments: tuple[Payment, ...] = ()
    open_registrations: tuple[OpenRegistration, ...] = ()
    punch_balances: tuple[PunchBalance, ...] = ()
    messages: Messages = Messages()
    extra: Extra = ()


@dataclass(frozen=True)
class RenewalOption:
    """One loan of a 71 (a GC line of nine parts)."""

    item_id: str
    title: str
    due_date: date | None
    #: the due date a renewal would give; None when it cannot be renewed (``remarks`` says why)
    new_due_date: date | None
    #: the fine owed if it were returned now
    fine: Decimal
    loan_cost: Decimal
    punches: int
    renewal_cost: Decimal
    remarks: str = ""


@dataclass(frozen=True)
class RenewalOptions:
    """Answer to renewal options (70 → 71); ``punches`` (FG) is the patron's punch-card balance."""

    options: tuple[RenewalOption, ...] = ()
    punches: int = 0
    messages: Messages = Messages()
    extra: Extra = ()


@dataclass(frozen=True)
class PunchCardOffer:
    """One punch card for sale in a Y2 (an FG line: type ~ code ~ description ~ punches ~ price)."""

    kind: str
    code: str
    description: str
    punches: int
    price: Decimal


@dataclass(frozen=True)
class PunchCardOptions:
    """Answer to punch-card options (Y1 → Y2)."""

    ok: bool
    offers: tuple[PunchCardOffer, ...] = ()
    messages: Messages = Messages()
    extra: Extra = ()


@dataclass(frozen=True)
class PunchCardPurchaseResult:
    """Answer to a punch-card purchase (Y3 → Y4)."""

    ok: bool
    messages: Messages = Messages()
    extra: Extra = ()


@dataclass(frozen=True)
class UsernameResult:
    """Answer to save user name (X1 → X2).  ``ok`` is what it means; on the wire X2's status
    is inverted (``0`` OK, ``1`` not OK)."""

    ok: bool
    patron_id: str = ""
    username: str = ""
    messages: Messages = Messages()
    extra: Extra = ()
