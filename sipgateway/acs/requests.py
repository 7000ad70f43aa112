"""What a device asks for, as plain values: one dataclass per SIP2 request.

The request table (``sipgateway.exchange``) turns a parsed request message into one of
these and hands it to the ACS method its entry names; the forwarding backend turns one
back into a request message for the library system it forwards to.  Secrets (passwords,
PINs) are kept out of ``repr`` so that a logged request never shows them.

``extra`` holds the request's fields that the model does not name (vendor tags), in the
order received, so that a backend that forwards requests can pass them on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sipgateway.acs.model import FeeType, HoldMode, ItemList

#: tag -> value(s) of fields the model does not name
Extra = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LoginRequest:
    """93: an SC logs in."""

    user: str
    password: str = field(default="", repr=False)
    location: str = ""
    extra: Extra = ()


@dataclass(frozen=True)
class StatusRequest:
    """99: SC status (the terminal's state, and what it can print)."""

    status_code: str = "0"
    max_print_width: int = 0
    protocol_version: str = "2.00"
    extra: Extra = ()


@dataclass(frozen=True)
class PatronStatusRequest:
    """23."""

    patron_id: str
    patron_pin: str | None = field(default=None, repr=False)
    language: str = "000"
    extra: Extra = ()


@dataclass(frozen=True)
class PatronInformationRequest:
    """63: counts, and at most one list of items (``item_list``) cut to ``start``..``end``
    (1-based, inclusive)."""

    patron_id: str
    patron_pin: str | None = field(default=None, repr=False)
    item_list: ItemList | None = None
    start: int | None = None
    end: int | None = None
    language: str = "000"
    extra: Extra = ()


@dataclass(frozen=True)
class BlockPatronRequest:
    """01."""

    patron_id: str
    message: str = ""
    card_retained: bool = False
    extra: Extra = ()


@dataclass(frozen=True)
class PatronEnableRequest:
    """25."""

    patron_id: str
    patron_pin: str | None = field(default=None, repr=False)
    extra: Extra = ()


@dataclass(frozen=True)
class CheckoutRequest:
    """11 (checkout) and 29 (renew): everything a loan asks for."""

    patron_id: str
    item_id: str
    patron_pin: str | None = field(default=None, repr=False)
    no_block: bool = False
    nb_due_date: datetime | None = None
    renewal_policy: bool = False       # 11: the SC allows renewal if already out to this patron
    fee_acknowledged: bool = False
    cancel: bool = False
    item_properties: str | None = None
    title_id: str | None = None         # renew by title (29 with AJ and no AB)
    third_party: bool = False           # 29: renew even if charged to someone else
    transaction_date: datetime | None = None
    extra: Extra = ()


@dataclass(frozen=True)
class RenewAllRequest:
    """65."""

    patron_id: str
    patron_pin: str | None = field(default=None, repr=False)
    fee_acknowledged: bool = False
    extra: Extra = ()


@dataclass(frozen=True)
class CheckinRequest:
    """09."""

    item_id: str
    return_date: datetime | None = None
    current_location: str = ""
    no_block: bool = False
    cancel: bool = False
    item_properties: str | None = None
    transaction_date: datetime | None = None
    extra: Extra = ()


@dataclass(frozen=True)
class ItemInformationRequest:
    """17."""

    item_id: str
    extra: Extra = ()


@dataclass(frozen=True)
class ItemStatusUpdateRequest:
    """19."""

    item_id: str
    item_properties: str = ""
    extra: Extra = ()


@dataclass(frozen=True)
class HoldRequest:
    """15."""

    mode: HoldMode
    patron_id: str
    patron_pin: str | None = field(default=None, repr=False)
    item_id: str | None = None
    title_id: str | None = None
    pickup_location: str | None = None
    expiration_date: datetime | None = None
    hold_type: int | None = None
    fee_acknowledged: bool = False
    extra: Extra = ()


@dataclass(frozen=True)
class EndSessionRequest:
    """35."""

    patron_id: str
    patron_pin: str | None = field(default=None, repr=False)
    extra: Extra = ()


@dataclass(frozen=True)
class FeePayment:
    """37: a payment of ``amount`` in ``currency``; ``fee_id`` names the fees paid (Wise
    joins several with ``+``).

    OCLC Wise SIP2+ adds what the amount is for, each part an amount of its own (FA
    ``membership`` fees, FB ``registrations``: fines and charges, FC ``deposit``: credit
    bought), the client's tracking number (FX ``tracking``), and payment type 09
    (``USE_DEPOSIT``): paid from the patron's credit."""

    patron_id: str
    amount: Decimal
    currency: str
    fee_type: FeeType | int
    payment_type: int
    patron_pin: str | None = field(default=None, repr=False)
    fee_id: str | None = None
    transaction_id: str | None = None
    extra: Extra = ()
    membership: Decimal | None = None
    registrations: Decimal | None = None
    deposit: Decimal | None = None
    tracking: str | None = None

    @property
    def purposes_given(self) -> bool:
        """A payment in the Wise form: parts for its purposes, or paid from the credit."""
        return (self.payment_type == USE_DEPOSIT or self.membership is not None or self.registrations is not None
                or self.deposit is not None)


#: payment type (37 fixed field, 39 FI) "use the deposit" (OCLC Wise SIP2+)
USE_DEPOSIT = 9


# --- OCLC Wise SIP2+ ---------------------------------------------------------------------

@dataclass(frozen=True)
class UsageDebit:
    """39: ``amount`` for a service (printing, a room), booked on the Wise journal code
    ``journal_code`` (FH) and paid by ``payment_method`` (FI); from a known patron's credit
    (FI 09), or by an anonymous user (``patron_id`` None) in cash or by card."""

    amount: Decimal
    journal_code: str
    payment_method: int
    patron_id: str | None = None
    extra: Extra = ()


@dataclass(frozen=True)
class PaymentsOverviewRequest:
    """41: a patron's payments from ``date_from`` to ``date_to`` (inclusive), of the kinds
    selected (FA contributions, FB registrations, FC deposit; none selected: all) and of
    ``payment_method`` (FI) if given; or, with ``open_only`` (FD), the patron's unpaid fees;
    or, with ``punches_only`` (FG), their punch-card balance."""

    patron_id: str
    date_from: date
    date_to: date
    payment_method: int | None = None
    contributions: bool = False
    registrations: bool = False
    deposit: bool = False
    open_only: bool = False
    punches_only: bool = False
    extra: Extra = ()


@dataclass(frozen=True)
class RenewalOptionsRequest:
    """70: what renewing each of a patron's loans (or only ``item_id``) would do."""

    patron_id: str
    item_id: str | None = None
    extra: Extra = ()


@dataclass(frozen=True)
class PunchCardOptionsRequest:
    """Y1: the punch cards a patron may buy."""

    patron_id: str
    extra: Extra = ()


@dataclass(frozen=True)
class PunchCardPurchase:
    """Y3: buy the punch cards ``selection`` (FG, as the client sends it) by ``payment_method`` (FI)."""

    patron_id: str
    selection: str = ""
    payment_method: str = ""
    extra: Extra = ()


@dataclass(frozen=True)
class UsernameRequest:
    """X1: give the patron the user name ``username`` (to log in with instead of the card number)."""

    patron_id: str
    username: str
    patron_pin: str | None = field(default=None, repr=False)
    extra: Extra = ()
