"""OCLC Wise SIP2+ money in the embedded library: 37 with purposes (FA/FB/FC), CG lists, FX
and payment type 09; the credit (deposit); the fee limit CC; 39 usage debits; the journal."""

from __future__ import annotations

from decimal import Decimal

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs import wise as w
from sipgateway.acs.sqlite import outcomes
from tests.acs.conftest import MAIN, Library, fired

D = Decimal


def pay(lib: Library, amount: str, patron: str = "100001", payment_type: int = 0, **kw) -> m.FeePaidResult:
    return fired(lib.acs.fee_paid(MAIN, rq.FeePayment(patron_id=patron, amount=D(amount), currency="USD",
                                                     fee_type=m.FeeType.OTHER, payment_type=payment_type, **kw)))


def debit(lib: Library, amount: str, code: str = "2910", method: int = 9,
          patron: str | None = "100001") -> w.UsageDebitResult:
    return fired(lib.acs.usage_debit(MAIN, rq.UsageDebit(amount=D(amount), journal_code=code, payment_method=method,
                                                         patron_id=patron)))


def add_fee(lib: Library, cents: int, created: str = "2024-01-01 00:00:00", patron: str = "100001",
            category: int = 2, description: str = "fine") -> int:
    return lib.db.execute("INSERT INTO fees (patron_id, fee_type, category, description, amount_cents, created_at) "
                          "SELECT id, 2, ?, ?, ?, ? FROM patrons WHERE barcode = ?",
                          (category, description, cents, created, patron)).lastrowid


def credit(lib: Library, patron: str = "100001") -> int:
    return lib.value("SELECT deposit_cents FROM patrons WHERE barcode = ?", patron)


def paid(lib: Library, *fee_ids: int) -> list[int]:
    return [lib.value("SELECT paid_cents FROM fees WHERE id = ?", i) for i in fee_ids]


def journal(lib: Library) -> list[tuple]:
    return [tuple(r) for r in lib.rows(
        "SELECT j.kind, j.amount_cents, j.method, j.code, j.tracking, p.barcode, j.fee_id, j.account FROM journal j "
        "LEFT JOIN patrons p ON p.id = j.patron_id ORDER BY j.id")]


def nothing_written(lib: Library) -> bool:
    return lib.value("SELECT (SELECT count(*) FROM payments) + (SELECT count(*) FROM journal) + "
                     "(SELECT sum(paid_cents) FROM fees) + (SELECT sum(deposit_cents) FROM patrons)") == 0


# --- 37 ---------------------------------------------------------------------------------

def test_credit_bought_with_fc_is_kept_booked_and_reported_in_cc(lib: Library) -> None:
    r = pay(lib, "5.00", deposit=D("5.00"), tracking="12345")
    assert r.accepted and r.transaction_id == f"P{lib.value('SELECT id FROM payments')}"
    assert r.messages.screen == ("5.00 USD added to your credit; your credit is 5.00 USD",)
    assert r.fee_limit == D("15.00")  # the credit plus the 10.00 the patron may owe
    assert credit(lib) == 500
    assert journal(lib) == [("deposit", 500, 0, "", "12345", "100001", None, "sc1")]
    assert lib.value("SELECT amount_cents FROM payments") == 500


def test_listed_fees_are_paid_first_and_the_rest_goes_to_the_credit(lib: Library) -> None:
    older = add_fee(lib, 100, "2023-06-01 00:00:00")
    a, b = add_fee(lib, 300), add_fee(lib, 200)
    r = pay(lib, "6.00", registrations=D("6.00"), fee_id=f"{b}+{a}+", tracking="00042")
    assert r.accepted, r
    assert paid(lib, b, a, older) == [200, 300, 0]  # the oldest is not listed: untouched
    assert credit(lib) == 100
    assert journal(lib) == [("registration", 200, 0, "", "00042", "100001", b, "sc1"),
                            ("registration", 300, 0, "", "00042", "100001", a, "sc1"),
                            ("deposit", 100, 0, "", "00042", "100001", None, "sc1")]
    assert r.fee_limit == D("10.00")  # 1.00 credit + 10.00 - the 1.00 still owed
    assert r.messages.screen == ("Paid 5.00 USD towards 2 fee(s); 1.00 USD added to your credit; "
                                 "your credit is 1.00 USD",)


def test_each_purpose_pays_fees_of_its_kind_oldest_first(lib: Library) -> None:
    membership = add_fee(lib, 500, "2022-01-01 00:00:00", category=1, description="membership 2022")
    first, second = add_fee(lib, 300, "2023-01-01 00:00:00"), add_fee(lib, 300, "2023-02-01 00:00:00")
    r = pay(lib, "4.00", membership=D("1.00"), registrations=D("3.00"))
    assert r.accepted
    assert paid(lib, membership, first, second) == [100, 300, 0]
    assert credit(lib) == 0
    assert [row[:2] for row in journal(lib)] == [("contribution", 100), ("registration", 300)]
    # membership fees do not count against what the patron may spend: 10.00 - 3.00 owed
    assert r.fee_limit == D("7.00")


def test_paying_from_the_credit_takes_only_what_the_fees_use(lib: Library) -> None:
    assert pay(lib, "5.00", deposit=D("5.00")).accepted
    a, b = add_fee(lib, 200), add_fee(lib, 200)
    r = pay(lib, "2.50", payment_type=rq.USE_DEPOSIT, registrations=D("2.50"), fee_id=f"{a}+{b}+")
    assert r.accepted and r.messages.screen == ("Paid 2.50 USD towards 2 fee(s) from your credit; "
                                                "your credit is 2.50 USD",)
    assert paid(lib, a, b) == [200, 50] and credit(lib) == 250
    assert [row[:3] for row in journal(lib)[1:]] == [("registration", 200, 9), ("registration", 50, 9)]
    assert lib.value("SELECT amount_cents FROM payments WHERE payment_type = 9") == 250
    # without parts, a 37 paying from the credit pays fines and charges; only what is owed is taken
    r = pay(lib, "2.00", payment_type=rq.USE_DEPOSIT)
    assert r.accepted and paid(lib, b) == [200] and credit(lib) == 100
    assert r.fee_limit == D("11.00")


def test_paying_from_the_credit_is_refused_when_it_cannot_be_done(lib: Library) -> None:
    assert pay(lib, "1.00", deposit=D("1.00")).accepted
    add_fee(lib, 500)
    cases = [
        (dict(amount="1.00", deposit=D("1.00")), "Credit cannot be bought with credit"),
        (dict(amount="2.00", registrations=D("2.00")), "Your credit (1.00 USD) does not cover 2.00 USD"),
    ]
    for kw, text in cases:
        r = pay(lib, payment_type=rq.USE_DEPOSIT, **kw)
        assert not r.accepted and text in r.messages.screen[0], r
        assert r.fee_limit == D("6.00")  # reported with the refusal too
    assert credit(lib) == 100 and lib.value("SELECT count(*) FROM payments") == 1
    assert lib.value("SELECT sum(paid_cents) FROM fees WHERE patron_id = 1") == 0
    lib.db.execute("DELETE FROM fees WHERE patron_id = 1")
    r = pay(lib, "1.00", payment_type=rq.USE_DEPOSIT, registrations=D("1.00"))
    assert not r.accepted and r.messages.screen == ("You owe no fees that this payment could pay",)


def test_purposes_that_do_not_add_up_are_refused_and_nothing_is_written(lib: Library) -> None:
    add_fee(lib, 500)
    cases = [
        (dict(amount="3.00", registrations=D("1.00"), deposit=D("1.00")),
         "The amounts for FA, FB and FC add up to 2.00 USD, not to the fee amount 3.00 USD"),
        (dict(amount="1.00", registrations=D("2.00"), deposit=D("-1.00")), "cannot be negative"),
        (dict(amount="1.00", registrations=D("0.995"), deposit=D("0.005")), "whole cents"),
        (dict(amount="1.00", registrations=D("1.00"), fee_id="999"), "Fee 999 is not an open fee of yours"),
        (dict(amount="1E+20", deposit=D("1E+20")), "The amount is more than 1000000.00 USD"),
    ]
    for kw, text in cases:
        r = pay(lib, **kw)
        assert not r.accepted and text in r.messages.screen[0], (kw, r)
    assert nothing_written(lib)
    assert lib.value("SELECT count(*) FROM circulation_log WHERE operation = 'fee_paid' AND ok = 0") == len(cases)


def test_a_plain_37_still_pays_fees_only_and_is_booked(lib: Library) -> None:
    """Without purposes a 37 is SIP2's: an overpayment is refused, no CC, but the journal lists it."""
    r = pay(lib, "2.00", patron="100002", tracking="77777")
    assert r.accepted and r.fee_limit is None and credit(lib, "100002") == 0
    assert journal(lib) == [("registration", 200, 0, "", "77777", "100002", 1, "sc1")]
    assert not pay(lib, "20.00", patron="100002").accepted


def test_a_fee_listed_twice_is_paid_once(lib: Library) -> None:
    a, b = add_fee(lib, 100), add_fee(lib, 100)
    r = pay(lib, "2.00", fee_id=f"{a}+{a}+")
    assert r.accepted, r
    assert paid(lib, a, b) == [100, 100]
    assert lib.value("SELECT count(*) FROM payment_allocations WHERE fee_id = ?", a) == 1


# --- 39 ---------------------------------------------------------------------------------

def test_anonymous_usage_is_paid_in_cash_and_booked_without_a_patron(lib: Library) -> None:
    r = debit(lib, "0.50", code="3100", method=0, patron=None)
    assert r == w.UsageDebitResult(accepted=True, messages=m.Messages(screen=("Paid 0.50 USD",)))
    assert journal(lib) == [("usage", 50, 0, "3100", "", None, None, "sc1")]
    r = debit(lib, "0.50", method=9, patron=None)
    assert not r.accepted and "Anonymous usage cannot be paid from a credit" in r.messages.screen[0]
    assert len(journal(lib)) == 1


def test_a_patron_pays_usage_from_the_credit_up_to_the_fee_limit(lib: Library) -> None:
    assert pay(lib, "5.00", deposit=D("5.00")).accepted
    r = debit(lib, "1.00")
    assert r.accepted and r.patron_id == "100001" and r.fee_limit == D("14.00")
    assert r.messages.screen == ("Paid 1.00 USD from your credit",)
    assert credit(lib) == 400
    assert journal(lib)[-1] == ("usage", 100, 9, "2910", "", "100001", None, "sc1")
    # beyond the credit the rest is owed, as a fee of the journal code's category (3: sales)
    r = debit(lib, "6.00", code="3100")
    assert r.accepted and r.fee_limit == D("8.00") and r.messages.screen == ("Paid 6.00 USD, 2.00 USD of it owed",)
    assert credit(lib) == 0
    fee = lib.row("SELECT fee_type, category, description, amount_cents, paid_cents FROM fees WHERE patron_id = 1")
    assert tuple(fee) == (1, 3, "Usage 3100", 200, 0)
    status = fired(lib.acs.patron_status(MAIN, rq.PatronStatusRequest("100001", "1234")))
    assert status.fee_amount == D("2.00")
    # never above the fee limit: refused, with the limit, and nothing written
    before = journal(lib)
    r = debit(lib, "8.01")
    assert not r.accepted and r.fee_limit == D("8.00")
    assert r.messages.screen == ("You may spend 8.00 USD, less than 8.01 USD",)
    assert journal(lib) == before and credit(lib) == 0


def test_usage_debit_refusals(lib: Library) -> None:
    cases = [
        (dict(amount="0"), "more than zero"),
        (dict(amount="0.001"), "whole cents"),
        (dict(amount="1", code="1234"), "journal code (FH)"),
        (dict(amount="1", code="29"), "journal code (FH)"),
        (dict(amount="1", method=5), "payment method (FI) must be 00, 01, 02, 03 or 09"),
        (dict(amount="1", method=0), "A patron pays usage from their credit"),
        (dict(amount="1", patron="nobody"), "Unknown patron"),
        (dict(amount="1", patron="100002"), "fines owed"),
        (dict(amount="1000000.01", method=0, patron=None), "The amount is more than 1000000.00 USD"),
    ]
    for kw, text in cases:
        r = debit(lib, **kw)
        assert not r.accepted and text in r.messages.screen[0], (kw, r)
    assert journal(lib) == [] and lib.value("SELECT count(*) FROM fees") == 1
    assert lib.value("SELECT count(*) FROM circulation_log WHERE operation = 'usage_debit' AND ok = 0") == len(cases)


def test_a_usage_debit_answer_can_be_read_back_from_the_outcome_table(lib: Library) -> None:
    """Writes record their answers (outcomes.py); 40's answer is an ACS value too."""
    answer = debit(lib, "1.00")
    data = outcomes.encode([(7, answer)])
    assert outcomes.decode_recorded(data) == [(7, answer)]
