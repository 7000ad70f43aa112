"""37 Fee Paid → 38, with OCLC Wise's SIP2+ additions: the purposes FA, FB, FC (an amount
each), the tracking number FX, and the fee limit CC in 38."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.exchange import fields as f
from sipgateway.exchange.base import BadRequest, Body, Exchange, ReplyContext, RequestContext
from sipgateway.exchange.patrons import pin
from sipgateway.sip2 import Message, sip_date

#: Wise's purposes: tag -> FeePayment field
PURPOSES = {"FA": "membership", "FB": "registrations", "FC": "deposit"}
_PURPOSE_NAMES = {"FA": "amount for membership fees", "FB": "amount for fines and charges",
                  "FC": "amount for the credit"}


def amount_of(msg: Message, tag: str, name: str) -> Decimal:
    """The amount in ``tag``; one that is no number is a BadRequest naming ``name``."""
    try:
        amount = Decimal(msg.get(tag) or "")
    except InvalidOperation:
        raise BadRequest(f"The {name} ({tag}) is not a number") from None
    if not amount.is_finite():
        raise BadRequest(f"The {name} ({tag}) is not a number")
    return amount


def _purposes(msg: Message) -> dict[str, Decimal | None]:
    """FA/FB/FC: an amount each; absent or empty is None."""
    return {name: amount_of(msg, tag, _PURPOSE_NAMES[tag]) if msg.get(tag) else None
            for tag, name in PURPOSES.items()}


def _parse_fee_paid(msg: Message) -> rq.FeePayment:
    fx = msg.fixed
    amount = amount_of(msg, "BV", "fee amount")
    fee_type = int(fx.get("fee_type", "01"))
    return rq.FeePayment(
        patron_id=f.text(msg, "AA"),
        amount=amount,
        currency=fx.get("currency_type", ""),
        fee_type=m.FeeType(fee_type) if 1 <= fee_type <= 9 else m.FeeType.OTHER,
        payment_type=int(fx.get("payment_type", "00")),
        patron_pin=pin(msg),
        fee_id=msg.get("CG") or None,
        transaction_id=msg.get("BK") or None,
        extra=f.extra_fields(msg, ("BV", "AO", "AA", "AC", "AD", "CG", "BK", "FX", *PURPOSES)),
        tracking=msg.get("FX") or None,
        **_purposes(msg),
    )


def _fee_paid_body(r: m.FeePaidResult, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fields: dict[str, object] = {"AO": f.clean(ctx.institution, enc), "AA": f.clean(r.patron_id, enc),
                                 "BK": f.opt(r.transaction_id, enc), "CC": f.money(r.fee_limit)}
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return {"payment_accepted": f.yn(r.accepted), "transaction_date": sip_date(ctx.now)}, fields


def _unparse_fee_paid(req: rq.FeePayment, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"BV": f.money(req.amount), "AO": ctx.institution, "AA": req.patron_id,
                                 "AC": ctx.terminal_password, "AD": req.patron_pin or "", "CG": req.fee_id,
                                 "BK": req.transaction_id, "FX": req.tracking}
    for tag, name in PURPOSES.items():
        fields[tag] = f.money(getattr(req, name))
    f.add_extra(fields, req.extra, "utf-8")
    return {"transaction_date": sip_date(ctx.now), "fee_type": f"{int(req.fee_type):02d}",
            "payment_type": f"{max(0, min(int(req.payment_type), 99)):02d}", "currency_type": req.currency}, fields


def _read_fee_paid(msg: Message) -> m.FeePaidResult:
    return m.FeePaidResult(accepted=f.flag(msg.fixed.get("payment_accepted")) is True, patron_id=f.text(msg, "AA"),
                           transaction_id=msg.get("BK"), messages=f.messages(msg),
                           fee_limit=f.amount(msg.get("CC")),
                           extra=f.extra_fields(msg, ("AO", "AA", "BK", "AF", "AG", "CC")))


FEE_PAID = Exchange(
    "37", "fee_paid", _parse_fee_paid, _fee_paid_body,
    lambda msg, screen: m.FeePaidResult(accepted=False, patron_id=f.text(msg, "AA"),
                                        messages=m.Messages(screen=(screen,))),
    _unparse_fee_paid, _read_fee_paid, side_effect=True)
