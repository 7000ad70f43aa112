"""Usage figures written by the database process (usagestore.py), on both databases."""

from __future__ import annotations

from tests.acs.conftest import fired


def test_figures_of_the_same_request_add_up_and_old_days_are_dropped(lib) -> None:
    figure = ("2026-11-27", "MAIN", "sip", "kiosk", "T1", "11", "ok")
    old = ("2026-10-01", "MAIN", "sip", "kiosk", "T1", "11", "ok")
    assert fired(lib.acs.record_usage(((*figure, 2), (*old, 1)), "2026-01-01")) == 2
    assert fired(lib.acs.record_usage(((*figure, 3),), "2026-11-01")) == 1
    assert [tuple(r) for r in lib.rows("SELECT day, code, requests FROM usage_figures ORDER BY day")] == [
        ("2026-11-27", "11", 5)]
