"""Item information (17) and item status update (19)."""

from __future__ import annotations

from datetime import datetime

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from tests.acs.conftest import MAIN, Library, fired


def item(lib: Library, barcode: str) -> m.ItemInformation:
    return fired(lib.acs.item_information(MAIN, rq.ItemInformationRequest(barcode)))


def test_available_item(lib: Library) -> None:
    i = item(lib, "1565921879")
    assert i.circulation_status is m.CirculationStatus.AVAILABLE and i.title == "Perl 5 desktop reference"
    assert i.security_marker is m.SecurityMarker.TATTLE_TAPE and i.media_type == "001"
    assert i.permanent_location == "MAIN" and i.call_number == "QA76.73.P33V76 1996" and i.owner == "MAIN"
    assert i.due_date is None and i.hold_queue_length == 0


def test_charged_item_shows_its_due_date_and_queue(lib: Library) -> None:
    assert lib.checkout("100001", "200001").ok
    assert lib.hold("+", "miker", item_id="200001").ok
    assert lib.hold("+", "djfiander", title_id="Sketch of the Analytical Engine").ok
    i = item(lib, "200001")
    assert i.circulation_status is m.CirculationStatus.CHARGED
    assert i.due_date == datetime(2024, 1, 26, 23, 59, 59) and i.hold_queue_length == 2


def test_unknown_item(lib: Library) -> None:
    i = item(lib, "nope")
    assert i.circulation_status is m.CirculationStatus.OTHER and i.title == "" and i.messages.screen


def test_item_information_writes_nothing(lib: Library) -> None:
    before = lib.value("SELECT count(*) FROM circulation_log")
    item(lib, "200001")
    assert lib.value("SELECT count(*) FROM circulation_log") == before


def test_item_status_update_stores_the_properties(lib: Library) -> None:
    r = fired(lib.acs.item_status_update(MAIN, rq.ItemStatusUpdateRequest("200002", "damaged cover")))
    assert r.ok and r.item_properties == "damaged cover" and r.title == "The Difference Engine"
    assert lib.value("SELECT properties FROM items WHERE barcode = '200002'") == "damaged cover"
    assert item(lib, "200002").item_properties == "damaged cover"
    assert lib.log()[-1]["operation"] == "item_status_update"


def test_item_status_update_of_an_unknown_item(lib: Library) -> None:
    r = fired(lib.acs.item_status_update(MAIN, rq.ItemStatusUpdateRequest("nope", "x")))
    assert not r.ok and r.messages.screen
