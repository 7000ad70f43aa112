"""OCLC Wise SIP2+ overviews in the embedded library: 41 payments and open fees, 70 renewal
options; and the features it does not offer (punch cards Y1/Y3, user names X1)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs import wise as w
from sipgateway.acs.sqlite import journal
from tests.acs.conftest import MAIN, Library, fired
from tests.acs.test_sqlite_wise_money import add_fee, debit, pay

D = Decimal
JAN = (date(2024, 1, 1), date(2024, 1, 31))


def overview(lib: Library, patron: str = "100001", period: tuple[date, date] = JAN, **kw) -> w.PaymentsOverview:
    return fired(lib.acs.payments_overview(MAIN, rq.PaymentsOverviewRequest(patron, *period, **kw)))


def options(lib: Library, patron: str = "100001", item: str | None = None) -> w.RenewalOptions:
    return fired(lib.acs.renewal_options(MAIN, rq.RenewalOptionsRequest(patron, item)))


def screen(result) -> str:
    return result.messages.screen[0]


# --- 41 ---------------------------------------------------------------------------------

@pytest.fixture
def booked(lib: Library, now) -> Library:
    """On 5 January: a membership fee and a fine paid in cash, 3.00 credit bought by card;
    on 6 January: 1.00 of usage from the credit."""
    add_fee(lib, 1500, "2023-12-01 00:00:00", category=1, description="Contributie 2024")
    add_fee(lib, 1000, "2023-12-02 00:00:00", description="Boete")
    assert pay(lib, "25.00", membership=D("15.00"), registrations=D("10.00")).accepted
    assert pay(lib, "3.00", payment_type=1, deposit=D("3.00")).accepted
    now.advance(days=1)
    assert debit(lib, "1.00").accepted
    return lib


def test_payments_of_the_period_in_the_order_made(booked: Library) -> None:
    r = overview(booked)
    assert r.payments == (
        w.Payment(date(2024, 1, 5), "Contribution", D("15.00"), "Cash", "Contributie 2024"),
        w.Payment(date(2024, 1, 5), "Registration", D("10.00"), "Cash", "Boete"),
        w.Payment(date(2024, 1, 5), "Deposit", D("3.00"), "Bank", "Credit"),
        w.Payment(date(2024, 1, 6), "Usage", D("1.00"), "Deposit", "Usage 2910"),
    )
    assert r.open_registrations == () and screen(r) == "4 payment(s)"


def test_selectors_method_and_period_narrow_the_list(booked: Library) -> None:
    assert [p.kind for p in overview(booked, contributions=True).payments] == ["Contribution"]
    assert [p.kind for p in overview(booked, registrations=True, contributions=True).payments] == [
        "Contribution", "Registration"]
    assert [p.kind for p in overview(booked, deposit=True).payments] == ["Deposit", "Usage"]  # bought and spent
    assert [p.kind for p in overview(booked, payment_method=1).payments] == ["Deposit"]
    assert [p.kind for p in overview(booked, period=(date(2024, 1, 6), date(2024, 1, 6))).payments] == ["Usage"]
    empty = overview(booked, period=(date(2023, 1, 1), date(2023, 12, 31)))
    assert empty.payments == () and screen(empty) == "No payments in this period"
    backwards = overview(booked, period=(date(2024, 1, 31), date(2024, 1, 1)))
    assert backwards.payments == () and "before the date from" in screen(backwards)
    assert screen(overview(booked, patron="nobody")) == "Unknown patron; please see staff"


def test_only_the_latest_payments_are_listed(booked: Library, monkeypatch) -> None:
    monkeypatch.setattr(journal, "MAX_LINES", 2)
    r = overview(booked)
    assert [p.kind for p in r.payments] == ["Deposit", "Usage"]
    assert screen(r) == "The latest 2 payments of this period are shown"


def test_open_fees_with_the_ids_a_37_pays(lib: Library) -> None:
    lib.checkout("100001", "200001")
    item_fee = lib.db.execute("INSERT INTO fees (patron_id, item_id, fee_type, description, amount_cents, "
                              "paid_cents, created_at) VALUES (1, 1, 3, 'damage', 800, 300, '2024-01-03 09:00:00')"
                              ).lastrowid
    membership = add_fee(lib, 1500, "2024-01-02 00:00:00", category=1, description="Contributie")
    add_fee(lib, 100, "2023-12-31 23:59:59", description="before the period")
    r = overview(lib, open_only=True, contributions=True, payment_method=3)  # FD: the others are ignored
    assert r.open_registrations == (
        w.OpenRegistration(date(2024, 1, 2), "Contributie", "", date(2024, 1, 2), D("15.00"), "", None,
                           str(membership), 1),
        w.OpenRegistration(date(2024, 1, 3), "damage", "Sketch of the Analytical Engine", date(2024, 1, 3),
                           D("5.00"), "", None, str(item_fee), 2),
    )
    assert r.payments == () and screen(r) == "2 unpaid fee(s)"
    assert pay(lib, "5.00", registrations=D("5.00"), fee_id=r.open_registrations[1].registration_id).accepted
    assert [o.registration_id for o in overview(lib, open_only=True).open_registrations] == [str(membership)]


def test_the_punch_card_balance_is_not_offered(lib: Library) -> None:
    r = overview(lib, punches_only=True)
    assert r == w.PaymentsOverview(messages=m.Messages(screen=("Punch cards are not offered by this library",)))


# --- 70 ---------------------------------------------------------------------------------

def test_renewal_options_of_every_loan(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok and lib.checkout("100001", "200002").ok
    assert lib.hold("+", "miker", item_id="200002").ok
    now.advance(days=25)  # 30 January: 200001 and 200002 were due on 26 January, 4 days late
    r = options(lib)
    assert r.options == (
        w.RenewalOption("200001", "Sketch of the Analytical Engine", date(2024, 1, 26), date(2024, 2, 20),
                        D("1.00"), D("0.00"), 0, D("0.00"), ""),
        w.RenewalOption("200002", "The Difference Engine", date(2024, 1, 26), None, D("1.00"), D("0.00"), 0,
                        D("0.00"), "This item is on hold for another patron and cannot be renewed"),
    )
    assert r.punches == 0 and screen(r) == "1 of 2 item(s) can be renewed"
    # nothing was renewed; a renewal now gives the date the options said
    assert lib.open_loan("200001")["due_at"] == "2024-01-26 23:59:59"
    assert lib.open_loan("200001")["renewals"] == 0
    assert lib.renew("100001", "200001").due_date == datetime(2024, 2, 20, 23, 59, 59)
    assert not lib.renew("100001", "200002").ok


def test_renewal_options_of_one_item_and_refusals(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    for _ in range(3):
        assert lib.renew("100001", "200001").ok
    r = options(lib, item="200001")
    assert [(o.item_id, o.new_due_date, o.remarks) for o in r.options] == [
        ("200001", None, "This item has reached its renewal limit (3)")]
    assert screen(options(lib, item="200002")) == "This item is not checked out to you"
    assert screen(options(lib, patron="miker")) == "You have no items checked out"
    assert screen(options(lib, patron="nobody")) == "Unknown patron; please see staff"
    lib.db.execute("UPDATE patrons SET blocked = 1, block_message = 'Blocked' WHERE barcode = '100001'")
    assert [(o.new_due_date, o.remarks) for o in options(lib).options] == [(None, "Blocked")]


def test_a_loan_renewable_today_keeps_its_due_date(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    (option,) = options(lib).options
    assert option.due_date == option.new_due_date == date(2024, 1, 26) and option.fine == D("0.00")


# --- not offered --------------------------------------------------------------------------

def test_punch_cards_and_user_names_are_answered_not_offered(lib: Library) -> None:
    acs = lib.acs
    punch_cards = m.Messages(screen=("Punch cards are not offered by this library",))
    assert fired(acs.punch_card_options(MAIN, rq.PunchCardOptionsRequest("100001"))) == w.PunchCardOptions(
        ok=False, messages=punch_cards)
    assert fired(acs.punch_card_purchase(MAIN, rq.PunchCardPurchase("100001", "BOEK-1-15.75-4100", "00"))) == \
        w.PunchCardPurchaseResult(ok=False, messages=punch_cards)
    assert fired(acs.save_username(MAIN, rq.UsernameRequest("100001", "jan12345", "1234"))) == w.UsernameResult(
        ok=False, patron_id="100001", username="jan12345",
        messages=m.Messages(screen=("User names are not offered by this library",)))
    assert lib.log() == []  # nothing asked of the database
