"""Patron status (23), information (63), block (01), enable (25), end session (35)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from tests.acs.conftest import MAIN, Library, fired

F = m.PatronFlag


def status(lib: Library, patron: str, pin: str | None = None) -> m.PatronStatus:
    return fired(lib.acs.patron_status(MAIN, rq.PatronStatusRequest(patron, pin)))


def info(lib: Library, patron: str, pin: str | None = "1234", which: m.ItemList | None = None,
         start: int | None = None, end: int | None = None) -> m.PatronInformation:
    return fired(lib.acs.patron_information(MAIN, rq.PatronInformationRequest(patron, pin, which, start, end)))


def test_patron_in_good_standing(lib: Library) -> None:
    s = status(lib, "100001", "1234")
    assert s.valid and s.pin_valid is True and s.flags == frozenset() and s.name == "Ada Lovelace"
    assert s.language == "001" and s.currency == "USD" and s.fee_amount == Decimal("0.00")
    assert s.fee_limit == Decimal("10.00") and s.email == "ada@example.org"
    assert "1 hold(s) waiting for you" in s.messages.screen


def test_no_pin_given_means_no_pin_verdict(lib: Library) -> None:
    assert status(lib, "100001").pin_valid is None


def test_wrong_pin_hides_contact_details_and_money(lib: Library) -> None:
    s = status(lib, "100001", "0000")
    assert s.valid and s.pin_valid is False and s.messages.screen == ("Invalid PIN",)
    assert s.email is None and s.home_address is None and s.fee_amount is None


def test_unknown_patron(lib: Library) -> None:
    s = status(lib, "nobody", "1234")
    assert not s.valid and s.pin_valid is False and s.flags == m.UNKNOWN_PATRON_FLAGS and s.name == ""
    assert status(lib, "nobody").pin_valid is None


def test_blocked_patron_with_fines(lib: Library) -> None:
    s = status(lib, "100002", "1234")
    assert {F.CHARGE_DENIED, F.RENEWAL_DENIED, F.HOLD_DENIED, F.EXCESSIVE_FINES, F.EXCESSIVE_FEES} <= s.flags
    assert s.fee_amount == Decimal("12.50") and "fines owed" in s.messages.screen[0]


def test_expired_card_denies_privileges(lib: Library) -> None:
    lib.db.execute("UPDATE patrons SET expires_on = '2024-01-01' WHERE barcode = 'miker'")
    s = status(lib, "miker", "6789")
    assert {F.CHARGE_DENIED, F.RENEWAL_DENIED, F.HOLD_DENIED} <= s.flags and "expired" in s.messages.screen[0]


def test_too_many_overdue(lib: Library, now) -> None:
    lib.db.execute("UPDATE patrons SET overdue_limit = 1 WHERE barcode = 'miker'")
    assert lib.checkout("miker", "200001").ok
    now.advance(days=30)
    s = status(lib, "miker")
    assert {F.TOO_MANY_OVERDUE, F.CHARGE_DENIED} <= s.flags
    r = lib.checkout("miker", "200002")
    assert not r.ok and "overdue" in r.messages.screen[0]


def test_patron_information_counts_and_limits(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    assert lib.checkout("100001", "0440242746").ok      # 7-day loan: overdue after 8 days
    assert lib.checkout("miker", "200002").ok
    assert lib.hold("+", "100001", item_id="200002").ok
    now.advance(days=8)
    p = info(lib, "100001")
    assert (p.hold_count, p.overdue_count, p.charged_count, p.fine_count, p.recall_count,
            p.unavailable_hold_count) == (1, 1, 2, 0, 0, 1)
    assert (p.hold_limit, p.overdue_limit, p.charged_limit) == (10, 5, 25)
    assert p.item_list is None and p.items == ()


def test_patron_information_item_lists(lib: Library, now) -> None:
    for item in ("200001", "200002", "660"):
        assert lib.checkout("100001", item).ok
    assert lib.hold("+", "100001", title_id="Perl 5 desktop reference").ok
    assert info(lib, "100001", which=m.ItemList.CHARGED).items == ("200001", "200002", "660")
    assert info(lib, "100001", which=m.ItemList.HOLD).items == ("200003",)
    assert info(lib, "100001", which=m.ItemList.UNAVAILABLE_HOLD).items == ("Perl 5 desktop reference",)
    assert info(lib, "100001", which=m.ItemList.OVERDUE).items == ()
    now.advance(days=30)
    assert info(lib, "100001", which=m.ItemList.OVERDUE).items == ("200001", "200002", "660")
    assert info(lib, "100001", which=m.ItemList.RECALL).items == ()
    fines = info(lib, "100002", which=m.ItemList.FINE).items
    assert len(fines) == 1 and fines[0].split(" ")[1:3] == ["12.50", "USD"]


def test_item_list_is_cut_to_start_and_end(lib: Library) -> None:
    for item in ("200001", "200002", "660", "0440242746"):
        assert lib.checkout("100001", item).ok
    charged = m.ItemList.CHARGED
    # soonest due first: the 7-day audio tape, then the books in checkout order
    assert info(lib, "100001", which=charged).items == ("0440242746", "200001", "200002", "660")
    assert info(lib, "100001", which=charged, start=2, end=3).items == ("200001", "200002")
    assert info(lib, "100001", which=charged, start=3).items == ("200002", "660")
    assert info(lib, "100001", which=charged, end=1).items == ("0440242746",)
    assert info(lib, "100001", which=charged, start=9, end=12).items == ()
    assert info(lib, "100001", which=charged, start=3, end=2).items == ()


def test_patron_information_unknown_or_wrong_pin(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    p = info(lib, "100001", "0000", m.ItemList.CHARGED)
    assert p.pin_valid is False and p.items == () and p.charged_count == 0
    p = info(lib, "nobody", "1234", m.ItemList.CHARGED)
    assert not p.valid and p.flags == m.UNKNOWN_PATRON_FLAGS


def test_block_patron_sets_the_block(lib: Library) -> None:
    s = fired(lib.acs.block_patron(MAIN, rq.BlockPatronRequest("djfiander", "Card retained: see staff", True)))
    assert s.valid and {F.CHARGE_DENIED, F.RENEWAL_DENIED, F.RECALL_DENIED, F.HOLD_DENIED} <= s.flags
    assert s.messages.screen[0] == "Card retained: see staff" and "retained" in s.messages.screen[-1]
    row = lib.row("SELECT * FROM patrons WHERE barcode = 'djfiander'")
    assert (row["blocked"], row["block_message"], row["card_retained"]) == (1, "Card retained: see staff", 1)
    assert not lib.checkout("djfiander", "200001").ok
    assert lib.log()[-2]["operation"] == "block_patron"


def test_block_with_no_message_gets_a_default(lib: Library) -> None:
    fired(lib.acs.block_patron(MAIN, rq.BlockPatronRequest("miker", "", False)))
    assert lib.value("SELECT block_message FROM patrons WHERE barcode = 'miker'")


def test_block_unknown_patron(lib: Library) -> None:
    s = fired(lib.acs.block_patron(MAIN, rq.BlockPatronRequest("nobody", "x", False)))
    assert not s.valid and lib.log()[-1]["ok"] == 0


def test_patron_enable_clears_the_block(lib: Library) -> None:
    fired(lib.acs.block_patron(MAIN, rq.BlockPatronRequest("djfiander", "blocked", False)))
    s = fired(lib.acs.patron_enable(MAIN, rq.PatronEnableRequest("djfiander", "6789")))
    assert s.valid and s.pin_valid and F.CHARGE_DENIED not in s.flags
    assert lib.value("SELECT blocked FROM patrons WHERE barcode = 'djfiander'") == 0
    assert lib.checkout("djfiander", "200001").ok


def test_patron_enable_with_a_wrong_pin_changes_nothing(lib: Library) -> None:
    s = fired(lib.acs.patron_enable(MAIN, rq.PatronEnableRequest("100002", "0000")))
    assert s.pin_valid is False
    assert lib.value("SELECT blocked FROM patrons WHERE barcode = '100002'") == 1
    assert not fired(lib.acs.patron_enable(MAIN, rq.PatronEnableRequest("nobody", None))).valid


def test_patron_enable_leaves_fines_in_force(lib: Library) -> None:
    s = fired(lib.acs.patron_enable(MAIN, rq.PatronEnableRequest("100002", "1234")))
    assert F.EXCESSIVE_FEES in s.flags and F.CHARGE_DENIED in s.flags


def test_end_session_always_ends(lib: Library) -> None:
    for patron, pin in (("100001", "1234"), ("nobody", None), ("100001", "wrong")):
        r = fired(lib.acs.end_session(MAIN, rq.EndSessionRequest(patron, pin)))
        assert r.ended and r.patron_id == patron


def test_transaction_time_is_the_injected_clock(lib: Library, now) -> None:
    now.current = datetime(2024, 6, 1, 8, 0, 0)
    assert lib.checkout("100001", "200001").ok
    assert lib.open_loan("200001")["out_at"] == "2024-06-01 08:00:00"
