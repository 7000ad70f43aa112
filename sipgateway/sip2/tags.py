"""Names of variable-field tags (the SIP2 specification's and Wise's SIP2+ ones), for people
reading messages."""

from __future__ import annotations

TAG_NAMES: dict[str, str] = {
    "AA": "patron identifier", "AB": "item identifier", "AC": "terminal password",
    "AD": "patron password", "AE": "personal name", "AF": "screen message", "AG": "print line",
    "AH": "due date", "AJ": "title identifier", "AK": "loaned item (WISE)",
    "AL": "blocked card message", "AM": "library name", "AN": "terminal location",
    "AO": "institution id", "AP": "current location", "AQ": "permanent location",
    "AS": "hold items", "AT": "overdue items", "AU": "charged items", "AV": "fine items",
    "AY": "sequence number", "AZ": "checksum",
    "BD": "home address", "BE": "e-mail address", "BF": "home phone number", "BG": "owner",
    "BH": "currency type", "BI": "cancel", "BK": "transaction id", "BL": "valid patron",
    "BM": "renewed items", "BN": "unrenewed items", "BO": "fee acknowledged", "BP": "start item",
    "BQ": "end item", "BR": "queue position", "BS": "pickup location", "BT": "fee type",
    "BU": "recall items", "BV": "fee amount", "BW": "expiration date", "BX": "supported messages",
    "BY": "hold type", "BZ": "hold items limit",
    "CA": "overdue items limit", "CB": "charged items limit", "CC": "fee limit",
    "CD": "unavailable hold items", "CF": "hold queue length", "CG": "fee identifier",
    "CH": "item properties", "CI": "security inhibit", "CJ": "recall date", "CK": "media type",
    "CL": "sort bin", "CM": "hold pickup date", "CN": "login user id", "CO": "login password",
    "CP": "location code", "CQ": "valid patron password", "CR": "collection code",
    "CS": "call number", "CT": "destination location", "CV": "alert type", "CY": "hold patron id",
    "DA": "hold patron name",
    # OCLC Wise SIP2+; F-tags mean other things to other vendors
    "DR": "process awaiting hold (WISE)", "FA": "membership fee / contributions (WISE)",
    "FB": "registrations (WISE)", "FC": "deposit (WISE)", "FD": "open registrations only (WISE)",
    "FE": "double loan period (WISE)", "FG": "punch cards (WISE)", "FH": "fiscal transaction type (WISE)",
    "FI": "payment method (WISE)", "FJ": "date from (WISE)", "FK": "date to (WISE)",
    "FM": "family member (WISE)", "FN": "full name (WISE)", "FO": "username (WISE)",
    "FP": "username, manual's spelling (WISE)", "FQ": "message number (WISE)",
    "FR": "already available (WISE)", "FU": "statistical category (WISE)",
    "FV": "confirmation (WISE)", "FW": "payment terminal mode (WISE)", "FX": "tracking number (WISE)",
    "GC": "renewal option (WISE)", "GG": "licences (WISE)", "LF": "birth date (WISE)",
    "ST": "punches charged (WISE)", "YZ": "payment line (WISE)",
    # common vendor extensions
    "PA": "patron expiration date / PAC access type", "PB": "patron birth date", "PC": "patron class",
    "PI": "internet profile", "XI": "internal patron id",
}

#: never shown in logs or error messages
SECRET_TAGS = frozenset({"CO", "AD", "AC"})

#: repeatable in every message; FG only where a message says so (a list in 42
#: and Y2, a single count in 71)
REPEATABLE = frozenset({"AF", "AG", "AS", "AT", "AU", "AV", "BU", "CD", "BM", "BN",
                        "FQ", "YZ", "GC", "FM", "AK"})


def tag_name(tag: str) -> str:
    return TAG_NAMES.get(tag, "unknown field")
