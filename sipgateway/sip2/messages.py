"""The message table: every SIP2 message both ways, driving both parse and format.

Fixed fields are in wire order with their width and kind (``values.KINDS``); variable
tags are in output order (the SIP2 specification's message definitions and OCLC Wise's SIP2+
manual; WISE extensions placed where Wise puts
them, FQ between AF and AG as in Wise's own replies). Per-message plans used on the hot
path (slices, checks, tag sets) are computed once, here, at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from sipgateway.sip2.tags import REPEATABLE
from sipgateway.sip2.values import KINDS, TAG_RULES, Check


@dataclass(frozen=True)
class FixedField:
    name: str
    width: int
    kind: str


class MessageSpec:
    """One message: ``code``, ``name``, ``fixed`` fields, variable ``fields`` in output order,
    ``required`` tags, ``repeatable`` tags, ``one_of`` (groups of which one tag must be given),
    ``direction`` ("request" SC->ACS or "response") and ``reply`` (the answer's code)."""

    __slots__ = ("code", "name", "direction", "reply", "fixed", "fields", "required", "repeatable",
                 "one_of", "fixed_len", "parse_plan", "format_plan", "emit_plan", "fixed_names", "tagset")

    def __init__(self, code: str, name: str, direction: str, reply: str | None, fixed: tuple[FixedField, ...],
                 fields: tuple[str, ...], required: tuple[str, ...], repeatable: frozenset[str],
                 one_of: tuple[tuple[str, ...], ...] = ()) -> None:
        self.code, self.name, self.direction, self.reply = code, name, direction, reply
        self.fixed, self.fields, self.required, self.repeatable = fixed, fields, required, repeatable
        self.one_of = one_of
        plan_in: list[tuple[str, int, int, Check]] = []
        plan_out: list[tuple[str, int, int, Check]] = []
        pos = 2
        for f in fixed:
            check_in, check_out = KINDS[f.kind]
            plan_in.append((f.name, pos, pos + f.width, check_in))
            plan_out.append((f.name, f.width, pos, check_out))
            pos += f.width
        self.fixed_len = pos - 2
        self.parse_plan = tuple(plan_in)
        self.format_plan = tuple(plan_out)
        self.fixed_names = frozenset(f.name for f in fixed)
        self.tagset = frozenset(fields)
        self.emit_plan = tuple((tag, TAG_RULES.get(tag)) for tag in fields)

    def __repr__(self) -> str:
        return f"<MessageSpec {self.code} {self.name}>"


_DATE = "transaction_date:18:date"


def _spec(code: str, name: str, direction: str, reply: str | None, fixed: str, fields: str,
          required: str = "", lists: str = "", one_of: tuple[tuple[str, ...], ...] = ()) -> MessageSpec:
    """``fixed``: "name:width:kind ..."; ``fields``, ``required``, ``lists``: space-separated tags."""
    fixed_fields = []
    for item in fixed.split():
        fname, width, kind = item.split(":")
        fixed_fields.append(FixedField(fname, int(width), kind))
    tags = tuple(fields.split())
    assert len(set(tags)) == len(tags), code
    req = tuple(required.split())
    assert set(req) <= set(tags), code
    repeatable = (REPEATABLE | frozenset(lists.split()))
    return MessageSpec(code, name, direction, reply, tuple(fixed_fields), tags, req, repeatable, one_of)


_CIRC_REPLY = ("ok:1:bit renewal_ok:1:yn magnetic_media:1:ynu desensitize:1:ynu " + _DATE,
               "AO AA AB AJ AH BT CI BH BV CK CH BK ST BL CQ FV AF FQ AG", "AO AA AB AJ AH")
_PATRON_STATUS = "patron_status:14:patron_status language:3:language " + _DATE

_TABLE = (
    # -- 3M SIP2 (the specification's message definitions)
    _spec("93", "Login", "request", "94", "uid_algorithm:1:char pwd_algorithm:1:char",
          "CN CO CP", "CN CO"),
    _spec("94", "Login Response", "response", None, "ok:1:bit", ""),
    _spec("99", "SC Status", "request", "98",
          "status_code:1:status_code max_print_width:3:padded_digits protocol_version:4:version", ""),
    _spec("98", "ACS Status", "response", None,
          "online_status:1:yn checkin_ok:1:yn checkout_ok:1:yn acs_renewal_policy:1:yn "
          "status_update_ok:1:yn offline_ok:1:yn timeout_period:3:digits retries_allowed:3:digits "
          "date_time_sync:18:date protocol_version:4:version",
          "AO AM BX AN GG AF FQ AG", "AO BX"),
    _spec("97", "Request ACS Resend", "request", None, "", ""),
    _spec("96", "Request SC Resend", "response", None, "", ""),
    _spec("23", "Patron Status Request", "request", "24", "language:3:language " + _DATE,
          "AO AA AC AD", "AO AA"),
    _spec("24", "Patron Status Response", "response", None, _PATRON_STATUS,
          "AO AA AE BL CQ BH BV BD BE BF AF FQ AG", "AO AA AE"),
    _spec("63", "Patron Information", "request", "64", "language:3:language " + _DATE + " summary:10:summary",
          "AO AA AC AD BP BQ FW", "AO AA"),
    _spec("64", "Patron Information Response", "response", None,
          _PATRON_STATUS + " hold_items_count:4:count overdue_items_count:4:count charged_items_count:4:count "
          "fine_items_count:4:count recall_items_count:4:count unavailable_holds_count:4:count",
          "AO AA AE BZ CA CB BL CQ BH BV CC FN FM FO FU LF AK AS AT AU AV BU CD BD BE BF AF FQ AG",
          "AO AA AE"),
    _spec("11", "Checkout", "request", "12",
          "sc_renewal_policy:1:yn no_block:1:yn " + _DATE + " nb_due_date:18:optional_date",
          "AO AA AB AC CH AD BO BI FE FV", "AO AA AB"),
    _spec("12", "Checkout Response", "response", None, *_CIRC_REPLY),
    _spec("09", "Checkin", "request", "10", "no_block:1:yn " + _DATE + " return_date:18:optional_date",
          "AP AO AB AC CH BI DR", "AO AB"),
    _spec("10", "Checkin Response", "response", None,
          "ok:1:bit resensitize:1:yn magnetic_media:1:ynu alert:1:yn " + _DATE,
          "AO AB AQ AJ CL AA CK CH CR CS CT CV CY DA FR AF FQ AG", "AO AB AQ"),
    _spec("01", "Block Patron", "request", "24", "card_retained:1:yn " + _DATE, "AO AL AA AC", "AO AL AA"),
    _spec("17", "Item Information", "request", "18", _DATE, "AO AB AC", "AO AB"),
    _spec("18", "Item Information Response", "response", None,
          "circulation_status:2:circulation_status security_marker:2:security_marker fee_type:2:fee_type " + _DATE,
          "CF AH CJ CM AB AJ BG BH BV CK AQ AP CH CT CS AA CL AF FQ AG", "AB AJ"),
    _spec("19", "Item Status Update", "request", "20", _DATE, "AO AB AC CH", "AO AB CH"),
    _spec("20", "Item Status Update Response", "response", None, "item_properties_ok:1:bit " + _DATE,
          "AB AJ CH AF FQ AG", "AB"),
    _spec("25", "Patron Enable", "request", "26", _DATE, "AO AA AC AD", "AO AA"),
    _spec("26", "Patron Enable Response", "response", None, _PATRON_STATUS,
          "AO AA AE BL CQ AF FQ AG", "AO AA AE"),
    _spec("15", "Hold", "request", "16", "hold_mode:1:hold_mode " + _DATE,
          "BW BS BY AO AA AD AB AJ AC BO", "AO AA"),
    _spec("16", "Hold Response", "response", None, "ok:1:bit available:1:yn " + _DATE,
          "BW BR BS AO AA AB AJ AF FQ AG", "AO AA"),
    _spec("29", "Renew", "request", "30",
          "third_party_allowed:1:yn no_block:1:yn " + _DATE + " nb_due_date:18:optional_date",
          "AO AA AD AB AJ AC CH BO FE", "AO AA", one_of=(("AB", "AJ"),)),
    _spec("30", "Renew Response", "response", None, *_CIRC_REPLY),
    _spec("65", "Renew All", "request", "66", _DATE, "AO AA AD AC BO", "AO AA"),
    _spec("66", "Renew All Response", "response", None,
          "ok:1:bit renewed_count:4:count unrenewed_count:4:count " + _DATE, "AO BM BN AF FQ AG", "AO"),
    _spec("35", "End Patron Session", "request", "36", _DATE, "AO AA AC AD", "AO AA"),
    _spec("36", "End Session Response", "response", None, "end_session:1:yn " + _DATE, "AO AA AF FQ AG", "AO AA"),
    _spec("37", "Fee Paid", "request", "38",
          _DATE + " fee_type:2:any_fee_type payment_type:2:payment_type currency_type:3:currency",
          "BV AO AA AC AD CG BK FX FA FB FC", "BV AO AA"),
    _spec("38", "Fee Paid Response", "response", None, "payment_accepted:1:yn " + _DATE,
          "AO AA BK AF FQ AG CC", "AO AA"),
    # -- OCLC Wise SIP2+ (Wise's SIP2 manual, SIP2+ extensions)
    _spec("39", "Usage Debit (WISE)", "request", "40", _DATE, "AA BV FH FI", "BV FH FI"),
    _spec("40", "Usage Debit Response (WISE)", "response", None, "payment_accepted:1:yn " + _DATE,
          "AA AF FQ AG CC"),
    _spec("41", "Payments Overview (WISE)", "request", "42", _DATE, "AA FJ FK FI FA FB FC FD FG", "AA FJ FK"),
    _spec("42", "Payments Overview Response (WISE)", "response", None, "", "YZ FG AF FQ AG", lists="FG"),
    _spec("Y1", "Punch Card Options (WISE)", "request", "Y2", _DATE, "AA", "AA"),
    _spec("Y2", "Punch Card Options Response (WISE)", "response", None, "status:1:bit", "FG AF FQ AG", lists="FG"),
    _spec("Y3", "Punch Card Purchase (WISE)", "request", "Y4", _DATE, "AA FG FI", "AA"),
    _spec("Y4", "Punch Card Purchase Response (WISE)", "response", None, "status:1:bit", "AF FQ AG"),
    _spec("X1", "Save Username (WISE)", "request", "X2", "", "FO FP AA AD", "AA"),
    _spec("X2", "Save Username Response (WISE)", "response", None, "status:1:bit", "AA FO AF FQ AG"),
    _spec("70", "Renewal Options (WISE)", "request", "71", _DATE, "AA AB", "AA"),
    _spec("71", "Renewal Options Response (WISE)", "response", None, "", "GC FG AF FQ AG"),
)

MESSAGES: Mapping[str, MessageSpec] = MappingProxyType({s.code: s for s in _TABLE})
