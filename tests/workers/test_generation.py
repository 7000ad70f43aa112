"""The workers' write counts: a write on one worker empties the read cache of the others, so
a read that starts after its reply sees it, as on one process."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite import SQLiteACS
from sipgateway.acs.sqlite.readcache import ReadCache
from sipgateway.attempts import PIN_PATRON, Key, Limit
from sipgateway.workers import generation
from sipgateway.workers.child import share_read_cache
from sipgateway.workers.generation import Generation
from tests.acs.conftest import FAST, MAIN, FakeNow, fired


def test_each_worker_bumps_its_own_slot_and_the_others_see_it_once(tmp_path: Path) -> None:
    path = str(tmp_path / "generation")
    generation.create(path, 2)
    one, two = Generation(path, 1), Generation(path, 2)
    cache_one, attempts_one, cache_two = one.view(), one.view(), two.view()
    assert not cache_one.changed() and not cache_two.changed()
    cache_one.bump()
    assert cache_two.changed() and not cache_two.changed()  # seen: not again
    two.bump()
    two.bump()
    assert cache_one.changed() and attempts_one.changed()  # each view asks for itself
    attempts_one.bump()  # the process's one count: the slot only grows
    assert Path(path).read_bytes() == (2).to_bytes(8, "little") + (2).to_bytes(8, "little")
    with pytest.raises(ValueError, match="worker 3 has no slot"):
        Generation(path, 3)
    one.close()
    two.close()


def test_a_cache_is_emptied_by_another_workers_write(tmp_path: Path) -> None:
    path = str(tmp_path / "generation")
    generation.create(path, 2)
    mine, theirs = ReadCache(), ReadCache()
    mine.shared, theirs.shared = Generation(path, 1).view(), Generation(path, 2).view()
    mine.put("k", "v")
    assert mine.get("k") == "v"
    theirs.clear()  # a write on the other worker
    assert mine.get("k") is None
    mine.put("k", "v2")
    assert mine.get("k") == "v2"


def item(acs: SQLiteACS) -> m.ItemInformation:
    return fired(acs.item_information(MAIN, rq.ItemInformationRequest("200001")))


def test_a_checkout_on_one_worker_is_seen_at_once_by_the_other(tmp_path: Path) -> None:
    db, path = str(tmp_path / "gw.sqlite3"), str(tmp_path / "generation")
    now = FakeNow()
    first = SQLiteACS.synchronous(db, now=now, hash_iterations=FAST)
    first.seed_demo()
    second = SQLiteACS.synchronous(db, now=now, hash_iterations=FAST)
    generation.create(path, 2)
    for index, acs in ((1, first), (2, second)):
        share_read_cache([type("Backend", (), {"acs": acs})()], path, index)
    try:
        before = item(second)
        assert before.circulation_status is m.CirculationStatus.AVAILABLE and item(second) is before  # cached
        out = fired(first.checkout(MAIN, rq.CheckoutRequest(patron_id="100001", item_id="200001")))
        assert out.ok
        assert item(second).circulation_status is m.CirculationStatus.CHARGED
    finally:
        first.close()
        second.close()


def test_a_wrong_pin_counted_on_one_worker_is_seen_at_once_by_the_other(tmp_path: Path) -> None:
    db, path = str(tmp_path / "gw.sqlite3"), str(tmp_path / "generation")
    first = SQLiteACS.synchronous(db, hash_iterations=FAST)
    second = SQLiteACS.synchronous(db, hash_iterations=FAST)
    generation.create(path, 2)
    stores = [acs.attempt_store() for acs in (first, second)]
    for index, store in enumerate(stores, start=1):
        share_read_cache([type("Backend", (), {"attempts": store})()], path, index)
    key = Key(PIN_PATRON, "100001")
    try:
        assert fired(stores[1].read([key])) == {} and stores[1].clean([key])  # remembered: no record
        fired(stores[0].fail([Limit(key, 3, 3600.0, 3600.0)], time.time(), "10.0.0.9"))
        assert not stores[1].clean([key])
        (record,) = fired(stores[1].read([key])).values()
        assert record.failures == 1 and record.last_from == "10.0.0.9"
    finally:
        first.close()
        second.close()
