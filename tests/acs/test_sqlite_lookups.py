"""The one-query lookups of the checkout and checkin paths answer exactly what the
separate queries they stand for answer."""

from __future__ import annotations

from sipgateway.acs.sqlite import items, patrons
from sipgateway.acs.sqlite.context import Tx
from tests.acs.conftest import MAIN, Library


def tx(lib: Library) -> Tx:
    return Tx(lib.db, lib.acs.ctx, MAIN)


def test_find_with_loan_is_the_item_and_its_open_loan(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    t = tx(lib)
    item, loan = items.find_with_loan(t, "200001")
    assert item is not None and loan is not None
    whole_item = items.find(t, "200001")
    assert [item[c] for c in items.CIRCULATION_COLUMNS] == [whole_item[c] for c in items.CIRCULATION_COLUMNS]
    whole_loan = items.open_loan(t, whole_item)
    assert loan == {**{c: whole_loan[c] for c in items.LOAN_COLUMNS}, "borrower": "100001"}

    shelved, no_loan = items.find_with_loan(t, "200002")
    assert shelved is not None and shelved["barcode"] == "200002" and no_loan is None
    assert items.find_with_loan(t, "no such item") == (None, None)
    assert items.find_with_loan(t, "") == (None, None)


def test_holds_for_is_the_trapped_hold_and_the_waiting_queue(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    assert lib.hold("+", "miker", item_id="200001").ok
    now.advance(minutes=1)
    assert lib.hold("+", "djfiander", title_id="Sketch of the Analytical Engine").ok
    now.advance(minutes=1)
    lib.add_patron("100005")
    assert lib.hold("+", "100005", item_id="200001").ok
    t = tx(lib)
    item = items.find(t, "200001")
    assert items.holds_for(t, item) == (None, items.waiting_holds(t, item))
    assert len(items.waiting_holds(t, item)) == 3
    assert items.trapped_hold(t, item) is None

    assert lib.checkin("200001").hold_patron_id == "miker"   # miker's hold is on the shelf now
    t = tx(lib)
    trapped, queue = items.holds_for(t, item)
    assert trapped is not None and trapped["status"] == "on_shelf"
    assert (trapped, queue) == (items.trapped_hold(t, item), items.waiting_holds(t, item))
    assert [h["patron_id"] for h in queue] == [lib.value("SELECT id FROM patrons WHERE barcode = ?", b)
                                               for b in ("djfiander", "100005")]


def test_live_holds_for_expires_a_missed_pickup(lib: Library, now) -> None:
    assert lib.checkout("100001", "200001").ok
    assert lib.hold("+", "miker", item_id="200001").ok
    assert lib.checkin("200001").hold_patron_id == "miker"
    now.advance(days=30)
    t = tx(lib)
    item = items.find(t, "200001")
    hold, queue = items.live_holds_for(t, item)
    assert hold is None and queue == []
    assert lib.value("SELECT status FROM holds WHERE trapped_item_id = ?", item["id"]) == "expired"


def test_find_borrower_is_the_patron_and_the_first_part_of_their_standing(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    assert lib.hold("+", "100001", item_id="200002").ok
    t = tx(lib)
    for barcode in ("100001", "100002", "miker"):
        patron, borrowing = patrons.find_borrower(t, barcode)
        whole = patrons.find(t, barcode)
        assert patron is not None
        assert [patron[c] for c in patrons.CHARGE_COLUMNS] == [whole[c] for c in patrons.CHARGE_COLUMNS]
        s = patrons.standing(t, whole)
        assert borrowing == patrons.Borrowing(s.charged, s.overdue, s.balance_cents)
    assert patrons.find_borrower(t, "100001")[1].charged == 1
    assert patrons.find_borrower(t, "100002")[1].balance_cents > 0
    assert patrons.find_borrower(t, "nobody") == (None, None)
    assert patrons.find_borrower(t, "") == (None, None)


def test_the_hold_lookups_of_every_checkout_and_checkin_search_indexes(lib: Library) -> None:
    lib.sqlite_only("the plans checked are SQLite's (EXPLAIN QUERY PLAN)")
    # enough waiting holds on other titles that a scan would be the wrong plan
    patron = lib.value("SELECT id FROM patrons WHERE barcode = '100001'")
    lib.db.executemany("INSERT INTO holds (patron_id, item_id, title, title_key, status, queued_at, "
                       "pickup_location) VALUES (?, NULL, ?, ?, 'waiting', '2024-01-01 00:00:00', 'MAIN')",
                       [(patron, f"Title {n}", f"title {n}") for n in range(2000)])
    lib.db.execute("ANALYZE")
    item = items.find(tx(lib), "200001")
    for sql in (f"{items._TRAPPED} UNION ALL {items._WAITING} ORDER BY queued_at, id",
                f"{items._WAITING} ORDER BY queued_at, id"):
        plan = [r[3] for r in lib.db.execute("EXPLAIN QUERY PLAN " + sql, items._hold_params(tx(lib), item))]
        assert not [step for step in plan if step.startswith("SCAN")], plan
        assert any("holds_waiting_item" in step for step in plan) and any("holds_waiting_title" in step
                                                                            for step in plan), plan
