"""Checkin (09): loans closed, overdue fines charged, and copies routed to the hold shelf,
another library, their home, or back on the shelf."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite.checkin import NOT_ON_LOAN
from tests.acs.conftest import LPL, MAIN, Library, fired


def test_checkin_closes_the_loan(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    now.advance(days=2)
    r = lib.checkin("200001", current_location="MAIN")
    assert r.ok and r.patron_id == "100001" and not r.alert and r.alert_type is None and r.resensitize
    assert r.permanent_location == "MAIN" and r.title == "Sketch of the Analytical Engine"
    assert r.call_number == "QA76.17 .M46 1843" and r.media_type == "001" and r.collection_code == "ADULT"
    assert lib.open_loan("200001") is None and lib.item_status("200001") == "available"
    assert lib.value("SELECT returned_at FROM loans WHERE item_id = (SELECT id FROM items WHERE barcode = '200001')") \
        == "2024-01-07 10:15:00"
    assert lib.value("SELECT count(*) FROM fees WHERE loan_id IS NOT NULL AND patron_id = "
                     "(SELECT id FROM patrons WHERE barcode = '100001')") == 0
    assert lib.log()[-1]["operation"] == "checkin"


def test_checkin_of_an_item_not_checked_out(lib: Library) -> None:
    r = lib.checkin("200001")
    assert r.ok and not r.alert and r.patron_id is None
    assert lib.item_status("200001") == "available"


def test_checkin_of_an_unknown_item(lib: Library) -> None:
    r = lib.checkin("nope")
    assert not r.ok and r.messages.screen and "Unknown item" in r.messages.screen[0]
    assert lib.log()[-1]["ok"] == 0


def test_overdue_fine_is_charged_per_day(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok   # due 2024-01-26 23:59:59
    now.advance(days=24)                          # 2024-01-29: three days late
    r = lib.checkin("200001")
    assert r.ok and "0.75 USD" in r.messages.screen[0]
    fee = lib.row("SELECT * FROM fees WHERE patron_id = (SELECT id FROM patrons WHERE barcode = '100001')")
    assert fee["amount_cents"] == 75 and fee["fee_type"] == int(m.FeeType.OVERDUE) and fee["paid_cents"] == 0
    assert lib.value("SELECT fine_fee_id FROM loans WHERE id = ?", fee["loan_id"]) == fee["id"]
    status = fired(lib.acs.patron_status(MAIN, rq.PatronStatusRequest("100001", "1234")))
    assert status.fee_amount == Decimal("0.75")


def test_return_date_is_used_for_the_fine(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    now.advance(days=40)
    r = lib.checkin("200001", return_date=datetime(2024, 1, 26, 18, 0))  # dropped in the book drop in time
    assert r.ok and r.messages.screen == ()
    assert lib.value("SELECT count(*) FROM fees WHERE loan_id IS NOT NULL AND amount_cents > 0 AND item_id = "
                     "(SELECT id FROM items WHERE barcode = '200001')") == 0
    assert lib.value("SELECT returned_at FROM loans WHERE item_id = (SELECT id FROM items WHERE barcode = '200001')") \
        == "2024-01-26 18:00:00"


def test_fine_is_capped(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    now.advance(days=400)
    lib.checkin("200001")
    assert lib.value("SELECT max(amount_cents) FROM fees WHERE item_id = "
                     "(SELECT id FROM items WHERE barcode = '200001')") == 1000


def test_checkin_traps_the_oldest_waiting_hold_for_the_hold_shelf(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    assert lib.hold("+", "miker", item_id="200001").ok
    now.advance(minutes=1)
    assert lib.hold("+", "djfiander", item_id="200001").ok
    r = lib.checkin("200001", current_location="MAIN")
    assert r.ok and r.alert and r.alert_type is m.AlertType.LOCAL_HOLD and r.sort_bin == "HOLDS"
    assert (r.hold_patron_id, r.hold_patron_name) == ("miker", "Mike Rylander")
    assert lib.item_status("200001") == "on_hold_shelf"
    holds = {row["barcode"]: row for row in lib.rows(
        "SELECT h.*, p.barcode FROM holds h JOIN patrons p ON p.id = h.patron_id WHERE h.item_id IS NOT NULL "
        "AND h.item_id = (SELECT id FROM items WHERE barcode = '200001')")}
    assert holds["miker"]["status"] == "on_shelf" and holds["miker"]["shelf_expires_at"] == "2024-01-12 23:59:59"
    assert holds["djfiander"]["status"] == "waiting"
    info = fired(lib.acs.item_information(MAIN, rq.ItemInformationRequest("200001")))
    assert info.circulation_status is m.CirculationStatus.ON_HOLD_SHELF
    assert info.hold_pickup_date == datetime(2024, 1, 12, 23, 59, 59) and info.hold_queue_length == 2


def test_title_hold_is_filled_by_any_copy(lib: Library) -> None:
    lib.add_item("660-2", "Harry Potter y el cáliz de fuego")
    assert lib.checkout("100001", "660").ok
    assert lib.checkout("djfiander", "660-2").ok
    assert lib.hold("+", "miker", title_id="Harry Potter y el cáliz de fuego").ok
    r = lib.checkin("660-2")
    assert r.alert and r.hold_patron_id == "miker"
    hold = lib.row("SELECT * FROM holds WHERE title IS NOT NULL")
    assert hold["status"] == "on_shelf" and hold["trapped_item_id"] == lib.value(
        "SELECT id FROM items WHERE barcode = '660-2'")
    assert not lib.checkin("660").alert  # the hold is filled: the other copy goes back


def test_remote_hold_sends_the_item_in_transit(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    assert lib.hold("+", "miker", item_id="200001", pickup_location="LPL").ok
    r = lib.checkin("200001", current_location="MAIN")
    assert r.alert and r.alert_type is m.AlertType.REMOTE_HOLD and r.destination_location == "LPL"
    assert r.sort_bin == "TRANSIT" and r.hold_patron_id == "miker"
    assert lib.item_status("200001") == "in_transit"
    assert tuple(lib.row("SELECT current_location, destination_location FROM items WHERE barcode = '200001'")) == (
        "MAIN", "LPL")
    assert lib.value("SELECT status FROM holds WHERE pickup_location = 'LPL'") == "in_transit"
    info = fired(lib.acs.item_information(MAIN, rq.ItemInformationRequest("200001")))
    assert info.circulation_status is m.CirculationStatus.IN_TRANSIT and info.destination_location == "LPL"
    # arriving at the pickup library, it goes on the hold shelf there
    r = lib.checkin("200001", terminal=LPL)
    assert r.alert_type is m.AlertType.LOCAL_HOLD and lib.item_status("200001") == "on_hold_shelf"
    assert lib.value("SELECT status FROM holds WHERE pickup_location = 'LPL'") == "on_shelf"


def test_item_returned_elsewhere_travels_home(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    r = lib.checkin("200001", terminal=LPL)
    assert r.ok and r.alert and r.alert_type is m.AlertType.TRANSFER and r.destination_location == "MAIN"
    assert lib.item_status("200001") == "in_transit"
    assert tuple(lib.row("SELECT current_location, destination_location FROM items WHERE barcode = '200001'")) == (
        "LPL", "MAIN")
    r = lib.checkin("200001")
    assert r.ok and not r.alert and lib.item_status("200001") == "available"
    assert lib.value("SELECT current_location FROM items WHERE barcode = '200001'") == "MAIN"


def test_item_already_on_the_hold_shelf_is_diverted_again(lib: Library) -> None:
    r = lib.checkin("200003")
    assert r.alert and r.alert_type is m.AlertType.LOCAL_HOLD and r.hold_patron_id == "100001"
    assert lib.value("SELECT shelf_expires_at FROM holds") == "2024-01-12 23:59:59"  # unchanged


def test_checkin_stores_item_properties(lib: Library) -> None:
    r = lib.checkin("200001", item_properties="2 discs")
    assert r.item_properties == "2 discs"
    assert lib.value("SELECT properties FROM items WHERE barcode = '200001'") == "2 discs"


def test_cancel_checkin_reopens_the_loan_and_undoes_fine_and_hold(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    assert lib.hold("+", "miker", item_id="200001").ok
    now.advance(days=30)
    assert lib.checkin("200001").alert
    r = lib.checkin("200001", cancel=True)
    assert r.ok and r.patron_id == "100001" and not r.resensitize
    assert lib.open_loan("200001")["patron"] == "100001" and lib.item_status("200001") == "charged"
    assert lib.value("SELECT count(*) FROM fees WHERE item_id = (SELECT id FROM items WHERE barcode = '200001')") == 0
    assert lib.value("SELECT status FROM holds WHERE item_id = (SELECT id FROM items WHERE barcode = '200001')") \
        == "waiting"
    assert not lib.checkin("200001", cancel=True).ok  # nothing to cancel while it is out


def test_no_block_checkin_is_recorded(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    r = lib.checkin("200001", no_block=True, return_date=datetime(2024, 1, 6, 9, 0))
    assert r.ok and lib.open_loan("200001") is None


# --- checked_in_ok: an item that was not on loan -----------------------------------------

STRICT_MAIN = replace(MAIN, checked_in_ok=False)  # an account with checked_in_ok = no


def _state(lib: Library) -> list[tuple]:
    """Everything a checkin may change, without ids and times that differ between runs."""
    return [tuple(r) for r in lib.rows(
        "SELECT barcode, status, current_location, destination_location FROM items ORDER BY barcode")] + [
        tuple(r) for r in lib.rows("SELECT patron_id, status, trapped_item_id FROM holds ORDER BY id")] + [
        tuple(r) for r in lib.rows("SELECT operation, ok, account, patron, item, detail FROM circulation_log "
                                   "WHERE operation != 'seed_demo' ORDER BY id")]


def test_checked_in_ok_off_answers_not_ok_with_an_alert_for_an_item_not_on_loan(lib: Library) -> None:
    r = lib.checkin("200001", terminal=STRICT_MAIN, current_location="MAIN")
    assert not r.ok and r.alert and r.alert_type is None and r.patron_id is None
    assert r.messages.screen == (NOT_ON_LOAN,)
    assert lib.item_status("200001") == "available"  # checked in all the same
    assert lib.log()[-1]["ok"] == 1 and lib.log()[-1]["detail"] == "not checked out"


def test_checked_in_ok_off_still_answers_ok_for_a_loan(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    r = lib.checkin("200001", terminal=STRICT_MAIN)
    assert r.ok and not r.alert and r.patron_id == "100001" and r.messages.screen == ()


def test_checked_in_ok_changes_the_answer_never_the_database(tmp_path: Path, now) -> None:
    # an item not on loan that a patron waits for: trapped for the hold shelf either way
    states, answers = [], []
    for terminal in (MAIN, STRICT_MAIN):
        lib = Library(tmp_path / f"{terminal.checked_in_ok}.sqlite3", now)
        try:
            assert lib.hold("+", "miker", item_id="200002").ok
            answers.append(lib.checkin("200002", terminal=terminal, current_location="MAIN"))
            states.append(_state(lib))
        finally:
            lib.acs.close()
    assert states[0] == states[1]
    lenient, strict = answers
    assert lenient.ok and not strict.ok
    assert replace(strict, ok=True, messages=lenient.messages) == lenient  # hold, bin, alert: all the same
    assert strict.alert and strict.alert_type is m.AlertType.LOCAL_HOLD and strict.sort_bin == "HOLDS"
    assert strict.messages.screen == (NOT_ON_LOAN, *lenient.messages.screen)


def test_demo_libraries_check_in_their_own_items_without_a_transit_alert(lib: Library) -> None:
    """The demo's UWOLS and LPL terminals (scclient, lpl-sc) have copies of their own."""
    uwols = m.Terminal(account="scclient", institution="UWOLS", location="")
    lpl = m.Terminal(account="lpl-sc", institution="LPL", location="")
    for terminal, item, home in ((uwols, "300001", "UWOLS"), (lpl, "400001", "LPL")):
        assert lib.checkout("100001", item, "1234", terminal=terminal).ok
        r = lib.checkin(item, terminal=terminal)
        assert r.ok and not r.alert and r.alert_type is None and r.permanent_location == home
        assert lib.item_status(item) == "available"
    r = lib.checkin("200001", terminal=uwols)   # a MAIN copy at UWOLS still goes home
    assert r.alert and r.alert_type is m.AlertType.TRANSFER and r.destination_location == "MAIN"
