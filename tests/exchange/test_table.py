"""The request table, both directions, as properties.

Every entry turns a model request into a SIP2 request and back to the same model request,
and a model result into a reply and back to the same result (for what the wire can carry:
text without separators, whole seconds, amounts in cents).  The forwarding backend relies on
the inverse direction; the session on the forward one.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs import wise as w
from sipgateway.exchange import EXCHANGES, SIDE_EFFECT_CODES, BadRequest, ReplyContext, RequestContext
from sipgateway.sip2 import MESSAGES, format_message, parse

# --- strategies: what the wire can carry ------------------------------------------------

_CHARS = st.characters(min_codepoint=0x20, max_codepoint=0x2FF, blacklist_characters="|\x7f")
text = st.text(_CHARS, min_size=0, max_size=40).map(str.strip)
word = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="|"),
               min_size=1, max_size=20)
opt_word = st.none() | word
dates = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda d: d.replace(microsecond=0))
opt_dates = st.none() | dates
cents = st.integers(min_value=0, max_value=10_000_000).map(lambda c: (Decimal(c) / 100).quantize(Decimal("0.01")))
opt_cents = st.none() | cents
pins = st.none() | st.text(st.characters(min_codepoint=0x30, max_codepoint=0x39), min_size=1, max_size=8)
language = st.sampled_from(["000", "001", "002", "021"])
counts = st.integers(min_value=0, max_value=9999)
opt_counts = st.none() | counts
screens = st.lists(st.text(_CHARS, min_size=1, max_size=60).map(str.strip).filter(bool), max_size=3).map(tuple)
msgs = st.builds(m.Messages, screen=screens, print_lines=screens)
yn_u = st.none() | st.booleans()
media = st.none() | st.sampled_from(["000", "001", "006"])
# OCLC Wise SIP2+: the parts of a '~'-joined line hold no '~'; dates are days
part = text.map(lambda t: t.replace("~", "-").strip())
days = st.dates(min_value=date(1990, 1, 1), max_value=date(2099, 12, 31))
opt_days = st.none() | days
licence = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789"), min_size=1, max_size=24)

REQUESTS = {
    "93": st.builds(rq.LoginRequest, user=word, password=word, location=word),
    "99": st.builds(rq.StatusRequest, status_code=st.sampled_from("012"), max_print_width=st.integers(0, 999),
                    protocol_version=st.sampled_from(["2.00", "1.00"])),
    "23": st.builds(rq.PatronStatusRequest, patron_id=word, patron_pin=pins, language=language),
    "63": st.builds(rq.PatronInformationRequest, patron_id=word, patron_pin=pins,
                    item_list=st.none() | st.sampled_from(list(m.ItemList)), start=st.none() | st.integers(1, 99),
                    end=st.none() | st.integers(1, 99), language=language),
    "01": st.builds(rq.BlockPatronRequest, patron_id=word, message=text, card_retained=st.booleans()),
    "25": st.builds(rq.PatronEnableRequest, patron_id=word, patron_pin=pins),
    "35": st.builds(rq.EndSessionRequest, patron_id=word, patron_pin=pins),
    "11": st.builds(rq.CheckoutRequest, patron_id=word, item_id=word, patron_pin=pins, no_block=st.booleans(),
                    nb_due_date=opt_dates, renewal_policy=st.booleans(), fee_acknowledged=st.booleans(),
                    cancel=st.booleans(), item_properties=opt_word, transaction_date=dates),
    "29": st.builds(rq.CheckoutRequest, patron_id=word, item_id=word, patron_pin=pins, no_block=st.booleans(),
                    nb_due_date=opt_dates, third_party=st.booleans(), fee_acknowledged=st.booleans(),
                    item_properties=opt_word, title_id=opt_word, transaction_date=dates),
    "65": st.builds(rq.RenewAllRequest, patron_id=word, patron_pin=pins, fee_acknowledged=st.booleans()),
    "09": st.builds(rq.CheckinRequest, item_id=word, return_date=opt_dates, current_location=word,
                    no_block=st.booleans(), cancel=st.booleans(), item_properties=opt_word, transaction_date=dates),
    "17": st.builds(rq.ItemInformationRequest, item_id=word),
    "19": st.builds(rq.ItemStatusUpdateRequest, item_id=word, item_properties=word),
    "15": st.builds(rq.HoldRequest, mode=st.sampled_from(list(m.HoldMode)), patron_id=word, patron_pin=pins,
                    item_id=word, title_id=opt_word, pickup_location=opt_word, expiration_date=opt_dates,
                    hold_type=st.none() | st.integers(1, 4), fee_acknowledged=st.booleans()),
    "37": st.builds(rq.FeePayment, patron_id=word, amount=cents, currency=st.sampled_from(["USD", "EUR"]),
                    fee_type=st.sampled_from(list(m.FeeType)), payment_type=st.integers(0, 99), patron_pin=pins,
                    fee_id=opt_word, transaction_id=opt_word, membership=opt_cents, registrations=opt_cents,
                    deposit=opt_cents, tracking=opt_word),
    "39": st.builds(rq.UsageDebit, amount=cents, journal_code=st.sampled_from(["2910", "3100", "4000", "x"]),
                    payment_method=st.sampled_from([0, 1, 2, 3, 9, 42]), patron_id=opt_word),
    "41": st.builds(rq.PaymentsOverviewRequest, patron_id=word, date_from=days, date_to=days,
                    payment_method=st.none() | st.integers(0, 99), contributions=st.booleans(),
                    registrations=st.booleans(), deposit=st.booleans(), open_only=st.booleans(),
                    punches_only=st.booleans()),
    "70": st.builds(rq.RenewalOptionsRequest, patron_id=word, item_id=opt_word),
    "Y1": st.builds(rq.PunchCardOptionsRequest, patron_id=word),
    "Y3": st.builds(rq.PunchCardPurchase, patron_id=word, selection=text, payment_method=st.sampled_from(["", "00"])),
    "X1": st.builds(rq.UsernameRequest, patron_id=word, username=word, patron_pin=pins),
}

_patron = dict(patron_id=word, name=text, valid=st.booleans(), pin_valid=yn_u,
               flags=st.frozensets(st.sampled_from(list(m.PatronFlag))), language=st.sampled_from(["001", "002"]),
               messages=msgs)
_money = dict(currency=st.sampled_from(["USD", "EUR"]), fee_amount=cents)

RESULTS = {
    "93": st.booleans(),
    "99": st.builds(m.ACSStatus, online=st.booleans(), checkin_ok=st.booleans(), checkout_ok=st.booleans(),
                    renewal_ok=st.booleans(), status_update_ok=st.booleans(), offline_ok=st.booleans(),
                    timeout_period=st.integers(0, 999), retries_allowed=st.integers(0, 999), institution=word,
                    library_name=word, terminal_location=word,
                    supported=st.frozensets(st.sampled_from(["23", "11", "09", "01", "63", "35", "37", "17", "19",
                                                             "25", "15", "29", "65"]))
                    .map(lambda s: s | {"93", "97", "99"}),
                    messages=msgs, licences=st.lists(licence, max_size=4).map(tuple)),
    "23": st.builds(m.PatronStatus, **_patron, **_money),
    "25": st.builds(m.PatronStatus, **_patron),
    "63": st.builds(m.PatronInformation, **_patron, **_money, hold_count=counts, overdue_count=counts,
                    charged_count=counts, fine_count=counts, recall_count=counts, unavailable_hold_count=counts,
                    hold_limit=opt_counts, overdue_limit=opt_counts, charged_limit=opt_counts, fee_limit=opt_cents,
                    item_list=st.sampled_from(list(m.ItemList)),
                    items=st.lists(word, min_size=1, max_size=4).map(tuple), home_address=opt_word,
                    email=opt_word, phone=opt_word),
    "11": st.builds(m.CirculationResult, ok=st.just(True), patron_id=word, item_id=word, title=text,
                    renewal_ok=st.booleans(), magnetic_media=yn_u, desensitize=yn_u, due_date=dates,
                    fee_type=st.sampled_from(list(m.FeeType)), fee_amount=cents, currency=st.sampled_from(["USD"]),
                    security_inhibit=yn_u, media_type=media, item_properties=opt_word, transaction_id=opt_word,
                    messages=msgs),
    "65": st.builds(m.RenewAllResult, ok=st.booleans(), renewed=st.lists(word, max_size=3).map(tuple),
                    unrenewed=st.lists(word, max_size=3).map(tuple), messages=msgs),
    "09": st.builds(m.CheckinResult, ok=st.booleans(), item_id=word, permanent_location=word, title=opt_word,
                    resensitize=st.booleans(), magnetic_media=yn_u, alert=st.just(True),
                    alert_type=st.sampled_from(list(m.AlertType)), sort_bin=opt_word, patron_id=opt_word,
                    media_type=media, item_properties=opt_word, collection_code=opt_word, call_number=opt_word,
                    destination_location=opt_word, hold_patron_id=opt_word, hold_patron_name=opt_word,
                    messages=msgs),
    "17": st.builds(m.ItemInformation, item_id=word, circulation_status=st.sampled_from(list(m.CirculationStatus)),
                    security_marker=st.sampled_from(list(m.SecurityMarker)), fee_type=st.sampled_from(list(m.FeeType)),
                    title=text, hold_queue_length=st.none() | st.integers(0, 99), due_date=opt_dates,
                    recall_date=opt_dates, hold_pickup_date=opt_dates, owner=opt_word, currency=st.just("USD"),
                    fee_amount=cents, media_type=media, permanent_location=opt_word, current_location=opt_word,
                    item_properties=opt_word, destination_location=opt_word, call_number=opt_word, messages=msgs),
    "19": st.builds(m.ItemStatusUpdateResult, ok=st.booleans(), item_id=word, title=opt_word,
                    item_properties=opt_word, messages=msgs),
    "15": st.builds(m.HoldResult, ok=st.booleans(), patron_id=word, available=st.booleans(),
                    expiration_date=opt_dates, queue_position=st.none() | st.integers(0, 999),
                    pickup_location=opt_word, item_id=opt_word, title=opt_word, messages=msgs),
    "35": st.builds(m.EndSessionResult, ended=st.booleans(), patron_id=word, messages=msgs),
    "37": st.builds(m.FeePaidResult, accepted=st.booleans(), patron_id=word, transaction_id=opt_word, messages=msgs,
                    fee_limit=opt_cents),
    "39": st.builds(w.UsageDebitResult, accepted=st.booleans(), patron_id=opt_word, fee_limit=opt_cents,
                    messages=msgs),
    "41": st.one_of(
        st.builds(w.PaymentsOverview, messages=msgs, payments=st.lists(st.builds(
            w.Payment, day=days, kind=part, amount=cents, method=part, description=part), max_size=3).map(tuple)),
        st.builds(w.PaymentsOverview, messages=msgs, open_registrations=st.lists(st.builds(
            w.OpenRegistration, created=opt_days, description=part, title=part, calculated=opt_days, amount=cents,
            status=st.sampled_from(["", "I", "D", "R", "J"]), sent_to_collector=opt_days,
            registration_id=word.map(lambda t: t.replace("~", "-")), kind=st.integers(1, 6),
            arrangement=opt_days), max_size=3).map(tuple)),
        st.builds(w.PaymentsOverview, messages=msgs, punch_balances=st.lists(st.builds(
            w.PunchBalance, name=part, balance=st.sampled_from(["0", "35", "Ransomed"])), max_size=3).map(tuple))),
    "70": st.builds(w.RenewalOptions, punches=st.integers(0, 999), messages=msgs, options=st.lists(st.builds(
        w.RenewalOption, item_id=part, title=part, due_date=opt_days, new_due_date=opt_days, fine=cents,
        loan_cost=cents, punches=st.integers(0, 99), renewal_cost=cents, remarks=part), max_size=3).map(tuple)),
    "Y1": st.builds(w.PunchCardOptions, ok=st.booleans(), messages=msgs, offers=st.lists(st.builds(
        w.PunchCardOffer, kind=part, code=part, description=part, punches=st.integers(0, 99), price=cents),
        max_size=3).map(tuple)),
    "Y3": st.builds(w.PunchCardPurchaseResult, ok=st.booleans(), messages=msgs),
    "X1": st.builds(w.UsernameResult, ok=st.booleans(), patron_id=word, username=word, messages=msgs),
}
RESULTS["01"] = RESULTS["23"]
RESULTS["29"] = RESULTS["11"]

NOW = datetime(2024, 1, 5, 10, 15)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(REQUESTS)).flatmap(lambda code: st.tuples(st.just(code), REQUESTS[code])))
def test_request_round_trip(case):
    code, request = case
    exchange = EXCHANGES[code]
    wire = format_message(*exchange.request_message(request, RequestContext("MAIN", NOW, "term", "HALL")))
    assert exchange.parse(parse(wire)) == request


def _ctx(result) -> ReplyContext:
    # a 98 built with the backend's own names; a 24/64 answering in the patron's language
    institution = getattr(result, "institution", "") or "MAIN"
    return ReplyContext(institution, NOW, "utf-8", "001")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(RESULTS)).flatmap(lambda code: st.tuples(st.just(code), RESULTS[code])))
def test_reply_round_trip(case):
    code, result = case
    exchange = EXCHANGES[code]
    reply = exchange.build(result, _ctx(result))
    assert reply[0] == MESSAGES[code].reply
    assert exchange.read(parse(format_message(*reply))) == result


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["XX", "PB", "ZZ"]), word), max_size=3, unique_by=lambda p: p[0])
       .map(tuple))
def test_vendor_fields_are_carried_through(extra):
    """Fields the model does not name come back out in the reply, in order (a repeated
    unknown tag keeps its first value, as the codec's lenient input does)."""
    result = m.ItemInformation(item_id="200001", title="T", extra=extra)
    exchange = EXCHANGES["17"]
    assert exchange.read(parse(format_message(*exchange.build(result, _ctx(result))))).extra == extra


def test_every_request_code_has_one_entry_whose_reply_is_the_specifications():
    for code, exchange in EXCHANGES.items():
        assert exchange.code == code
        assert MESSAGES[code].direction == "request"
        assert exchange.reply == MESSAGES[code].reply


def test_side_effects_are_the_writes():
    assert SIDE_EFFECT_CODES == {"11", "09", "29", "65", "37", "15", "19", "01", "25", "39", "Y3", "X1"}


@given(st.sampled_from(sorted(set(EXCHANGES) - {"93"})).flatmap(
    lambda code: st.tuples(st.just(code), REQUESTS[code])), text)
@settings(max_examples=60, deadline=None)
def test_failure_replies_say_not_done_and_format(case, screen):
    """A refusal for any request: the right reply code, formats strictly, carries the screen text."""
    code, request = case
    msg = parse(format_message(*EXCHANGES[code].request_message(request, RequestContext("MAIN", NOW))))
    screen = screen or "no"
    back = parse(format_message(*EXCHANGES[code].failure(msg, ReplyContext("MAIN", NOW), screen)))
    assert back.code == MESSAGES[code].reply
    assert back.fields["AF"] == [screen[:255]]
    for flag in ("ok", "payment_accepted", "item_properties_ok", "online_status", "end_session"):
        if flag in back.fixed:
            assert back.fixed[flag] in ("0", "N")
    if "status" in back.fixed:  # OCLC Wise Y2, Y4: 0 = not done; X2 inverted: 1 = not done
        assert back.fixed["status"] == ("1" if back.code == "X2" else "0")


def test_bad_requests_are_refused_with_their_reason():
    renew = parse(b"29NN20240105    101500                  AOMAIN|AA100001|AB|")
    try:
        EXCHANGES["29"].parse(renew)
    except BadRequest as e:
        assert "AB" in e.screen
    else:
        raise AssertionError("a renewal naming no item must be refused")


def test_wise_replies_are_read_as_wise_writes_them():
    """The forwarding direction against OCLC Wise's own examples (spaces around '~' or not)."""
    read = {code: EXCHANGES[code].read for code in ("41", "70", "Y1", "X1", "39", "37", "99")}
    r = read["41"](parse(b"42YZ01-11-2009 ~ Registration ~ 10.00 ~ Cash ~ Boete|"
                         b"YZ01-11-2009 ~ Contribution ~ 15.00 ~ cash ~ Contributie|AY3AZDCA1"))
    assert r.payments == (w.Payment(date(2009, 11, 1), "Registration", Decimal("10.00"), "Cash", "Boete"),
                          w.Payment(date(2009, 11, 1), "Contribution", Decimal("15.00"), "cash", "Contributie"))
    r = read["41"](parse(b"42FGBookpunches~35|FGPunches-2~75|FGPunches3~Ransomed|AY3AZEAD1"))
    assert r.punch_balances == (w.PunchBalance("Bookpunches", "35"), w.PunchBalance("Punches-2", "75"),
                                w.PunchBalance("Punches3", "Ransomed"))
    r = read["70"](parse(b"71GC8340450365719~Het schateiland : een oud verhaal van R.~11-11-2011~12-12-2011~0.00~"
                         b"0.15~0~0.00~|GC8340450371998~Brandt New York?~28-09-2011~26-10-2011~0.00~0.15~0~0.00~|"
                         b"FG0|AY1AZCDAF"))
    assert r.options[0] == w.RenewalOption("8340450365719", "Het schateiland : een oud verhaal van R.",
                                           date(2011, 11, 11), date(2011, 12, 12), Decimal("0.00"), Decimal("0.15"),
                                           0, Decimal("0.00"), "")
    assert len(r.options) == 2 and r.punches == 0
    r = read["Y1"](parse(b"Y21FGBOEK ~ 01 ~ Boekstrippen ~ 40 ~ 15.75|FGAV ~ 02 ~ AV-strippen ~ 35 ~ 13.25|"
                         b"AFKies een strippenkaart|AY3AZDDDC"))
    assert r.ok and r.offers[0] == w.PunchCardOffer("BOEK", "01", "Boekstrippen", 40, Decimal("15.75"))
    r = read["X1"](parse(b"X20|AA20105000000011|FOjan12345|AFGebruikersnaam opgeslagen|"))
    assert r == w.UsernameResult(ok=True, patron_id="20105000000011", username="jan12345",
                                 messages=m.Messages(screen=("Gebruikersnaam opgeslagen",)))
    r = read["39"](parse(b"40Y20091116    091000AA29444000001179|AF1.00 euro paid|AG1.00 euro paid|CC9.00|AY3AZEA56"))
    assert r.accepted and r.fee_limit == Decimal("9.00") and r.patron_id == "29444000001179"
    r = read["37"](parse(b"38Y20091116    091000AOHKA-Testbibliotheek|AA29444000001179|AFBetaling akkoord|"
                         b"AGPayment agreed|CC10.00|AY2AZDF12"))
    assert r.accepted and r.fee_limit == Decimal("10.00") and r.extra == ()
    r = read["99"](parse(b"98YYYYYY30000320240105    1015002.00AOWise|BXYYYYYYNYYYYNNNYY|AMBibl.Test|"
                         b"GGLIC_SORTEER / LIC_BETAAL / LIC_MAKEN_BOEKINGEN / LIC_VERLENGMOGELIJKHEDEN|AFWelkom|"
                         b"AY1AZD0F1"))
    assert r.licences == ("LIC_SORTEER", "LIC_BETAAL", "LIC_MAKEN_BOEKINGEN", "LIC_VERLENGMOGELIJKHEDEN")


def test_wise_requests_are_parsed_as_wise_sends_them():
    deposit = EXCHANGES["37"].parse(parse(b"3720200117    1347060100EURBV1.25|AOWise|AA28340011105903|AC|AD|CG|BK|"
                                          b"FX12345|FC1.25|AY1AZE90C"))
    assert (deposit.deposit, deposit.tracking, deposit.patron_pin, deposit.fee_id, deposit.extra) == (
        Decimal("1.25"), "12345", None, None, ())
    multi = EXCHANGES["37"].parse(parse(b"3720200117    1347060109EURBV2.50|AOWise|AA28340011105903|AC|AD|"
                                        b"CG464305+464306+|BK|FX12345|FB2.50|AY2AZE642"))
    assert (multi.payment_type, multi.registrations, multi.fee_id) == (rq.USE_DEPOSIT, Decimal("2.50"),
                                                                       "464305+464306+")
    assert EXCHANGES["39"].parse(parse(b"3920240105    101500BV0.50|FH3100|FI00|AY4AZF5E6")) == rq.UsageDebit(
        Decimal("0.50"), "3100", 0)
    assert EXCHANGES["41"].parse(parse(b"4120091116    091000AA29444000001179|FJ01-11-2009|FK30-11-2009|FI00|FAY|"
                                       b"AY3AZEE7C")) == rq.PaymentsOverviewRequest(
        "29444000001179", date(2009, 11, 1), date(2009, 11, 30), payment_method=0, contributions=True)
    assert EXCHANGES["70"].parse(parse(b"7020110907    092600|AA28340011105903|AB|AY1AZF5B0")) == \
        rq.RenewalOptionsRequest("28340011105903")
    assert EXCHANGES["X1"].parse(parse(b"X1FOjan12345|AA20105000000011|AD1234|")) == rq.UsernameRequest(
        "20105000000011", "jan12345", "1234")
