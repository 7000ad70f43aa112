"""Turn ACS results (plain values) into SIP2 replies: (code, fixed fields, variable fields).

Strict output lives here and in the codec: exact widths, Y/N/U conventions, blank
dates instead of invented ones, texts cleaned of separators and split at 255.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from sipgateway.acs import model as m
from sipgateway.sip2 import Message, sip_date

Reply = tuple[str, dict[str, str], dict[str, object]]

MAX_VALUE = 255
PROTOCOL_VERSION = "2.00"

#: BX positions (REFERENCE.md 4.3): request code per position
BX_ORDER = ("23", "11", "09", "01", "99", "97", "93", "63", "35", "37", "17", "19", "25", "15", "29", "65")
#: codes the session answers itself, whatever the backend
SESSION_CODES = frozenset({"99", "97", "93"})


@functools.lru_cache(maxsize=64)
def supported_messages(supported: frozenset[str]) -> str:
    """BX: Y/N for each of the 16 positions."""
    return "".join("Y" if code in supported else "N" for code in BX_ORDER)


_CLEAN = str.maketrans({"|": " ", "\r": " ", "\n": " ", "\0": " "})


def yn(value: bool | None, unknown: str = "N") -> str:
    if value is None:
        return unknown
    return "Y" if value else "N"


def bit(value: bool) -> str:
    return "1" if value else "0"


def clean(text: object, encoding: str = "utf-8") -> str:
    """One field value: no separators, at most 255 characters, representable in ``encoding``."""
    s = text if type(text) is str else str(text)
    if len(s) <= MAX_VALUE and (encoding == "utf-8" or s.isascii()) and "|" not in s and s.isprintable():
        return s  # the usual case, decided by three C-level scans
    s = s.translate(_CLEAN)
    if len(s) > MAX_VALUE:
        s = s[:MAX_VALUE]
    if encoding not in ("utf-8", "utf8"):
        try:
            s.encode(encoding)
        except UnicodeEncodeError:
            # e.g. a title with accents on an ASCII account: drop the accents, then '?'
            folded = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
            s = folded.encode(encoding, errors="replace").decode(encoding)
    return s


def texts(lines: Iterable[str], encoding: str) -> list[str]:
    """Screen messages / print lines: cleaned, long ones split into 255-character pieces."""
    out: list[str] = []
    for line in lines:
        s = str(line).translate(_CLEAN)
        for start in range(0, max(len(s), 1), MAX_VALUE):
            out.append(clean(s[start:start + MAX_VALUE], encoding))
    return out


def opt(value: object, encoding: str) -> str | None:
    return None if value is None else clean(value, encoding)


def date_or_blank(value: datetime | None) -> str:
    return "" if value is None else sip_date(value)


def opt_date(value: datetime | None) -> str | None:
    return None if value is None else sip_date(value)


def money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


_COUNTS = tuple(f"{i:04d}" for i in range(10000))


def count(n: int) -> str:
    """A 4-digit count, clamped to 0000..9999."""
    return _COUNTS[max(0, min(int(n), 9999))]


def patron_status_field(flags: Iterable[m.PatronFlag]) -> str:
    chars = [" "] * 14
    for flag in flags:
        chars[int(flag)] = "Y"
    return "".join(chars)


def language(value: str | None, requested: str = "000") -> str:
    """The patron's language when the ACS knows it, else the one the SC asked in."""
    if value and value != "000" and len(value) == 3 and value.isdigit():
        return value
    return requested if len(requested) == 3 and requested.isdigit() else "000"


def _messages(fields: dict[str, object], msgs: m.Messages, encoding: str) -> None:
    if msgs.screen:
        fields["AF"] = texts(msgs.screen, encoding)
    if msgs.print_lines:
        fields["AG"] = texts(msgs.print_lines, encoding)


# --- one builder per reply -------------------------------------------------------------

def login(ok: bool) -> Reply:
    return "94", {"ok": bit(ok)}, {}


def acs_status(status: m.ACSStatus, now: datetime, encoding: str, *, institution: str = "",
               library_name: str = "", terminal_location: str = "") -> Reply:
    """98; the keyword arguments fill in what the backend left empty (from the account)."""
    supported = status.supported | SESSION_CODES
    fixed = {
        "online_status": yn(status.online),
        "checkin_ok": yn(status.checkin_ok),
        "checkout_ok": yn(status.checkout_ok),
        "acs_renewal_policy": yn(status.renewal_ok),
        "status_update_ok": yn(status.status_update_ok),
        "offline_ok": yn(status.offline_ok),
        "timeout_period": f"{max(0, min(status.timeout_period, 999)):03d}",
        "retries_allowed": f"{max(0, min(status.retries_allowed, 999)):03d}",
        "date_time_sync": sip_date(now),
        "protocol_version": PROTOCOL_VERSION,
    }
    fields: dict[str, object] = {
        "AO": clean(status.institution or institution, encoding),
        "AM": opt(status.library_name or library_name or None, encoding),
        "BX": supported_messages(supported),
        "AN": opt(status.terminal_location or terminal_location or None, encoding),
    }
    _messages(fields, status.messages, encoding)
    return "98", fixed, fields


def _patron_fields(p: m.PatronStatus, institution: str, encoding: str) -> dict[str, object]:
    return {
        "AO": clean(institution, encoding),
        "AA": clean(p.patron_id, encoding),
        "AE": clean(p.name, encoding),
        "BL": yn(p.valid),
        "CQ": None if p.pin_valid is None else yn(p.pin_valid),
        "BH": opt(p.currency, encoding) if p.fee_amount is not None else None,
        "BV": money(p.fee_amount),
    }


def patron_status(code: str, p: m.PatronStatus, institution: str, now: datetime, encoding: str,
                  requested_language: str = "000") -> Reply:
    """24 (answer to 23 and 01) or 26 (answer to 25): the same layout."""
    fixed = {
        "patron_status": patron_status_field(p.flags),
        "language": language(p.language, requested_language),
        "transaction_date": sip_date(now),
    }
    fields = _patron_fields(p, institution, encoding)
    if code == "26":
        del fields["BH"], fields["BV"]
    _messages(fields, p.messages, encoding)
    return code, fixed, fields


_LIST_TAG = {
    m.ItemList.HOLD: "AS",
    m.ItemList.OVERDUE: "AT",
    m.ItemList.CHARGED: "AU",
    m.ItemList.FINE: "AV",
    m.ItemList.RECALL: "BU",
    m.ItemList.UNAVAILABLE_HOLD: "CD",
}


def patron_information(p: m.PatronInformation, institution: str, now: datetime, encoding: str,
                       requested_language: str = "000") -> Reply:
    fixed = {
        "patron_status": patron_status_field(p.flags),
        "language": language(p.language, requested_language),
        "transaction_date": sip_date(now),
        "hold_items_count": count(p.hold_count),
        "overdue_items_count": count(p.overdue_count),
        "charged_items_count": count(p.charged_count),
        "fine_items_count": count(p.fine_count),
        "recall_items_count": count(p.recall_count),
        "unavailable_holds_count": count(p.unavailable_hold_count),
    }
    fields = _patron_fields(p, institution, encoding)
    fields["BZ"] = None if p.hold_limit is None else count(p.hold_limit)
    fields["CA"] = None if p.overdue_limit is None else count(p.overdue_limit)
    fields["CB"] = None if p.charged_limit is None else count(p.charged_limit)
    fields["CC"] = money(p.fee_limit)
    if p.item_list is not None and p.items:
        fields[_LIST_TAG[p.item_list]] = [clean(i, encoding) for i in p.items]
    fields["BD"] = opt(p.home_address, encoding)
    fields["BE"] = opt(p.email, encoding)
    fields["BF"] = opt(p.phone, encoding)
    _messages(fields, p.messages, encoding)
    return "64", fixed, fields


def circulation(code: str, r: m.CirculationResult, institution: str, now: datetime, encoding: str) -> Reply:
    """12 (checkout) or 30 (renew): the same layout."""
    fixed = {
        "ok": bit(r.ok),
        "renewal_ok": yn(r.renewal_ok),
        "magnetic_media": yn(r.magnetic_media, "U"),
        "desensitize": yn(r.desensitize, "U"),
        "transaction_date": sip_date(now),
    }
    fee = r.fee_amount is not None
    fields: dict[str, object] = {
        "AO": clean(institution, encoding),
        "AA": clean(r.patron_id, encoding),
        "AB": clean(r.item_id, encoding),
        "AJ": clean(r.title, encoding),
        "AH": date_or_blank(r.due_date if r.ok else None),
        "BT": f"{int(r.fee_type):02d}" if (fee and r.fee_type is not None) else None,
        "CI": None if r.security_inhibit is None else yn(r.security_inhibit),
        "BH": opt(r.currency, encoding) if fee else None,
        "BV": money(r.fee_amount),
        "CK": r.media_type,
        "CH": opt(r.item_properties, encoding),
        "BK": opt(r.transaction_id, encoding),
    }
    if not r.ok:
        # SIP2 lists no BL/CQ for 12 and 30; Evergreen adds them to a refusal (CQ when a PIN
        # was given). Clients that rebuild the checksum from the fields they know (jsip2)
        # reject them on a success, so a success never carries them.
        fields["BL"] = None if r.patron_valid is None else yn(r.patron_valid)
        fields["CQ"] = None if r.pin_valid is None else yn(r.pin_valid)
    _messages(fields, r.messages, encoding)
    return code, fixed, fields


def checkin(r: m.CheckinResult, institution: str, now: datetime, encoding: str) -> Reply:
    fixed = {
        "ok": bit(r.ok),
        "resensitize": yn(r.resensitize),
        "magnetic_media": yn(r.magnetic_media, "U"),
        "alert": yn(r.alert),
        "transaction_date": sip_date(now),
    }
    fields: dict[str, object] = {
        "AO": clean(institution, encoding),
        "AB": clean(r.item_id, encoding),
        "AQ": clean(r.permanent_location, encoding),
        "AJ": opt(r.title, encoding),
        "CL": opt(r.sort_bin, encoding),
        "AA": opt(r.patron_id, encoding),
        "CK": r.media_type,
        "CH": opt(r.item_properties, encoding),
        "CR": opt(r.collection_code, encoding),
        "CS": opt(r.call_number, encoding),
        "CT": opt(r.destination_location, encoding),
        "CV": f"{int(r.alert_type):02d}" if (r.alert and r.alert_type is not None) else None,
        "CY": opt(r.hold_patron_id, encoding),
        "DA": opt(r.hold_patron_name, encoding),
    }
    _messages(fields, r.messages, encoding)
    return "10", fixed, fields


def item_information(r: m.ItemInformation, now: datetime, encoding: str) -> Reply:
    fixed = {
        "circulation_status": f"{int(r.circulation_status):02d}",
        "security_marker": f"{int(r.security_marker):02d}",
        "fee_type": f"{int(r.fee_type):02d}",
        "transaction_date": sip_date(now),
    }
    fields: dict[str, object] = {
        "CF": None if r.hold_queue_length is None else str(r.hold_queue_length),
        "AH": opt_date(r.due_date),
        "CJ": opt_date(r.recall_date),
        "CM": opt_date(r.hold_pickup_date),
        "AB": clean(r.item_id, encoding),
        "AJ": clean(r.title, encoding),
        "BG": opt(r.owner, encoding),
        "BH": opt(r.currency, encoding) if r.fee_amount is not None else None,
        "BV": money(r.fee_amount),
        "CK": r.media_type,
        "AQ": opt(r.permanent_location, encoding),
        "AP": opt(r.current_location, encoding),
        "CH": opt(r.item_properties, encoding),
        "CT": opt(r.destination_location, encoding),
        "CS": opt(r.call_number, encoding),
    }
    _messages(fields, r.messages, encoding)
    return "18", fixed, fields


def item_status_update(r: m.ItemStatusUpdateResult, now: datetime, encoding: str) -> Reply:
    fixed = {"item_properties_ok": bit(r.ok), "transaction_date": sip_date(now)}
    fields: dict[str, object] = {
        "AB": clean(r.item_id, encoding),
        "AJ": opt(r.title, encoding),
        "CH": opt(r.item_properties, encoding),
    }
    _messages(fields, r.messages, encoding)
    return "20", fixed, fields


def hold(r: m.HoldResult, institution: str, now: datetime, encoding: str) -> Reply:
    fixed = {"ok": bit(r.ok), "available": yn(r.available), "transaction_date": sip_date(now)}
    fields: dict[str, object] = {
        "BW": opt_date(r.expiration_date),
        "BR": None if r.queue_position is None else str(r.queue_position),
        "BS": opt(r.pickup_location, encoding),
        "AO": clean(institution, encoding),
        "AA": clean(r.patron_id, encoding),
        "AB": opt(r.item_id, encoding),
        "AJ": opt(r.title, encoding),
    }
    _messages(fields, r.messages, encoding)
    return "16", fixed, fields


def renew_all(r: m.RenewAllResult, institution: str, now: datetime, encoding: str) -> Reply:
    fixed = {
        "ok": bit(r.ok),
        "renewed_count": count(len(r.renewed)),
        "unrenewed_count": count(len(r.unrenewed)),
        "transaction_date": sip_date(now),
    }
    fields: dict[str, object] = {
        "AO": clean(institution, encoding),
        "BM": [clean(i, encoding) for i in r.renewed] or None,
        "BN": [clean(i, encoding) for i in r.unrenewed] or None,
    }
    _messages(fields, r.messages, encoding)
    return "66", fixed, fields


def end_session(r: m.EndSessionResult, institution: str, now: datetime, encoding: str) -> Reply:
    fixed = {"end_session": yn(r.ended), "transaction_date": sip_date(now)}
    fields: dict[str, object] = {"AO": clean(institution, encoding), "AA": clean(r.patron_id, encoding)}
    _messages(fields, r.messages, encoding)
    return "36", fixed, fields


def fee_paid(r: m.FeePaidResult, institution: str, now: datetime, encoding: str) -> Reply:
    fixed = {"payment_accepted": yn(r.accepted), "transaction_date": sip_date(now)}
    fields: dict[str, object] = {
        "AO": clean(institution, encoding),
        "AA": clean(r.patron_id, encoding),
        "BK": opt(r.transaction_id, encoding),
    }
    _messages(fields, r.messages, encoding)
    return "38", fixed, fields


# --- failure replies: the right reply code, "not done", and a screen message ------------

def failure(request: Message, institution: str, now: datetime, screen: str, encoding: str) -> Reply:
    """The refusal for ``request``: used when not logged in, when the ACS fails or times
    out, and when a request is well-formed but cannot be served."""
    msgs = m.Messages(screen=(screen,))
    code = request.code
    request_fixed = request.fixed
    inst = request.get("AO") or institution
    patron = request.get("AA") or ""
    item = request.get("AB") or ""
    if code == "93":
        return login(False)
    if code == "99":
        status = m.ACSStatus(online=False, checkin_ok=False, checkout_ok=False, renewal_ok=False,
                             status_update_ok=False, timeout_period=0, institution=institution,
                             messages=msgs)
        return acs_status(status, now, encoding)
    if code in ("23", "01", "25"):
        p = m.PatronStatus(patron_id=patron, flags=m.UNKNOWN_PATRON_FLAGS,
                           language=request_fixed.get("language", "000"), messages=msgs)
        return patron_status("26" if code == "25" else "24", p, inst, now, encoding)
    if code == "63":
        p = m.PatronInformation(patron_id=patron, flags=m.UNKNOWN_PATRON_FLAGS,
                                language=request_fixed.get("language", "000"), messages=msgs)
        return patron_information(p, inst, now, encoding)
    if code in ("11", "29"):
        r = m.CirculationResult(ok=False, patron_id=patron, item_id=item, desensitize=False, messages=msgs)
        return circulation("12" if code == "11" else "30", r, inst, now, encoding)
    if code == "09":
        return checkin(m.CheckinResult(ok=False, item_id=item, messages=msgs), inst, now, encoding)
    if code == "17":
        return item_information(m.ItemInformation(item_id=item, messages=msgs), now, encoding)
    if code == "19":
        return item_status_update(m.ItemStatusUpdateResult(ok=False, item_id=item, messages=msgs), now, encoding)
    if code == "15":
        return hold(m.HoldResult(ok=False, patron_id=patron, messages=msgs), inst, now, encoding)
    if code == "65":
        return renew_all(m.RenewAllResult(ok=False, messages=msgs), inst, now, encoding)
    if code == "35":
        return end_session(m.EndSessionResult(ended=False, patron_id=patron, messages=msgs), inst, now, encoding)
    if code == "37":
        return fee_paid(m.FeePaidResult(accepted=False, patron_id=patron, messages=msgs), inst, now, encoding)
    raise KeyError(code)
