"""Hold (15): add on a copy or a title, cancel, change."""

from __future__ import annotations

from datetime import datetime

from tests.acs.conftest import LPL, Library


def test_hold_on_a_charged_item_gets_a_queue_position(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    r = lib.hold("+", "miker", "6789", item_id="200001")
    assert r.ok and r.queue_position == 1 and not r.available and r.pickup_location == "MAIN"
    assert r.item_id == "200001" and r.title == "Sketch of the Analytical Engine"
    assert r.expiration_date == datetime(2025, 1, 4, 23, 59, 59)
    now.advance(minutes=1)
    r = lib.hold("+", "djfiander", item_id="200001", pickup_location="LPL")
    assert r.ok and r.queue_position == 2 and r.pickup_location == "LPL"
    rows = lib.rows("SELECT p.barcode, h.status, h.pickup_location, h.hold_type FROM holds h "
                    "JOIN patrons p ON p.id = h.patron_id WHERE h.item_id IS NOT NULL AND h.status = 'waiting' "
                    "ORDER BY h.queued_at")
    assert [tuple(r) for r in rows] == [("miker", "waiting", "MAIN", 3), ("djfiander", "waiting", "LPL", 3)]


def test_hold_on_an_available_item_says_available(lib: Library) -> None:
    r = lib.hold("+", "miker", item_id="200002")
    assert r.ok and r.available


def test_title_hold(lib: Library) -> None:
    assert lib.checkout("100001", "660").ok
    r = lib.hold("+", "miker", title_id="HARRY POTTER Y EL CáLIZ DE FUEGO ")
    assert r.ok and r.queue_position == 1 and r.item_id is None and not r.available
    assert lib.value("SELECT title_key FROM holds WHERE item_id IS NULL") == "harry potter y el cáliz de fuego"
    r = lib.hold("+", "miker", title_id="No Such Book")
    assert not r.ok and "No item with this title" in r.messages.screen[0]


def test_hold_refusals(lib: Library) -> None:
    assert not lib.hold("+", "nobody", item_id="200001").ok
    assert lib.hold("+", "miker", "0000", item_id="200001").messages.screen == ("Invalid PIN",)
    assert not lib.hold("+", "miker", item_id="nope").ok
    assert not lib.hold("+", "100002", "1234", item_id="200001").ok          # blocked
    assert lib.checkout("miker", "200001").ok
    r = lib.hold("+", "miker", item_id="200001")
    assert not r.ok and "already have this item" in r.messages.screen[0]
    assert lib.hold("+", "djfiander", item_id="200001").ok
    r = lib.hold("+", "djfiander", item_id="200001")
    assert not r.ok and "already have a hold" in r.messages.screen[0]
    r = lib.hold("+", "djfiander", item_id="200002", expiration_date=datetime(2023, 1, 1))
    assert not r.ok and "past" in r.messages.screen[0]
    lib.db.execute("UPDATE patrons SET hold_limit = 1 WHERE barcode = 'djfiander'")
    r = lib.hold("+", "djfiander", item_id="660")
    assert not r.ok and "limit of 1 holds" in r.messages.screen[0]
    assert lib.value("SELECT count(*) FROM holds WHERE status = 'waiting'") == 1
    assert lib.value("SELECT count(*) FROM circulation_log WHERE operation = 'hold+' AND ok = 0") == 8


def test_hold_pickup_defaults_to_home_library_then_institution(lib: Library) -> None:
    assert lib.hold("+", "miker", item_id="200001", terminal=LPL).pickup_location == "MAIN"
    lib.add_patron("300001")
    lib.db.execute("UPDATE patrons SET home_library = '' WHERE barcode = '300001'")
    assert lib.hold("+", "300001", item_id="200001", terminal=LPL).pickup_location == "LPL"


def test_cancel_a_waiting_hold(lib: Library) -> None:
    assert lib.hold("+", "miker", item_id="200001").ok
    r = lib.hold("-", "miker", item_id="200001")
    assert r.ok and r.messages.screen == ("Hold cancelled",)
    row = lib.row("SELECT status, closed_at FROM holds WHERE item_id = (SELECT id FROM items WHERE barcode = '200001')")
    assert tuple(row) == ("cancelled", "2024-01-05 10:15:00")
    assert not lib.hold("-", "miker", item_id="200001").ok


def test_cancel_a_hold_on_the_shelf_frees_the_copy(lib: Library) -> None:
    assert lib.hold("-", "100001", "1234", item_id="200003").ok
    assert lib.item_status("200003") == "reshelving"
    assert lib.checkout("miker", "200003").ok


def test_cancel_a_title_hold(lib: Library) -> None:
    assert lib.hold("+", "miker", title_id="Perl 5 desktop reference").ok
    assert lib.hold("-", "miker", title_id="perl 5 desktop reference").ok
    assert lib.value("SELECT status FROM holds WHERE item_id IS NULL") == "cancelled"


def test_change_pickup_and_expiry(lib: Library) -> None:
    assert lib.hold("+", "miker", item_id="200001").ok
    r = lib.hold("*", "miker", item_id="200001", pickup_location="LPL", expiration_date=datetime(2024, 3, 1))
    assert r.ok and r.pickup_location == "LPL" and r.expiration_date == datetime(2024, 3, 1)
    row = lib.row("SELECT pickup_location, expires_at FROM holds WHERE status = 'waiting'")
    assert tuple(row) == ("LPL", "2024-03-01 00:00:00")
    assert not lib.hold("*", "djfiander", item_id="200001", pickup_location="LPL").ok


def test_change_pickup_of_a_hold_already_on_the_shelf_is_refused(lib: Library) -> None:
    r = lib.hold("*", "100001", item_id="200003", pickup_location="LPL")
    assert not r.ok and "already on its way" in r.messages.screen[0]
    assert lib.value("SELECT pickup_location FROM holds") == "MAIN"


def test_expired_hold_request_is_skipped(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    assert lib.hold("+", "miker", item_id="200001", expiration_date=datetime(2024, 1, 10)).ok
    now.advance(days=10)
    assert not lib.checkin("200001").alert
