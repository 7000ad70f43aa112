"""Plain values passed between the session and an ACS backend.

Nothing here knows SIP2 wire formats: dates are ``datetime`` objects, money is
``Decimal``, flags are booleans or enums.  The session turns these into
messages (``sipgateway.replies``); backends build them from their own data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

#: a session setting (settings.py), which an account carries
from sipgateway.settings import ErrorDetection


@dataclass(frozen=True)
class Account:
    """A self-check (SC) login account: who a terminal is and how it talks."""

    name: str
    institution: str
    encoding: str = "utf-8"
    error_detection: ErrorDetection = ErrorDetection.AUTO
    library_name: str = ""
    terminal_location: str = ""


@dataclass(frozen=True)
class Terminal:
    """The logged-in terminal a request comes from, passed to every ACS call.

    ``deadline`` is when the gateway must have answered the call (the reactor's clock, epoch
    seconds), None for no deadline.  The session passes a copy carrying the deadline of the
    request in progress (``until``).  It is not part of the terminal's identity: terminals
    differing only in their deadline are equal and hash alike (they key caches)."""

    account: str
    institution: str
    location: str = ""
    #: the account's ``checked_in_ok``: a checkin of an item that was not on loan is still
    #: done, and answered ok (True) or not ok with an alert (False), as Koha does
    checked_in_ok: bool = True
    #: the device's address (IP address, or serial device) as the gateway sees it; not part
    #: of equality, so what is cached per terminal is shared by the device's connections
    address: str = field(default="", compare=False)
    deadline: float | None = field(default=None, compare=False)
    #: what identifies the terminal, as a plain tuple: read caches key on it for every request
    #: (C-level hashing and comparison; a copy made by ``until`` keeps it)
    key: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.account, self.institution, self.location, self.checked_in_ok))

    def until(self, deadline: float) -> Terminal:
        """This terminal, for a call that must be answered by ``deadline``."""
        copy = object.__new__(Terminal)   # a frozen dataclass's __init__ is slow; this is per request
        copy.__dict__.update(self.__dict__)
        copy.__dict__["deadline"] = deadline
        return copy


class ACSTimeout(Exception):
    """An ACS call not applied because its deadline passed before the backend started it:
    nothing was changed.  The session answers it with its "did not answer in time" reply."""


class PatronFlag(enum.IntEnum):
    """Positions of the 14-character patron status (SIP2 24/64, patron status)."""

    CHARGE_DENIED = 0
    RENEWAL_DENIED = 1
    RECALL_DENIED = 2
    HOLD_DENIED = 3
    CARD_LOST = 4
    TOO_MANY_CHARGED = 5
    TOO_MANY_OVERDUE = 6
    TOO_MANY_RENEWALS = 7
    TOO_MANY_CLAIMS_RETURNED = 8
    TOO_MANY_LOST = 9
    EXCESSIVE_FINES = 10
    EXCESSIVE_FEES = 11
    RECALL_OVERDUE = 12
    TOO_MANY_BILLED = 13


#: What an unknown patron is answered with: all privileges denied.
UNKNOWN_PATRON_FLAGS = frozenset(
    {PatronFlag.CHARGE_DENIED, PatronFlag.RENEWAL_DENIED, PatronFlag.RECALL_DENIED, PatronFlag.HOLD_DENIED}
)


class ItemList(enum.Enum):
    """Which item list a patron information request asks for (SIP2 63, summary)."""

    HOLD = 0
    OVERDUE = 1
    CHARGED = 2
    FINE = 3
    RECALL = 4
    UNAVAILABLE_HOLD = 5


class CirculationStatus(enum.IntEnum):
    """Item circulation status codes (SIP2 18, circulation status)."""

    OTHER = 1
    ON_ORDER = 2
    AVAILABLE = 3
    CHARGED = 4
    CHARGED_NOT_RECALLABLE = 5
    IN_PROCESS = 6
    RECALLED = 7
    ON_HOLD_SHELF = 8
    WAITING_RESHELVING = 9
    IN_TRANSIT = 10
    CLAIMED_RETURNED = 11
    LOST = 12
    MISSING = 13


class SecurityMarker(enum.IntEnum):
    OTHER = 0
    NONE = 1
    TATTLE_TAPE = 2
    WHISPER_TAPE = 3


class FeeType(enum.IntEnum):
    OTHER = 1
    ADMINISTRATIVE = 2
    DAMAGE = 3
    OVERDUE = 4
    PROCESSING = 5
    RENTAL = 6
    REPLACEMENT = 7
    COMPUTER_ACCESS = 8
    HOLD = 9


class HoldMode(str, enum.Enum):
    ADD = "+"
    DELETE = "-"
    CHANGE = "*"


class AlertType(enum.IntEnum):
    UNKNOWN = 0
    LOCAL_HOLD = 1
    REMOTE_HOLD = 2
    ILL_TRANSFER = 3
    TRANSFER = 4
    OTHER = 99


@dataclass(frozen=True)
class Messages:
    """Text for the terminal: screen messages (AF) and print lines (AG)."""

    screen: tuple[str, ...] = ()
    print_lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class ACSStatus:
    """Answer to SC status (99 → 98)."""

    online: bool = True
    checkin_ok: bool = True
    checkout_ok: bool = True
    renewal_ok: bool = True
    status_update_ok: bool = True
    offline_ok: bool = False
    timeout_period: int = 999   # tenths of a second; 999 = unknown
    retries_allowed: int = 999  # 999 = unknown
    institution: str = ""
    library_name: str = ""
    terminal_location: str = ""
    #: message codes this backend serves, e.g. {"23", "11", ...}
    supported: frozenset[str] = frozenset()
    messages: Messages = Messages()
    #: OCLC Wise SIP2+ branch licences (98 GG), e.g. ("LIC_BETAAL", "LIC_VERLENGMOGELIJKHEDEN")
    licences: tuple[str, ...] = ()
    #: fields the model does not name (vendor tags from a library system), carried into the reply
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PatronStatus:
    """Answer to patron status (23 → 24), block patron (01 → 24), enable (25 → 26)."""

    patron_id: str
    name: str = ""
    valid: bool = False             # BL
    pin_valid: bool | None = None   # CQ; None when no PIN was given
    flags: frozenset[PatronFlag] = frozenset()
    language: str = "000"
    currency: str | None = None
    fee_amount: Decimal | None = None
    fee_limit: Decimal | None = None
    home_address: str | None = None
    email: str | None = None
    phone: str | None = None
    messages: Messages = Messages()
    #: fields the model does not name (vendor tags from a library system), carried into the reply
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PatronInformation(PatronStatus):
    """Answer to patron information (63 → 64): status plus counts and one item list."""

    hold_count: int = 0
    overdue_count: int = 0
    charged_count: int = 0
    fine_count: int = 0
    recall_count: int = 0
    unavailable_hold_count: int = 0
    hold_limit: int | None = None
    overdue_limit: int | None = None
    charged_limit: int | None = None
    #: the list that was asked for (already cut to start..end), or None
    item_list: ItemList | None = None
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class CirculationResult:
    """Answer to checkout (11 → 12) and renew (29 → 30)."""

    ok: bool
    patron_id: str
    item_id: str
    title: str = ""
    renewal_ok: bool = False
    magnetic_media: bool | None = None
    desensitize: bool | None = None
    due_date: datetime | None = None
    fee_type: FeeType | None = None
    fee_amount: Decimal | None = None
    currency: str | None = None
    security_inhibit: bool | None = None
    media_type: str | None = None    # 3-digit media type code
    item_properties: str | None = None
    transaction_id: str | None = None
    patron_valid: bool | None = None  # BL, sent on failure
    pin_valid: bool | None = None     # CQ, sent when a PIN was given
    messages: Messages = Messages()
    #: fields the model does not name (vendor tags from a library system), carried into the reply
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CheckinResult:
    """Answer to checkin (09 → 10)."""

    ok: bool
    item_id: str
    permanent_location: str = ""
    title: str | None = None
    resensitize: bool = False
    magnetic_media: bool | None = None
    alert: bool = False
    alert_type: AlertType | None = None
    sort_bin: str | None = None
    patron_id: str | None = None        # who had the item
    media_type: str | None = None
    item_properties: str | None = None
    collection_code: str | None = None
    call_number: str | None = None
    destination_location: str | None = None
    hold_patron_id: str | None = None
    hold_patron_name: str | None = None
    messages: Messages = Messages()
    #: fields the model does not name (vendor tags from a library system), carried into the reply
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ItemInformation:
    """Answer to item information (17 → 18)."""

    item_id: str
    circulation_status: CirculationStatus = CirculationStatus.OTHER
    security_marker: SecurityMarker = SecurityMarker.NONE
    fee_type: FeeType = FeeType.OTHER
    title: str = ""
    hold_queue_length: int | None = None
    due_date: datetime | None = None
    recall_date: datetime | None = None
    hold_pickup_date: datetime | None = None
    owner: str | None = None
    currency: str | None = None
    fee_amount: Decimal | None = None
    media_type: str | None = None
    permanent_location: str | None = None
    current_location: str | None = None
    item_properties: str | None = None
    destination_location: str | None = None
    call_number: str | None = None
    messages: Messages = Messages()
    #: fields the model does not name (vendor tags from a library system), carried into the reply
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ItemStatusUpdateResult:
    """Answer to item status update (19 → 20)."""

    ok: bool
    item_id: str
    title: str | None = None
    item_properties: str | None = None
    messages: Messages = Messages()
    #: fields the model does not name (vendor tags from a library system), carried into the reply
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class HoldResult:
    """Answer to hold (15 → 16)."""

    ok: bool
    patron_id: str
    available: bool = False
    expiration_date: datetime | None = None
    queue_position: int | None = None
    pickup_location: str | None = None
    item_id: str | None = None
    title: str | None = None
    messages: Messages = Messages()
    #: fields the model does not name (vendor tags from a library system), carried into the reply
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RenewAllResult:
    """Answer to renew all (65 → 66)."""

    ok: bool
    renewed: tuple[str, ...] = ()
    unrenewed: tuple[str, ...] = ()
    messages: Messages = Messages()
    #: fields the model does not name (vendor tags from a library system), carried into the reply
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class EndSessionResult:
    """Answer to end patron session (35 → 36)."""

    ended: bool
    patron_id: str
    messages: Messages = Messages()
    #: fields the model does not name (vendor tags from a library system), carried into the reply
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class FeePaidResult:
    """Answer to fee paid (37 → 38)."""

    accepted: bool
    patron_id: str
    transaction_id: str | None = None
    messages: Messages = Messages()
    #: OCLC Wise SIP2+ (38 CC): what the patron may spend now (credit plus the most they may
    #: owe, less their unpaid fines and charges); None when not known or not asked for
    fee_limit: Decimal | None = None
    #: fields the model does not name (vendor tags from a library system), carried into the reply
    extra: tuple[tuple[str, str], ...] = ()
