"""OCLC Wise SIP2+ requests: 39 → 40 (usage debit), 41 → 42 (payments overview), 70 → 71
(renewal options), Y1 → Y2 and Y3 → Y4 (punch cards), X1 → X2 (save user name).

Wise writes lists as repeated fields whose value is several parts joined by ``~``: 42 YZ
(a payment: ``date ~ type ~ amount ~ method ~ description``, or with FD an open fee in ten
parts), 71 GC (a loan in nine parts, joined by a bare ``~``), Y2 FG (a punch card for sale).
Dates in them and in 41's FJ/FK are ``dd-mm-yyyy``; an empty date in an open fee is ``- -``.
A part never contains ``~`` (it becomes ``-``), and a line is cut to 255 characters in its
free text (title, description), never in its numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs import wise as w
from sipgateway.exchange import fields as f
from sipgateway.exchange.base import BadRequest, Body, Exchange, ReplyContext, RequestContext
from sipgateway.exchange.fees import amount_of
from sipgateway.exchange.patrons import pin
from sipgateway.sip2 import Message, sip_date

#: an empty date in an open fee's line (42 with FD), as Wise writes it
NO_DATE = "- -"
_ZERO = Decimal("0.00")


def _screen(screen: str) -> m.Messages:
    return m.Messages(screen=(screen,))


# --- the parts of a line -------------------------------------------------------------------

def day_text(value: date | None, empty: str = "") -> str:
    """``dd-mm-yyyy``."""
    return empty if value is None else f"{value.day:02d}-{value.month:02d}-{value.year:04d}"


def read_day(text: str | None) -> date | None:
    """``dd-mm-yyyy`` (one-digit day and month too); anything else is None."""
    try:
        return datetime.strptime((text or "").strip(), "%d-%m-%Y").date()
    except ValueError:
        return None


def _day_field(msg: Message, tag: str, name: str) -> date:
    value = read_day(msg.get(tag))
    if value is None:
        raise BadRequest(f"The {name} ({tag}) must be a date dd-mm-yyyy")
    return value


def _two_digits(msg: Message, tag: str, name: str) -> int | None:
    """A two-digit code (FI); absent or empty is None."""
    text = (msg.get(tag) or "").strip()
    if not text:
        return None
    if not (text.isdigit() and text.isascii() and len(text) <= 2):
        raise BadRequest(f"The {name} ({tag}) must be two digits")
    return int(text)


def _line(parts: Sequence[object], separator: str, flexible: Sequence[int], encoding: str) -> str:
    """``parts`` joined by ``separator``: each cleaned, without ``~``; when the line would be
    longer than one field may be, the parts at ``flexible`` (free text) are shortened."""
    texts = [f.clean(part, encoding).replace("~", "-").strip() for part in parts]
    excess = len(separator.join(texts)) - f.MAX_VALUE
    for i in flexible:
        if excess <= 0:
            break
        cut = min(excess, len(texts[i]))
        texts[i] = texts[i][:len(texts[i]) - cut].rstrip()
        excess -= cut
    return separator.join(texts)


def _parts(line: str, count: int) -> list[str] | None:
    parts = [part.strip() for part in line.split("~")]
    return parts if len(parts) == count else None


def _amount(text: str) -> Decimal:
    return f.amount(text) or _ZERO


def _count(text: str) -> int:
    return f.integer(text) or 0


# --- 39 / 40 usage debit -------------------------------------------------------------------

def _parse_usage_debit(msg: Message) -> rq.UsageDebit:
    method = _two_digits(msg, "FI", "payment method")
    if method is None:
        raise BadRequest("The payment method (FI) is missing")
    return rq.UsageDebit(amount=amount_of(msg, "BV", "fee amount"), journal_code=f.text(msg, "FH").strip(),
                         payment_method=method, patron_id=msg.get("AA") or None,
                         extra=f.extra_fields(msg, ("AA", "BV", "FH", "FI")))


def _usage_debit_body(r: w.UsageDebitResult, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fields: dict[str, object] = {"AA": f.opt(r.patron_id, enc), "CC": f.money(r.fee_limit)}
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return {"payment_accepted": f.yn(r.accepted), "transaction_date": sip_date(ctx.now)}, fields


def _unparse_usage_debit(req: rq.UsageDebit, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"AA": req.patron_id, "BV": f.money(req.amount), "FH": req.journal_code,
                                 "FI": f"{max(0, min(req.payment_method, 99)):02d}"}
    f.add_extra(fields, req.extra, "utf-8")
    return {"transaction_date": sip_date(ctx.now)}, fields


def _read_usage_debit(msg: Message) -> w.UsageDebitResult:
    return w.UsageDebitResult(accepted=f.flag(msg.fixed.get("payment_accepted")) is True,
                              patron_id=msg.get("AA"), fee_limit=f.amount(msg.get("CC")), messages=f.messages(msg),
                              extra=f.extra_fields(msg, ("AA", "AF", "AG", "CC")))


USAGE_DEBIT = Exchange(
    "39", "usage_debit", _parse_usage_debit, _usage_debit_body,
    lambda msg, screen: w.UsageDebitResult(accepted=False, patron_id=msg.get("AA") or None, messages=_screen(screen)),
    _unparse_usage_debit, _read_usage_debit, side_effect=True)


# --- 41 / 42 payments overview -------------------------------------------------------------

#: 41's selectors: tag -> PaymentsOverviewRequest field
SELECTORS = {"FA": "contributions", "FB": "registrations", "FC": "deposit", "FD": "open_only", "FG": "punches_only"}


def _parse_payments_overview(msg: Message) -> rq.PaymentsOverviewRequest:
    return rq.PaymentsOverviewRequest(
        patron_id=f.text(msg, "AA"), date_from=_day_field(msg, "FJ", "date from"),
        date_to=_day_field(msg, "FK", "date to"), payment_method=_two_digits(msg, "FI", "payment method"),
        **{name: f.flag(msg.get(tag)) is True for tag, name in SELECTORS.items()},
        extra=f.extra_fields(msg, ("AA", "FJ", "FK", "FI", *SELECTORS)))


def payment_line(p: w.Payment, encoding: str) -> str:
    return _line((day_text(p.day), p.kind, f.money(p.amount), p.method, p.description), " ~ ", (4,), encoding)


def open_registration_line(r: w.OpenRegistration, encoding: str) -> str:
    return _line((day_text(r.created, NO_DATE), r.description, r.title, day_text(r.calculated, NO_DATE),
                  f.money(r.amount), r.status, day_text(r.sent_to_collector, NO_DATE), r.registration_id, r.kind,
                  day_text(r.arrangement, NO_DATE)), " ~ ", (2, 1), encoding)


def _payments_overview_body(r: w.PaymentsOverview, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    lines = [payment_line(p, enc) for p in r.payments]
    lines += [open_registration_line(o, enc) for o in r.open_registrations]
    fields: dict[str, object] = {
        "YZ": lines or None,
        "FG": [_line((b.name, b.balance), "~", (0,), enc) for b in r.punch_balances] or None,
    }
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return {}, fields


def _unparse_payments_overview(req: rq.PaymentsOverviewRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"AA": req.patron_id, "FJ": day_text(req.date_from), "FK": day_text(req.date_to),
                                 "FI": None if req.payment_method is None else f"{req.payment_method:02d}"}
    for tag, name in SELECTORS.items():
        fields[tag] = "Y" if getattr(req, name) else None
    f.add_extra(fields, req.extra, "utf-8")
    return {"transaction_date": sip_date(ctx.now)}, fields


def _read_payment(line: str) -> w.Payment | w.OpenRegistration | None:
    p = _parts(line, 5)
    if p is not None and (day := read_day(p[0])) is not None and f.amount(p[2]) is not None:
        return w.Payment(day=day, kind=p[1], amount=_amount(p[2]), method=p[3], description=p[4])
    p = _parts(line, 10)
    if p is not None and f.amount(p[4]) is not None and f.integer(p[8]) is not None:
        return w.OpenRegistration(created=read_day(p[0]), description=p[1], title=p[2], calculated=read_day(p[3]),
                                  amount=_amount(p[4]), status=p[5], sent_to_collector=read_day(p[6]),
                                  registration_id=p[7], kind=_count(p[8]), arrangement=read_day(p[9]))
    return None


def _read_payments_overview(msg: Message) -> w.PaymentsOverview:
    payments, open_ones, other = [], [], []
    for line in f.values(msg, "YZ"):
        value = _read_payment(line)
        if isinstance(value, w.Payment):
            payments.append(value)
        elif isinstance(value, w.OpenRegistration):
            open_ones.append(value)
        else:
            other.append(("YZ", line))  # a line of another shape: carried through as it is
    balances = []
    for line in f.values(msg, "FG"):
        name, _, balance = line.partition("~")
        balances.append(w.PunchBalance(name=name.strip(), balance=balance.strip()))
    return w.PaymentsOverview(payments=tuple(payments), open_registrations=tuple(open_ones),
                              punch_balances=tuple(balances), messages=f.messages(msg),
                              extra=(*other, *f.extra_fields(msg, ("YZ", "FG", "AF", "AG"))))


PAYMENTS_OVERVIEW = Exchange(
    "41", "payments_overview", _parse_payments_overview, _payments_overview_body,
    lambda msg, screen: w.PaymentsOverview(messages=_screen(screen)),
    _unparse_payments_overview, _read_payments_overview)


# --- 70 / 71 renewal options ---------------------------------------------------------------

def _parse_renewal_options(msg: Message) -> rq.RenewalOptionsRequest:
    return rq.RenewalOptionsRequest(patron_id=f.text(msg, "AA"), item_id=msg.get("AB") or None,
                                    extra=f.extra_fields(msg, ("AA", "AB")))


def renewal_line(o: w.RenewalOption, encoding: str) -> str:
    return _line((o.item_id, o.title, day_text(o.due_date), day_text(o.new_due_date), f.money(o.fine),
                  f.money(o.loan_cost), o.punches, f.money(o.renewal_cost), o.remarks), "~", (1, 8), encoding)


def _renewal_options_body(r: w.RenewalOptions, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fields: dict[str, object] = {"GC": [renewal_line(o, enc) for o in r.options] or None,
                                 "FG": str(max(0, r.punches))}
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return {}, fields


def _unparse_renewal_options(req: rq.RenewalOptionsRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"AA": req.patron_id, "AB": req.item_id or ""}
    f.add_extra(fields, req.extra, "utf-8")
    return {"transaction_date": sip_date(ctx.now)}, fields


def _read_renewal_options(msg: Message) -> w.RenewalOptions:
    options, other = [], []
    for line in f.values(msg, "GC"):
        p = _parts(line, 9)
        if p is None:
            other.append(("GC", line))
            continue
        options.append(w.RenewalOption(item_id=p[0], title=p[1], due_date=read_day(p[2]),
                                       new_due_date=read_day(p[3]), fine=_amount(p[4]), loan_cost=_amount(p[5]),
                                       punches=_count(p[6]), renewal_cost=_amount(p[7]), remarks=p[8]))
    return w.RenewalOptions(options=tuple(options), punches=_count(f.text(msg, "FG")), messages=f.messages(msg),
                            extra=(*other, *f.extra_fields(msg, ("GC", "FG", "AF", "AG"))))


RENEWAL_OPTIONS = Exchange(
    "70", "renewal_options", _parse_renewal_options, _renewal_options_body,
    lambda msg, screen: w.RenewalOptions(messages=_screen(screen)),
    _unparse_renewal_options, _read_renewal_options)


# --- Y1 / Y2, Y3 / Y4 punch cards; X1 / X2 user name ----------------------------------------

def _parse_punch_card_options(msg: Message) -> rq.PunchCardOptionsRequest:
    return rq.PunchCardOptionsRequest(patron_id=f.text(msg, "AA"), extra=f.extra_fields(msg, ("AA",)))


def _punch_card_options_body(r: w.PunchCardOptions, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fields: dict[str, object] = {
        "FG": [_line((o.kind, o.code, o.description, o.punches, f.money(o.price)), " ~ ", (2,), enc)
               for o in r.offers] or None}
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return {"status": f.bit(r.ok)}, fields


def _unparse_patron_only(req: rq.PunchCardOptionsRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"AA": req.patron_id}
    f.add_extra(fields, req.extra, "utf-8")
    return {"transaction_date": sip_date(ctx.now)}, fields


def _read_punch_card_options(msg: Message) -> w.PunchCardOptions:
    offers, other = [], []
    for line in f.values(msg, "FG"):
        p = _parts(line, 5)
        if p is None or f.integer(p[3]) is None or f.amount(p[4]) is None:
            other.append(("FG", line))
            continue
        offers.append(w.PunchCardOffer(kind=p[0], code=p[1], description=p[2], punches=_count(p[3]),
                                       price=_amount(p[4])))
    return w.PunchCardOptions(ok=msg.fixed.get("status") == "1", offers=tuple(offers), messages=f.messages(msg),
                              extra=(*other, *f.extra_fields(msg, ("FG", "AF", "AG"))))


PUNCH_CARD_OPTIONS = Exchange(
    "Y1", "punch_card_options", _parse_punch_card_options, _punch_card_options_body,
    lambda msg, screen: w.PunchCardOptions(ok=False, messages=_screen(screen)),
    _unparse_patron_only, _read_punch_card_options)


def _parse_punch_card_purchase(msg: Message) -> rq.PunchCardPurchase:
    return rq.PunchCardPurchase(patron_id=f.text(msg, "AA"), selection=f.text(msg, "FG"),
                                payment_method=f.text(msg, "FI"), extra=f.extra_fields(msg, ("AA", "FG", "FI")))


def _status_only_body(r: w.PunchCardPurchaseResult, ctx: ReplyContext) -> Body:
    fields: dict[str, object] = {}
    f.add_messages(fields, r.messages, ctx.encoding)
    f.add_extra(fields, r.extra, ctx.encoding)
    return {"status": f.bit(r.ok)}, fields


def _unparse_punch_card_purchase(req: rq.PunchCardPurchase, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"AA": req.patron_id, "FG": req.selection or None, "FI": req.payment_method or None}
    f.add_extra(fields, req.extra, "utf-8")
    return {"transaction_date": sip_date(ctx.now)}, fields


PUNCH_CARD_PURCHASE = Exchange(
    "Y3", "punch_card_purchase", _parse_punch_card_purchase, _status_only_body,
    lambda msg, screen: w.PunchCardPurchaseResult(ok=False, messages=_screen(screen)),
    _unparse_punch_card_purchase,
    lambda msg: w.PunchCardPurchaseResult(ok=msg.fixed.get("status") == "1", messages=f.messages(msg),
                                          extra=f.extra_fields(msg, ("AF", "AG"))),
    side_effect=True)


def _username(msg: Message) -> str:
    """FO; the manual's example spells it FP."""
    return msg.get("FO") or msg.get("FP") or ""


def _parse_save_username(msg: Message) -> rq.UsernameRequest:
    return rq.UsernameRequest(patron_id=f.text(msg, "AA"), username=_username(msg), patron_pin=pin(msg),
                              extra=f.extra_fields(msg, ("FO", "FP", "AA", "AD")))


def _save_username_body(r: w.UsernameResult, ctx: ReplyContext) -> Body:
    enc = ctx.encoding
    fields: dict[str, object] = {"AA": f.clean(r.patron_id, enc), "FO": f.clean(r.username, enc)}
    f.add_messages(fields, r.messages, enc)
    f.add_extra(fields, r.extra, enc)
    return {"status": "0" if r.ok else "1"}, fields  # X2's status is inverted: 0 = OK


def _unparse_save_username(req: rq.UsernameRequest, ctx: RequestContext) -> Body:
    fields: dict[str, object] = {"FO": req.username, "AA": req.patron_id, "AD": req.patron_pin or ""}
    f.add_extra(fields, req.extra, "utf-8")
    return {}, fields


SAVE_USERNAME = Exchange(
    "X1", "save_username", _parse_save_username, _save_username_body,
    lambda msg, screen: w.UsernameResult(ok=False, patron_id=f.text(msg, "AA"), username=_username(msg),
                                         messages=_screen(screen)),
    _unparse_save_username,
    lambda msg: w.UsernameResult(ok=msg.fixed.get("status") == "0", patron_id=f.text(msg, "AA"),
                                 username=f.text(msg, "FO"), messages=f.messages(msg),
                                 extra=f.extra_fields(msg, ("AA", "FO", "AF", "AG"))),
    side_effect=True)
