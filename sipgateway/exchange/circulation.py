"""Loans: 11 → 12 (checkout), 29 → 30 (renew), 65 → 66 (renew all), 09 → 10 (checkin)."""

from __future__ import annotations

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.exchange import fields as f
from sipgateway.exchange.base import BadRequest, Body, Exchange, ReplyContext, RequestContext
from sipgateway.exchange.patrons import pin
from sipgateway.sip2 import Message, sip_date

_LOAN_TAGS = ("AO", "AA", "AB", "AC", "AD", "AJ", "CH", "BO", "BI")
_CIRC_REPLY_TAGS = ("AO", "AA", "AB", "AJ", "AH", "BT", "CI", "BH", "BV", "CK", "CH", "BK", "BL", "CQ", "AF",
                    "AG")


def _loan_request(msg: Message) -> rq.CheckoutRequest:
    fx = msg.fixed
    policy = fx.get("sc_renewal_policy", fx.get("third_party_allowed", "N")) == "Y"
    return rq.CheckoutRequest(
        patron_id=f.text(msg, "AA"),
        item_id=f.text(msg, "AB"),
        patron_pin=pin(msg),
        no_block=fx.get("no_block") == "Y",
        nb_due_date=f.date(fx.get("nb_due_date")),
        renewal_policy=policy and msg.code == "11",
        third_party=policy and msg.code == "29",
        fee_acknowledged=msg.get("BO") == "Y",
        cancel=msg.get("BI") == "Y",
        item_properties=msg.get("CH"),
        title_id=msg.get("AJ") or None,
        transaction_date=f.date(fx.get("transaction_date")),
        extra=f.extra_fields(msg, _LOAN_TAGS),
    )


def _parse_renew(msg: Message) -> rq.CheckoutRequest:
    if not msg.get("AB") and not msg.get("AJ"):
        raise BadRequest("Renew needs an item identifier (AB) or a title (AJ)")
    return _loan_request(msg)


def _circulation_body(r: m.CirculationResult, ctx: ReplyContext) -> Body:
    """12 and 30: the same layout."""
    enc = ctx.encoding
    fixed = {
        "ok": f.bit(r.ok),
        "renewal_ok": f.yn(r.renewal_ok),
        "magnetic_media": f.yn(r.magnetic_media, "U"),
        "desensitize": f.yn(r.desensitize, "U"),
        "transaction_date": sip_date(ctx.now),
    }
    fee = r.fee_amount is not None
    fields: dict[str, object] = {
        "AO": f.clean(ctx.institution, enc),
        "AA": f.clean(r.patron_id, enc),
        "AB": f.clean(r.item_id, enc),
        "AJ": f.clean(r.title, enc),
        "AH": f.date_or_blank(r.due_date if r.ok else None),
        "BT": f.two_digits(r.fee_type) if fee else None,
        "CI": None if r.security_inhibit is None else f.yn(r.security_inhibit),
        "BH": f.opt(r.currency, enc) if fee else None,
        "BV": f.money(r.fee_amount),
        "CK": r.media_type,
        "CH": f.opt(r.item_properties, enc),
        "BK": f.opt(r.transaction_id, enc),
    }
    if not r.ok:
        # SIP2 lists no BL/CQ for 12 and 30; Evergreen adds them to a refusal (CQ when a PIN
        # was given). Clients that rebuild the checksum from the fields they know (jsip2)
        # reject them on a success, so a success never carries them.
        fields["BL"] = None if r.patron_valid is None else f.yn(r.patron_valid)
        fields["CQ"] = None if r.pin_valid is None else f.yn(r.pin_valid)
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return fixed, fields


def _refused_loan(msg: Message, screen: str) -> m.CirculationResult:
    return m.CirculationResult(ok=False, patron_id=f.text(msg, "AA"), item_id=f.text(msg, "AB"), desensitize=False,
                               messages=m.Messages(screen=(screen,)))


def _loan_fields(req: rq.CheckoutRequest, ctx: RequestContext) -> dict[str, object]:
    return {"AO": ctx.institution, "AA": req.patron_id, "AB": req.item_id or None, "AJ": req.title_id,
            "AC": ctx.terminal_password, "CH": req.item_properties, "AD": req.patron_pin or "",
            "BO": "Y" if req.fee_acknowledged else None, "BI": "Y" if req.cancel else None}


def _unparse_loan(req: rq.CheckoutRequest, ctx: RequestContext, flag: dict[str, str], absent: str) -> Body:
    """11 and 29: the same fixed part but its first flag, the same fields but one."""
    fields = _loan_fields(req, ctx)
    del fields[absent]
    f.add_extra(fields, req.extra, "utf-8")
    return {**flag, "no_block": f.yn(req.no_block), "transaction_date": sip_date(req.transaction_date or ctx.now),
            "nb_due_date": f.date_or_blank(req.nb_due_date) or " " * 18}, fields


def _unparse_checkout(req: rq.CheckoutRequest, ctx: RequestContext) -> Body:
    return _unparse_loan(req, ctx, {"sc_renewal_policy": f.yn(req.renewal_policy)}, "AJ")  # 11 has no title


def _unparse_renew(req: rq.CheckoutRequest, ctx: RequestContext) -> Body:
    return _unparse_loan(req, ctx, {"third_party_allowed": f.yn(req.third_party)}, "BI")  # 29 has no cancel


def _read_circulation(msg: Message) -> m.CirculationResult:
    fx = msg.fixed
    fee_type = f.integer(msg.get("BT"))
    return m.CirculationResult(
        ok=fx.get("ok") == "1", patron_id=f.text(msg, "AA"), item_id=f.text(msg, "AB"), title=f.text(msg, "AJ"),
        renewal_ok=f.flag(fx.get("renewal_ok")) is True, magnetic_media=f.flag(fx.get("magnetic_media")),
        desensitize=f.flag(fx.get("desensitize")), due_date=f.date(msg.get("AH")),
        fee_type=m.FeeType(fee_type) if fee_type is not None and 1 <= fee_type <= 9 else None,
        fee_amount=f.amount(msg.get("BV")), currency=msg.get("BH"),
        security_inhibit=f.flag(msg.get("CI")), media_type=msg.get("CK"), item_properties=msg.get("CH"),
        transaction_id=msg.get("BK"), patron_valid=f.flag(msg.get("BL")), pin_valid=f.flag(msg.get("CQ")),
        messages=f.messages(msg), extra=f.extra_fields(msg, _CIRC_REPLY_TAGS))


CHECKOUT = Exchange("11", "checkout", _loan_request, _circulation_body, _refused_loan, _unparse_checkout,
                    _read_circulation, side_effect=True)
RENEW = Exchange("29", "renew", _parse_renew, _circulation_body, _refused_loan, _unparse_renew,
                 _read_circulation, side_effect=True)


# --- 65 -----------------------------------------------------------------------------------

def _parse_renew_all(msg: Message) -> rq.RenewAllRequest:
    return rq.RenewAllRequest(patron_id=f.text(msg, "AA"), patron_pin=pin(msg),
                              fee_acknowledged=msg.get("BO") == "Y",
                              extra=f.extra_fields(msg, ("AO", "AA", "AD", "AC", "BO")))


def _renew_all_body(r: m.RenewAllResult, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fixed = {"ok": f.bit(r.ok), "renewed_count": f.count(len(r.renewed)),
             "unrenewed_count": f.count(len(r.unrenewed)), "transaction_date": sip_date(ctx.now)}
    fields: dict[str, object] = {
        "AO": f.clean(ctx.institution, enc),
        "BM": [f.clean(i, enc) for i in r.renewed] or None,
        "BN": [f.clean(i, enc) for i in r.unrenewed] or None,
    }
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return fixed, fields


def _unparse_renew_all(req: rq.RenewAllRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"AO": ctx.institution, "AA": req.patron_id, "AD": req.patron_pin or "",
                                 "AC": ctx.terminal_password, "BO": "Y" if req.fee_acknowledged else None}
    f.add_extra(fields, req.extra, "utf-8")
    return {"transaction_date": sip_date(ctx.now)}, fields


def _read_renew_all(msg: Message) -> m.RenewAllResult:
    return m.RenewAllResult(ok=msg.fixed.get("ok") == "1", renewed=f.values(msg, "BM"),
                            unrenewed=f.values(msg, "BN"), messages=f.messages(msg),
                            extra=f.extra_fields(msg, ("AO", "BM", "BN", "AF", "AG")))


RENEW_ALL = Exchange("65", "renew_all", _parse_renew_all, _renew_all_body,
                     lambda msg, screen: m.RenewAllResult(ok=False, messages=m.Messages(screen=(screen,))),
                     _unparse_renew_all, _read_renew_all, side_effect=True)


# --- 09 -----------------------------------------------------------------------------------

_CHECKIN_REPLY_TAGS = ("AO", "AB", "AQ", "AJ", "CL", "AA", "CK", "CH", "CR", "CS", "CT", "CV", "CY", "DA",
                       "AF", "AG")


def _parse_checkin(msg: Message) -> rq.CheckinRequest:
    fx = msg.fixed
    return rq.CheckinRequest(
        item_id=f.text(msg, "AB"), return_date=f.date(fx.get("return_date")), current_location=f.text(msg, "AP"),
        no_block=fx.get("no_block") == "Y", cancel=msg.get("BI") == "Y", item_properties=msg.get("CH"),
        transaction_date=f.date(fx.get("transaction_date")),
        extra=f.extra_fields(msg, ("AP", "AO", "AB", "AC", "CH", "BI")))


def _checkin_body(r: m.CheckinResult, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fixed = {"ok": f.bit(r.ok), "resensitize": f.yn(r.resensitize), "magnetic_media": f.yn(r.magnetic_media, "U"),
             "alert": f.yn(r.alert), "transaction_date": sip_date(ctx.now)}
    fields: dict[str, object] = {
        "AO": f.clean(ctx.institution, enc),
        "AB": f.clean(r.item_id, enc),
        "AQ": f.clean(r.permanent_location, enc),
        "AJ": f.opt(r.title, enc),
        "CL": f.opt(r.sort_bin, enc),
        "AA": f.opt(r.patron_id, enc),
        "CK": r.media_type,
        "CH": f.opt(r.item_properties, enc),
        "CR": f.opt(r.collection_code, enc),
        "CS": f.opt(r.call_number, enc),
        "CT": f.opt(r.destination_location, enc),
        "CV": f.two_digits(r.alert_type) if r.alert else None,
        "CY": f.opt(r.hold_patron_id, enc),
        "DA": f.opt(r.hold_patron_name, enc),
    }
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return fixed, fields


def _unparse_checkin(req: rq.CheckinRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"AP": req.current_location or ctx.location, "AO": ctx.institution,
                                 "AB": req.item_id, "AC": ctx.terminal_password, "CH": req.item_properties,
                                 "BI": "Y" if req.cancel else None}
    f.add_extra(fields, req.extra, "utf-8")
    return {"no_block": f.yn(req.no_block), "transaction_date": sip_date(req.transaction_date or ctx.now),
            "return_date": f.date_or_blank(req.return_date) or " " * 18}, fields


def _read_checkin(msg: Message) -> m.CheckinResult:
    fx = msg.fixed
    alert_type = f.integer(msg.get("CV"))
    return m.CheckinResult(
        ok=fx.get("ok") == "1", item_id=f.text(msg, "AB"), permanent_location=f.text(msg, "AQ"),
        title=msg.get("AJ"), resensitize=f.flag(fx.get("resensitize")) is True,
        magnetic_media=f.flag(fx.get("magnetic_media")), alert=f.flag(fx.get("alert")) is True,
        alert_type=_alert_type(alert_type), sort_bin=msg.get("CL"), patron_id=msg.get("AA"),
        media_type=msg.get("CK"), item_properties=msg.get("CH"), collection_code=msg.get("CR"),
        call_number=msg.get("CS"), destination_location=msg.get("CT"), hold_patron_id=msg.get("CY"),
        hold_patron_name=msg.get("DA"), messages=f.messages(msg),
        extra=f.extra_fields(msg, _CHECKIN_REPLY_TAGS))


def _alert_type(value: int | None) -> m.AlertType | None:
    try:
        return None if value is None else m.AlertType(value)
    except ValueError:
        return m.AlertType.OTHER


CHECKIN = Exchange(
    "09", "checkin", _parse_checkin, _checkin_body,
    lambda msg, screen: m.CheckinResult(ok=False, item_id=f.text(msg, "AB"), messages=m.Messages(screen=(screen,))),
    _unparse_checkin, _read_checkin, side_effect=True)
