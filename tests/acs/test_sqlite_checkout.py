"""Checkout (11) and renew (29 / 65) against the demo library, with the tables checked
after each transaction."""

from __future__ import annotations

from datetime import datetime

from sipgateway.acs import requests as rq
from tests.acs.conftest import LPL, MAIN, Library, fired

DUE_21 = datetime(2024, 1, 26, 23, 59, 59)   # T0 + 21 days, end of day


def test_checkout_creates_a_loan_due_at_end_of_day(lib: Library) -> None:
    r = lib.checkout("100001", "200001", "1234")
    assert r.ok and r.pin_valid is True and r.desensitize is True and r.renewal_ok is False
    assert r.due_date == DUE_21
    assert r.title == "Sketch of the Analytical Engine" and r.media_type == "001"
    loan = lib.open_loan("200001")
    assert loan["patron"] == "100001" and loan["due_at"] == "2024-01-26 23:59:59"
    assert loan["out_at"] == "2024-01-05 10:15:00" and loan["renewals"] == 0 and loan["account"] == "sc1"
    assert r.transaction_id == f"L{loan['id']}"
    assert lib.item_status("200001") == "charged"
    log = lib.log()[-1]
    assert (log["operation"], log["ok"], log["patron"], log["item"], log["account"]) == \
        ("checkout", 1, "100001", "200001", "sc1")


def test_loan_period_depends_on_media_type(lib: Library) -> None:
    r = lib.checkout("100001", "0440242746")  # audio tape: 7 days
    assert r.ok and r.due_date == datetime(2024, 1, 12, 23, 59, 59) and r.magnetic_media is True


def test_wrong_pin_refuses_and_writes_no_loan(lib: Library) -> None:
    r = lib.checkout("100001", "200001", "9999")
    assert not r.ok and r.pin_valid is False and r.patron_valid is True
    assert r.messages.screen == ("Invalid PIN",)
    assert lib.open_loan("200001") is None and lib.item_status("200001") == "available"
    assert lib.log()[-1]["ok"] == 0
    assert "9999" not in " ".join(str(tuple(row)) for row in lib.log())


def test_unknown_patron_and_unknown_item(lib: Library) -> None:
    r = lib.checkout("nobody", "200001", "1234")
    assert not r.ok and r.patron_valid is False and r.pin_valid is False and r.messages.screen
    assert r.title == "Sketch of the Analytical Engine"
    r = lib.checkout("100001", "no-such-item")
    assert not r.ok and r.title == "" and "Unknown item" in r.messages.screen[0]
    assert lib.value("SELECT count(*) FROM loans WHERE returned_at IS NULL") == 0


def test_blocked_patron_is_refused_with_the_block_message(lib: Library) -> None:
    r = lib.checkout("100002", "200001", "1234")
    assert not r.ok and r.patron_valid is True and r.pin_valid is True
    assert "fines owed" in r.messages.screen[0]
    assert lib.open_loan("200001") is None


def test_expired_patron_is_refused(lib: Library) -> None:
    lib.db.execute("UPDATE patrons SET expires_on = '2024-01-04' WHERE barcode = 'miker'")
    r = lib.checkout("miker", "200001", "6789")
    assert not r.ok and "expired on 2024-01-04" in r.messages.screen[0]


def test_patron_over_the_fee_limit_is_refused(lib: Library) -> None:
    lib.db.execute("INSERT INTO fees (patron_id, fee_type, amount_cents, created_at) "
                   "SELECT id, 2, 1001, '2024-01-01 00:00:00' FROM patrons WHERE barcode = 'miker'")
    r = lib.checkout("miker", "200001")
    assert not r.ok and "You owe 10.01 USD, more than the limit of 10.00 USD" in r.messages.screen[0]
    lib.db.execute("UPDATE fees SET amount_cents = 1000")  # exactly the limit: still allowed
    assert lib.checkout("miker", "200001").ok


def test_charge_limit(lib: Library) -> None:
    lib.db.execute("UPDATE patrons SET charge_limit = 1 WHERE barcode = 'miker'")
    assert lib.checkout("miker", "200001").ok
    r = lib.checkout("miker", "200002")
    assert not r.ok and "limit of 1 items" in r.messages.screen[0]


def test_item_out_to_someone_else_is_refused(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    r = lib.checkout("miker", "200001")
    assert not r.ok and "checked out to another patron" in r.messages.screen[0]
    assert lib.open_loan("200001")["patron"] == "100001"


def loan_rows(lib: Library, item: str) -> list[tuple]:
    return [tuple(r) for r in lib.rows("SELECT l.id, l.due_at, l.renewals, l.returned_at FROM loans l "
                                       "JOIN items i ON i.id = l.item_id WHERE i.barcode = ?", item)]


def test_the_same_checkout_again_is_the_existing_loan(lib: Library) -> None:
    """A kiosk that lost the reply sends the 11 again: ok, the loan it made, nothing new."""
    first = lib.checkout("100001", "200001", "1234")
    before = loan_rows(lib, "200001")
    again = lib.checkout("100001", "200001", "1234")
    assert again.ok and not again.renewal_ok and again.desensitize is True and again.pin_valid is True
    assert again.due_date == first.due_date == DUE_21 and again.transaction_id == first.transaction_id
    assert again.messages.screen == ("Already checked out to you, due 2024-01-26 23:59:59",)
    assert loan_rows(lib, "200001") == before          # one loan, unchanged
    assert lib.value("SELECT count(*) FROM circulation_log WHERE operation = 'checkout' AND ok = 1") == 1
    assert [tuple(r) for r in lib.rows("SELECT operation, ok FROM circulation_log WHERE operation != 'seed_demo'")] \
        == [("checkout", 1), ("checkout_repeated", 1)]


def test_the_same_checkout_again_the_same_day_uses_up_no_renewal(lib: Library) -> None:
    """With renewals allowed, a resend the same day would not move the due date: no renewal."""
    assert lib.checkout("100001", "200001", renewal_policy=True).ok
    before = loan_rows(lib, "200001")
    again = lib.checkout("100001", "200001", renewal_policy=True)
    assert again.ok and not again.renewal_ok and again.due_date == DUE_21
    assert loan_rows(lib, "200001") == before


def test_same_patron_again_later_renews_when_the_sc_allows_it(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    now.advance(days=10)
    r = lib.checkout("100001", "200001")
    assert r.ok and not r.renewal_ok and r.due_date == DUE_21  # renewal policy N: the loan as it is
    assert lib.open_loan("200001")["renewals"] == 0
    r = lib.checkout("100001", "200001", renewal_policy=True)
    assert r.ok and r.renewal_ok and r.due_date == datetime(2024, 2, 5, 23, 59, 59)
    assert lib.open_loan("200001")["renewals"] == 1
    assert lib.log()[-1]["operation"] == "renew"
    assert len(loan_rows(lib, "200001")) == 1


def test_same_patron_again_when_no_renewal_is_allowed_gets_the_loan_as_it_is(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    lib.db.execute("UPDATE loans SET renewals = 3")                 # the renewal limit
    now.advance(days=10)
    r = lib.checkout("100001", "200001", renewal_policy=True)
    assert r.ok and not r.renewal_ok and r.due_date == DUE_21
    assert loan_rows(lib, "200001")[0][1:] == ("2024-01-26 23:59:59", 3, None)
    assert lib.hold("+", "miker", item_id="200001").ok              # someone waits: no renewal either
    lib.db.execute("UPDATE loans SET renewals = 0")
    r = lib.checkout("100001", "200001", renewal_policy=True)
    assert r.ok and not r.renewal_ok and r.due_date == DUE_21
    assert lib.open_loan("200001")["renewals"] == 0


def test_item_on_the_hold_shelf_for_another_patron(lib: Library) -> None:
    r = lib.checkout("miker", "200003")
    assert not r.ok and "on hold for another patron" in r.messages.screen[0]
    assert lib.item_status("200003") == "on_hold_shelf"


def test_checkout_by_the_holding_patron_fulfils_the_hold(lib: Library) -> None:
    r = lib.checkout("100001", "200003", "1234")
    assert r.ok
    hold = lib.row("SELECT * FROM holds")
    assert hold["status"] == "fulfilled" and hold["closed_at"] == "2024-01-05 10:15:00"
    assert lib.open_loan("200003")["hold_id"] == hold["id"]


def test_expired_hold_shelf_frees_the_item(lib: Library, now) -> None:
    now.advance(days=8)  # the pickup date was 7 days after T0
    assert lib.checkout("miker", "200003").ok
    assert lib.value("SELECT status FROM holds") == "expired"


def test_item_reserved_for_the_first_patron_in_the_queue(lib: Library) -> None:
    assert lib.hold("+", "miker", item_id="200002").ok
    r = lib.checkout("djfiander", "200002")
    assert not r.ok and "reserved for another patron" in r.messages.screen[0]
    assert lib.checkout("miker", "200002").ok
    assert lib.value("SELECT status FROM holds WHERE item_id = (SELECT id FROM items WHERE barcode = '200002')") \
        == "fulfilled"


def test_no_block_checkout_is_always_recorded(lib: Library) -> None:
    nb_due = datetime(2024, 1, 20, 12, 0, 0)
    r = lib.checkout("100002", "200001", "0000", no_block=True, nb_due_date=nb_due)  # blocked, wrong PIN
    assert r.ok and r.due_date == nb_due
    loan = lib.open_loan("200001")
    assert loan["patron"] == "100002" and loan["offline"] == 1 and loan["due_at"] == "2024-01-20 12:00:00"


def test_no_block_checkout_of_an_item_out_to_someone_else_closes_that_loan(lib: Library) -> None:
    assert lib.checkout("miker", "200001").ok
    r = lib.checkout("100001", "200001", no_block=True)
    assert r.ok and r.due_date == DUE_21
    assert lib.open_loan("200001")["patron"] == "100001"
    assert lib.value("SELECT count(*) FROM loans WHERE returned_at IS NOT NULL AND item_id = "
                     "(SELECT id FROM items WHERE barcode = '200001')") == 1


def test_no_block_takes_the_hold_shelf_copy_back_into_the_queue(lib: Library) -> None:
    assert lib.checkout("miker", "200003", no_block=True).ok
    hold = lib.row("SELECT * FROM holds")
    assert hold["status"] == "waiting" and hold["trapped_item_id"] is None


def test_cancel_undoes_the_previous_checkout(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    r = lib.checkout("100001", "200001", cancel=True)
    assert r.ok and r.due_date is None and r.messages.screen == ("Checkout cancelled",)
    assert lib.open_loan("200001") is None and lib.item_status("200001") == "available"
    assert lib.value("SELECT cancelled FROM loans WHERE item_id = (SELECT id FROM items WHERE barcode = '200001')") == 1
    r = lib.checkout("100001", "200001", cancel=True)
    assert not r.ok and "no checkout" in r.messages.screen[0]


def test_cancel_of_a_hold_pickup_puts_the_item_back_on_the_hold_shelf(lib: Library) -> None:
    assert lib.checkout("100001", "200003").ok
    assert lib.checkout("100001", "200003", cancel=True).ok
    assert lib.item_status("200003") == "on_hold_shelf"
    assert lib.value("SELECT status FROM holds") == "on_shelf"


def test_cancel_by_another_patron_is_refused(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    assert not lib.checkout("miker", "200001", cancel=True).ok
    assert lib.open_loan("200001")["patron"] == "100001"


def test_renew_extends_from_today_up_to_the_limit(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    for n in range(1, 4):
        now.advance(days=7)
        r = lib.renew("100001", "200001", "1234")
        assert r.ok and r.renewal_ok, r
        assert lib.open_loan("200001")["renewals"] == n
    assert r.due_date == datetime(2024, 2, 16, 23, 59, 59)  # T0 + 21 days of waiting + 21
    r = lib.renew("100001", "200001", "1234")
    assert not r.ok and "renewal limit (3)" in r.messages.screen[0] and r.due_date is None
    assert lib.open_loan("200001")["renewals"] == 3


def test_renew_never_shortens_a_loan(lib: Library) -> None:
    assert lib.checkout("100001", "0440242746", no_block=True, nb_due_date=datetime(2024, 3, 1)).ok
    r = lib.renew("100001", "0440242746")
    assert r.ok and r.due_date == datetime(2024, 3, 1)


def test_no_renewal_when_someone_else_holds_the_item(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    assert lib.hold("+", "miker", item_id="200001").ok
    r = lib.renew("100001", "200001")
    assert not r.ok and "on hold for another patron" in r.messages.screen[0]


def test_title_hold_also_stops_renewal(lib: Library) -> None:
    assert lib.checkout("100001", "660").ok
    assert lib.hold("+", "miker", title_id="Harry Potter y el cáliz de fuego").ok
    assert not lib.renew("100001", "660").ok


def test_renew_refusals(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    assert not lib.renew("miker", "200001").ok                      # not yours
    assert lib.renew("miker", "200001", third_party=True).ok         # unless third party allowed
    assert not lib.renew("100001", "200002").ok                     # not checked out
    assert lib.renew("100001", "200001", "0000").pin_valid is False
    lib.db.execute("UPDATE patrons SET blocked = 1 WHERE barcode = '100001'")
    assert not lib.renew("100001", "200001").ok


def test_renew_by_title(lib: Library) -> None:
    assert lib.checkout("100001", "660").ok
    r = fired(lib.acs.renew(MAIN, rq.CheckoutRequest(patron_id="100001", item_id="",
                                                    title_id="harry potter y el cáliz de fuego")))
    assert r.ok and r.item_id == "660"
    assert lib.open_loan("660")["renewals"] == 1


def test_renew_all_lists_renewed_and_unrenewed(lib: Library) -> None:
    for item in ("200001", "200002", "660"):
        assert lib.checkout("100001", item).ok
    assert lib.hold("+", "miker", item_id="200002").ok
    r = fired(lib.acs.renew_all(LPL, rq.RenewAllRequest("100001", "1234", False)))
    assert r.ok and set(r.renewed) == {"200001", "660"} and r.unrenewed == ("200002",)
    renewals = dict(lib.rows("SELECT i.barcode, l.renewals FROM loans l JOIN items i ON i.id = l.item_id "
                              "WHERE l.returned_at IS NULL"))
    assert renewals == {"200001": 1, "200002": 0, "660": 1}
    assert lib.log()[-1]["operation"] == "renew_all" and lib.log()[-1]["location"] == "LPL"


def test_renew_all_refused_for_a_blocked_patron_or_a_wrong_pin(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    assert fired(lib.acs.renew_all(MAIN, rq.RenewAllRequest("100001", "0000", False))).ok is False
    lib.db.execute("UPDATE patrons SET blocked = 1 WHERE barcode = '100001'")
    r = fired(lib.acs.renew_all(MAIN, rq.RenewAllRequest("100001", "1234", False)))
    assert not r.ok and r.unrenewed == ("200001",)
    assert lib.open_loan("200001")["renewals"] == 0
    assert fired(lib.acs.renew_all(MAIN, rq.RenewAllRequest("nobody", None, False))).ok is False
