"""Patron requests: 23 → 24, 63 → 64, 01 → 24, 25 → 26, 35 → 36."""

from __future__ import annotations

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.exchange import fields as f
from sipgateway.exchange.base import Body, Exchange, ReplyContext, RequestContext
from sipgateway.sip2 import Message, sip_date

#: 63's summary position / 64's list tag, per item list (SIP2 63 summary)
LIST_TAG = {
    m.ItemList.HOLD: "AS",
    m.ItemList.OVERDUE: "AT",
    m.ItemList.CHARGED: "AU",
    m.ItemList.FINE: "AV",
    m.ItemList.RECALL: "BU",
    m.ItemList.UNAVAILABLE_HOLD: "CD",
}
_TAG_LIST = {tag: item_list for item_list, tag in LIST_TAG.items()}


def pin(msg: Message) -> str | None:
    """The patron PIN; an empty AD means none was entered."""
    return msg.get("AD") or None


def _unknown(msg: Message, screen: str, cls: type = m.PatronStatus) -> m.PatronStatus:
    return cls(patron_id=f.text(msg, "AA"), flags=m.UNKNOWN_PATRON_FLAGS,
               language=msg.fixed.get("language", "000"), messages=m.Messages(screen=(screen,)))


def _common(p: m.PatronStatus, ctx: ReplyContext, *, money: bool = True) -> dict[str, object]:
    enc = ctx.encoding
    fields: dict[str, object] = {
        "AO": f.clean(ctx.institution, enc),
        "AA": f.clean(p.patron_id, enc),
        "AE": f.clean(p.name, enc),
        "BL": f.yn(p.valid),
        "CQ": None if p.pin_valid is None else f.yn(p.pin_valid),
    }
    if money:
        fields["BH"] = f.opt(p.currency, enc) if p.fee_amount is not None else None
        fields["BV"] = f.money(p.fee_amount)
    return fields


def _status_fixed(p: m.PatronStatus, ctx: ReplyContext) -> dict[str, str]:
    return {"patron_status": f.patron_status_field(p.flags), "language": f.language(p.language, ctx.language),
            "transaction_date": sip_date(ctx.now)}


def _finish(fields: dict[str, object], p: m.PatronStatus, ctx: ReplyContext) -> None:
    f.add_messages(fields, p.messages, ctx.encoding)
    f.add_extra(fields, p.extra, ctx.encoding)


def _patron_status_body(p: m.PatronStatus, ctx: ReplyContext) -> Body:
    """24: the answer to 23 and to 01."""
    fields = _common(p, ctx)
    _finish(fields, p, ctx)
    return _status_fixed(p, ctx), fields


def _enable_body(p: m.PatronStatus, ctx: ReplyContext) -> Body:
    """26: 24's layout without the money."""
    fields = _common(p, ctx, money=False)
    _finish(fields, p, ctx)
    return _status_fixed(p, ctx), fields


_STATUS_TAGS = ("AO", "AA", "AE", "BL", "CQ", "BH", "BV", "AF", "AG")


def _read_status(msg: Message, cls: type = m.PatronStatus, known: tuple[str, ...] = (),
                 **more: object) -> m.PatronStatus:
    fx = msg.fixed
    known = _STATUS_TAGS + known
    return cls(patron_id=f.text(msg, "AA"), name=f.text(msg, "AE"), valid=f.flag(msg.get("BL")) is True,
               pin_valid=f.flag(msg.get("CQ")), flags=f.flags(fx.get("patron_status", "")),
               language=fx.get("language", "000"), currency=msg.get("BH"), fee_amount=f.amount(msg.get("BV")),
               messages=f.messages(msg), extra=f.extra_fields(msg, known), **more)


def _head(ctx: RequestContext, language: str = "") -> dict[str, str]:
    fixed = {"transaction_date": sip_date(ctx.now)}
    if language:
        fixed = {"language": language, **fixed}
    return fixed


def _who(req: rq.PatronStatusRequest | rq.EndSessionRequest | rq.PatronEnableRequest | rq.RenewAllRequest,
         ctx: RequestContext) -> dict[str, object]:
    return {"AO": ctx.institution, "AA": req.patron_id, "AC": ctx.terminal_password,
            "AD": req.patron_pin or ""}


# --- 23 -----------------------------------------------------------------------------------

def _parse_patron_status(msg: Message) -> rq.PatronStatusRequest:
    return rq.PatronStatusRequest(patron_id=f.text(msg, "AA"), patron_pin=pin(msg),
                                  language=msg.fixed.get("language", "000"),
                                  extra=f.extra_fields(msg, ("AO", "AA", "AC", "AD")))


def _unparse_patron_status(req: rq.PatronStatusRequest, ctx: RequestContext) -> Body:
    fields = _who(req, ctx)
    f.add_extra(fields, req.extra, "utf-8")
    return _head(ctx, req.language or "000"), fields


PATRON_STATUS = Exchange("23", "patron_status", _parse_patron_status, _patron_status_body, _unknown,
                         _unparse_patron_status, _read_status, memo=True)


# --- 63 -----------------------------------------------------------------------------------

def _parse_patron_information(msg: Message) -> rq.PatronInformationRequest:
    summary = msg.fixed.get("summary", "")
    pos = summary.find("Y")
    return rq.PatronInformationRequest(
        patron_id=f.text(msg, "AA"), patron_pin=pin(msg), item_list=m.ItemList(pos) if 0 <= pos <= 5 else None,
        start=f.integer(msg.get("BP")), end=f.integer(msg.get("BQ")), language=msg.fixed.get("language", "000"),
        extra=f.extra_fields(msg, ("AO", "AA", "AC", "AD", "BP", "BQ")))


def _patron_information_body(p: m.PatronInformation, ctx: ReplyContext) -> Body:
    fixed = _status_fixed(p, ctx)
    fixed.update(hold_items_count=f.count(p.hold_count), overdue_items_count=f.count(p.overdue_count),
                 charged_items_count=f.count(p.charged_count), fine_items_count=f.count(p.fine_count),
                 recall_items_count=f.count(p.recall_count),
                 unavailable_holds_count=f.count(p.unavailable_hold_count))
    enc = ctx.encoding
    fields = _common(p, ctx)
    fields["BZ"] = f.opt_count(p.hold_limit)
    fields["CA"] = f.opt_count(p.overdue_limit)
    fields["CB"] = f.opt_count(p.charged_limit)
    fields["CC"] = f.money(p.fee_limit)
    if p.item_list is not None and p.items:
        fields[LIST_TAG[p.item_list]] = [f.clean(i, enc) for i in p.items]
    fields["BD"] = f.opt(p.home_address, enc)
    fields["BE"] = f.opt(p.email, enc)
    fields["BF"] = f.opt(p.phone, enc)
    _finish(fields, p, ctx)
    return fixed, fields


def _unparse_patron_information(req: rq.PatronInformationRequest, ctx: RequestContext) -> Body:
    summary = [" "] * 10
    if req.item_list is not None:
        summary[req.item_list.value] = "Y"
    fields = _who(req, ctx)  # type: ignore[arg-type]
    fields["BP"] = None if req.start is None else str(req.start)
    fields["BQ"] = None if req.end is None else str(req.end)
    f.add_extra(fields, req.extra, "utf-8")
    return {**_head(ctx, req.language or "000"), "summary": "".join(summary)}, fields


def _read_patron_information(msg: Message) -> m.PatronInformation:
    fx = msg.fixed
    item_list, items = None, ()
    for tag, which in _TAG_LIST.items():
        if tag in msg.fields:
            item_list, items = which, f.values(msg, tag)
            break

    def limit(tag: str) -> int | None:
        return f.integer(msg.get(tag))

    return _read_status(  # type: ignore[return-value]
        msg, m.PatronInformation,
        hold_count=f.integer(fx.get("hold_items_count")) or 0,
        overdue_count=f.integer(fx.get("overdue_items_count")) or 0,
        charged_count=f.integer(fx.get("charged_items_count")) or 0,
        fine_count=f.integer(fx.get("fine_items_count")) or 0,
        recall_count=f.integer(fx.get("recall_items_count")) or 0,
        unavailable_hold_count=f.integer(fx.get("unavailable_holds_count")) or 0,
        hold_limit=limit("BZ"), overdue_limit=limit("CA"), charged_limit=limit("CB"),
        fee_limit=f.amount(msg.get("CC")), item_list=item_list, items=items,
        home_address=msg.get("BD"), email=msg.get("BE"), phone=msg.get("BF"),
        known=("BZ", "CA", "CB", "CC", "BD", "BE", "BF", *_TAG_LIST))


PATRON_INFORMATION = Exchange(
    "63", "patron_information", _parse_patron_information, _patron_information_body,
    lambda msg, screen: _unknown(msg, screen, m.PatronInformation), _unparse_patron_information,
    _read_patron_information, memo=True)


# --- 01 -----------------------------------------------------------------------------------

def _parse_block(msg: Message) -> rq.BlockPatronRequest:
    return rq.BlockPatronRequest(patron_id=f.text(msg, "AA"), message=f.text(msg, "AL"),
                                 card_retained=msg.fixed.get("card_retained") == "Y",
                                 extra=f.extra_fields(msg, ("AO", "AL", "AA", "AC")))


def _unparse_block(req: rq.BlockPatronRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"AO": ctx.institution, "AL": req.message, "AA": req.patron_id,
                                 "AC": ctx.terminal_password}
    f.add_extra(fields, req.extra, "utf-8")
    return {"card_retained": f.yn(req.card_retained), "transaction_date": sip_date(ctx.now)}, fields


BLOCK_PATRON = Exchange("01", "block_patron", _parse_block, _patron_status_body, _unknown, _unparse_block,
                        _read_status, side_effect=True)


# --- 25 -----------------------------------------------------------------------------------

def _parse_enable(msg: Message) -> rq.PatronEnableRequest:
    return rq.PatronEnableRequest(patron_id=f.text(msg, "AA"), patron_pin=pin(msg),
                                  extra=f.extra_fields(msg, ("AO", "AA", "AC", "AD")))


def _unparse_enable(req: rq.PatronEnableRequest, ctx: RequestContext) -> Body:
    fields = _who(req, ctx)
    f.add_extra(fields, req.extra, "utf-8")
    return _head(ctx), fields


PATRON_ENABLE = Exchange("25", "patron_enable", _parse_enable, _enable_body, _unknown, _unparse_enable,
                         _read_status, side_effect=True)


# --- 35 -----------------------------------------------------------------------------------

def _parse_end(msg: Message) -> rq.EndSessionRequest:
    return rq.EndSessionRequest(patron_id=f.text(msg, "AA"), patron_pin=pin(msg),
                                extra=f.extra_fields(msg, ("AO", "AA", "AC", "AD")))


def _end_body(r: m.EndSessionResult, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fields: dict[str, object] = {"AO": f.clean(ctx.institution, enc), "AA": f.clean(r.patron_id, enc)}
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return {"end_session": f.yn(r.ended), "transaction_date": sip_date(ctx.now)}, fields


def _unparse_end(req: rq.EndSessionRequest, ctx: RequestContext) -> Body:
    fields = _who(req, ctx)
    f.add_extra(fields, req.extra, "utf-8")
    return _head(ctx), fields


def _read_end(msg: Message) -> m.EndSessionResult:
    return m.EndSessionResult(ended=f.flag(msg.fixed.get("end_session")) is True, patron_id=f.text(msg, "AA"),
                              messages=f.messages(msg), extra=f.extra_fields(msg, ("AO", "AA", "AF", "AG")))


END_SESSION = Exchange(
    "35", "end_session", _parse_end, _end_body,
    lambda msg, screen: m.EndSessionResult(ended=False, patron_id=f.text(msg, "AA"),
                                           messages=m.Messages(screen=(screen,))),
    _unparse_end, _read_end)
