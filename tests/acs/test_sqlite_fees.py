"""Fee paid (37): balance reduced oldest fee first (or the fee named), payments recorded."""

from __future__ import annotations

from decimal import Decimal

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from tests.acs.conftest import MAIN, Library, fired


def pay(lib: Library, amount: str, patron: str = "100002", currency: str = "USD", **kw) -> m.FeePaidResult:
    return fired(lib.acs.fee_paid(MAIN, rq.FeePayment(patron_id=patron, amount=Decimal(amount), currency=currency,
                                                     fee_type=m.FeeType.OTHER, payment_type=0, **kw)))


def balance(lib: Library, patron: str = "100002") -> int:
    return lib.value("SELECT balance_cents FROM patron_balances WHERE barcode = ?", patron)


def add_fee(lib: Library, cents: int, created: str, patron: str = "100002") -> int:
    return lib.db.execute("INSERT INTO fees (patron_id, fee_type, amount_cents, created_at) "
                          "SELECT id, 2, ?, ? FROM patrons WHERE barcode = ?", (cents, created, patron)).lastrowid


def test_payment_reduces_the_balance_and_is_recorded(lib: Library) -> None:
    r = pay(lib, "1.00", patron_pin="1234", transaction_id="POS-1")
    assert r.accepted and r.transaction_id == "POS-1" and "you now owe 11.50 USD" in r.messages.screen[0]
    assert balance(lib) == 1150
    p = lib.row("SELECT * FROM payments")
    assert (p["amount_cents"], p["currency"], p["payment_type"], p["transaction_id"], p["account"]) == \
        (100, "USD", 0, "POS-1", "sc1")
    assert lib.value("SELECT amount_cents FROM payment_allocations WHERE payment_id = ?", p["id"]) == 100
    status = fired(lib.acs.patron_status(MAIN, rq.PatronStatusRequest("100002", "1234")))
    assert status.fee_amount == Decimal("11.50")


def test_oldest_fee_is_paid_first(lib: Library) -> None:
    newer = add_fee(lib, 300, "2024-01-04 00:00:00")
    older = add_fee(lib, 200, "2023-01-01 00:00:00")
    assert pay(lib, "2.50").accepted
    paid = dict(lib.rows("SELECT id, paid_cents FROM fees"))
    assert paid[older] == 200 and paid[newer] == 0
    assert lib.value("SELECT sum(paid_cents) FROM fees") == 250


def test_the_fee_named_is_paid_first(lib: Library) -> None:
    fee = add_fee(lib, 300, "2024-01-04 00:00:00")
    assert pay(lib, "3.00", fee_id=str(fee)).accepted
    assert lib.value("SELECT paid_cents FROM fees WHERE id = ?", fee) == 300
    assert balance(lib) == 1250


def test_several_fee_ids_joined_by_plus(lib: Library) -> None:
    a = add_fee(lib, 100, "2024-01-04 00:00:00")
    b = add_fee(lib, 100, "2024-01-04 00:00:01")
    assert pay(lib, "2.00", fee_id=f"{b}+{a}+").accepted
    assert lib.value("SELECT sum(paid_cents) FROM fees WHERE id IN (?, ?)", a, b) == 200


def test_fully_paid_patron_has_no_fine_flags(lib: Library) -> None:
    assert pay(lib, "12.50").accepted and balance(lib) == 0
    s = fired(lib.acs.patron_status(MAIN, rq.PatronStatusRequest("100002", "1234")))
    assert m.PatronFlag.EXCESSIVE_FEES not in s.flags and s.fee_amount == Decimal("0.00")


def test_refusals(lib: Library) -> None:
    cases = [
        (dict(amount="12.51"), "more than what you owe"),
        (dict(amount="0"), "more than zero"),
        (dict(amount="-1"), "more than zero"),
        (dict(amount="1.005"), "whole cents"),
        (dict(amount="1", currency="EUR"), "USD only"),
        (dict(amount="1", fee_id="999"), "not an open fee"),
        (dict(amount="1", fee_id="abc"), "not valid"),
        (dict(amount="1", patron_pin="0000"), "Invalid PIN"),
        (dict(amount="1", patron="nobody"), "Unknown patron"),
    ]
    for kw, text in cases:
        r = pay(lib, **kw)
        assert not r.accepted and text in r.messages.screen[0], (kw, r)
    assert balance(lib) == 1250 and lib.value("SELECT count(*) FROM payments") == 0
    assert lib.value("SELECT count(*) FROM circulation_log WHERE operation = 'fee_paid' AND ok = 0") == len(cases)


def test_currency_is_case_insensitive_and_blank_means_ours(lib: Library) -> None:
    assert pay(lib, "1", currency="usd").accepted
    assert pay(lib, "1", currency="   ").accepted


def test_same_transaction_id_is_not_charged_twice(lib: Library) -> None:
    assert pay(lib, "1.00", transaction_id="T-7").accepted
    again = pay(lib, "1.00", transaction_id="T-7")
    assert again.accepted and "already recorded" in again.messages.screen[0]
    assert balance(lib) == 1150 and lib.value("SELECT count(*) FROM payments") == 1
    assert not pay(lib, "2.00", transaction_id="T-7").accepted


def test_generated_transaction_id(lib: Library) -> None:
    r = pay(lib, "1.00")
    assert r.transaction_id == f"P{lib.value('SELECT id FROM payments')}"


def test_other_currency_configured(tmp_path, now) -> None:
    from tests.acs.conftest import Library as Lib

    lib = Lib(tmp_path / "eur.sqlite3", now, currency="eur")
    try:
        assert pay(lib, "1", currency="EUR").accepted
        assert not pay(lib, "1", currency="USD").accepted
        assert fired(lib.acs.patron_status(MAIN, rq.PatronStatusRequest("100002", "1234"))).currency == "EUR"
    finally:
        lib.acs.close()
