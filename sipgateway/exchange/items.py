"""Items and holds: 17 → 18 (item information), 19 → 20 (item status update), 15 → 16 (hold)."""

from __future__ import annotations

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.exchange import fields as f
from sipgateway.exchange.base import BadRequest, Body, Exchange, ReplyContext, RequestContext
from sipgateway.exchange.patrons import pin
from sipgateway.sip2 import Message, sip_date


def _enum(cls: type, value: int | None, default: object) -> object:
    try:
        return default if value is None else cls(value)
    except ValueError:
        return default


# --- 17 -----------------------------------------------------------------------------------

def _parse_item_information(msg: Message) -> rq.ItemInformationRequest:
    return rq.ItemInformationRequest(item_id=f.text(msg, "AB"), extra=f.extra_fields(msg, ("AO", "AB", "AC")))


def _item_information_body(r: m.ItemInformation, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fixed = {"circulation_status": f"{int(r.circulation_status):02d}",
             "security_marker": f"{int(r.security_marker):02d}", "fee_type": f"{int(r.fee_type):02d}",
             "transaction_date": sip_date(ctx.now)}
    fields: dict[str, object] = {
        "CF": None if r.hold_queue_length is None else str(r.hold_queue_length),
        "AH": f.opt_date(r.due_date),
        "CJ": f.opt_date(r.recall_date),
        "CM": f.opt_date(r.hold_pickup_date),
        "AB": f.clean(r.item_id, enc),
        "AJ": f.clean(r.title, enc),
        "BG": f.opt(r.owner, enc),
        "BH": f.opt(r.currency, enc) if r.fee_amount is not None else None,
        "BV": f.money(r.fee_amount),
        "CK": r.media_type,
        "AQ": f.opt(r.permanent_location, enc),
        "AP": f.opt(r.current_location, enc),
        "CH": f.opt(r.item_properties, enc),
        "CT": f.opt(r.destination_location, enc),
        "CS": f.opt(r.call_number, enc),
    }
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return fixed, fields


def _unparse_item_information(req: rq.ItemInformationRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"AO": ctx.institution, "AB": req.item_id, "AC": ctx.terminal_password}
    f.add_extra(fields, req.extra, "utf-8")
    return {"transaction_date": sip_date(ctx.now)}, fields


_ITEM_REPLY_TAGS = ("CF", "AH", "CJ", "CM", "AB", "AJ", "BG", "BH", "BV", "CK", "AQ", "AP", "CH", "CT", "CS",
                    "AF", "AG")


def _read_item_information(msg: Message) -> m.ItemInformation:
    fx = msg.fixed
    return m.ItemInformation(
        item_id=f.text(msg, "AB"),
        circulation_status=_enum(m.CirculationStatus, f.integer(fx.get("circulation_status")),
                                 m.CirculationStatus.OTHER),
        security_marker=_enum(m.SecurityMarker, f.integer(fx.get("security_marker")), m.SecurityMarker.OTHER),
        fee_type=_enum(m.FeeType, f.integer(fx.get("fee_type")), m.FeeType.OTHER),
        title=f.text(msg, "AJ"), hold_queue_length=f.integer(msg.get("CF")), due_date=f.date(msg.get("AH")),
        recall_date=f.date(msg.get("CJ")), hold_pickup_date=f.date(msg.get("CM")), owner=msg.get("BG"),
        currency=msg.get("BH"), fee_amount=f.amount(msg.get("BV")), media_type=msg.get("CK"),
        permanent_location=msg.get("AQ"), current_location=msg.get("AP"), item_properties=msg.get("CH"),
        destination_location=msg.get("CT"), call_number=msg.get("CS"), messages=f.messages(msg),
        extra=f.extra_fields(msg, _ITEM_REPLY_TAGS))


ITEM_INFORMATION = Exchange(
    "17", "item_information", _parse_item_information, _item_information_body,
    lambda msg, screen: m.ItemInformation(item_id=f.text(msg, "AB"), messages=m.Messages(screen=(screen,))),
    _unparse_item_information, _read_item_information, memo=True)


# --- 19 -----------------------------------------------------------------------------------

def _parse_item_status_update(msg: Message) -> rq.ItemStatusUpdateRequest:
    return rq.ItemStatusUpdateRequest(item_id=f.text(msg, "AB"), item_properties=f.text(msg, "CH"),
                                      extra=f.extra_fields(msg, ("AO", "AB", "AC", "CH")))


def _item_status_update_body(r: m.ItemStatusUpdateResult, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fields: dict[str, object] = {"AB": f.clean(r.item_id, enc), "AJ": f.opt(r.title, enc),
                                 "CH": f.opt(r.item_properties, enc)}
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return {"item_properties_ok": f.bit(r.ok), "transaction_date": sip_date(ctx.now)}, fields


def _unparse_item_status_update(req: rq.ItemStatusUpdateRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"AO": ctx.institution, "AB": req.item_id, "AC": ctx.terminal_password,
                                 "CH": req.item_properties}
    f.add_extra(fields, req.extra, "utf-8")
    return {"transaction_date": sip_date(ctx.now)}, fields


def _read_item_status_update(msg: Message) -> m.ItemStatusUpdateResult:
    return m.ItemStatusUpdateResult(
        ok=msg.fixed.get("item_properties_ok") == "1", item_id=f.text(msg, "AB"), title=msg.get("AJ"),
        item_properties=msg.get("CH"), messages=f.messages(msg),
        extra=f.extra_fields(msg, ("AB", "AJ", "CH", "AF", "AG")))


ITEM_STATUS_UPDATE = Exchange(
    "19", "item_status_update", _parse_item_status_update, _item_status_update_body,
    lambda msg, screen: m.ItemStatusUpdateResult(ok=False, item_id=f.text(msg, "AB"),
                                                 messages=m.Messages(screen=(screen,))),
    _unparse_item_status_update, _read_item_status_update, side_effect=True)


# --- 15 -----------------------------------------------------------------------------------

def _parse_hold(msg: Message) -> rq.HoldRequest:
    hold_type = msg.get("BY")
    request = rq.HoldRequest(
        mode=m.HoldMode(msg.fixed.get("hold_mode", "+")),
        patron_id=f.text(msg, "AA"),
        patron_pin=pin(msg),
        item_id=msg.get("AB") or None,
        title_id=msg.get("AJ") or None,
        pickup_location=msg.get("BS") or None,
        expiration_date=f.date(msg.get("BW")),
        hold_type=int(hold_type) if hold_type and hold_type.isdigit() else None,
        fee_acknowledged=msg.get("BO") == "Y",
        extra=f.extra_fields(msg, ("BW", "BS", "BY", "AO", "AA", "AD", "AB", "AJ", "AC", "BO")),
    )
    if not request.item_id and not request.title_id:
        raise BadRequest("A hold needs an item identifier (AB) or a title (AJ)")
    return request


def _hold_body(r: m.HoldResult, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fields: dict[str, object] = {
        "BW": f.opt_date(r.expiration_date),
        "BR": None if r.queue_position is None else str(r.queue_position),
        "BS": f.opt(r.pickup_location, enc),
        "AO": f.clean(ctx.institution, enc),
        "AA": f.clean(r.patron_id, enc),
        "AB": f.opt(r.item_id, enc),
        "AJ": f.opt(r.title, enc),
    }
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return {"ok": f.bit(r.ok), "available": f.yn(r.available), "transaction_date": sip_date(ctx.now)}, fields


def _unparse_hold(req: rq.HoldRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {
        "BW": f.opt_date(req.expiration_date), "BS": req.pickup_location,
        "BY": None if req.hold_type is None else str(req.hold_type), "AO": ctx.institution, "AA": req.patron_id,
        "AD": req.patron_pin or "", "AB": req.item_id, "AJ": req.title_id, "AC": ctx.terminal_password,
        "BO": "Y" if req.fee_acknowledged else None}
    f.add_extra(fields, req.extra, "utf-8")
    return {"hold_mode": req.mode.value, "transaction_date": sip_date(ctx.now)}, fields


def _read_hold(msg: Message) -> m.HoldResult:
    return m.HoldResult(
        ok=msg.fixed.get("ok") == "1", patron_id=f.text(msg, "AA"),
        available=f.flag(msg.fixed.get("available")) is True,
        expiration_date=f.date(msg.get("BW") or msg.fixed.get("expiration_date")),
        queue_position=f.integer(msg.get("BR")), pickup_location=msg.get("BS"), item_id=msg.get("AB"),
        title=msg.get("AJ"), messages=f.messages(msg),
        extra=f.extra_fields(msg, ("BW", "BR", "BS", "AO", "AA", "AB", "AJ", "AF", "AG")))


HOLD = Exchange(
    "15", "hold", _parse_hold, _hold_body,
    lambda msg, screen: m.HoldResult(ok=False, patron_id=f.text(msg, "AA"), messages=m.Messages(screen=(screen,))),
    _unparse_hold, _read_hold, side_effect=True)
