"""The read cache: repeated reads are answered from memory until a write or one second."""

from __future__ import annotations

from sipgateway.acs import model as m
from sipgateway.acs import requests as rq
from sipgateway.acs.sqlite.readcache import ReadCache
from tests.acs.conftest import MAIN, fired


def status(lib, pin="1234"):
    return fired(lib.acs.patron_status(MAIN, rq.PatronStatusRequest("100001", pin)))


def test_repeated_reads_hit_until_a_write(lib) -> None:
    cache = lib.acs.cache
    first = fired(lib.acs.item_information(MAIN, rq.ItemInformationRequest("200001")))
    assert first.circulation_status is m.CirculationStatus.AVAILABLE
    hits = cache.hits
    assert fired(lib.acs.item_information(MAIN, rq.ItemInformationRequest("200001"))) is first
    assert cache.hits == hits + 1
    assert lib.checkout("100001", "200001").ok  # any write empties the cache
    assert len(cache) == 0
    info = fired(lib.acs.item_information(MAIN, rq.ItemInformationRequest("200001")))
    assert info.circulation_status is m.CirculationStatus.CHARGED


def test_answers_expire_with_the_library_clock(lib, now) -> None:
    first = status(lib)
    assert status(lib) is first
    now.advance(seconds=2)
    assert status(lib) is not first


def test_the_pin_is_part_of_the_key_and_never_stored(lib) -> None:
    right = status(lib, "1234")
    assert right.pin_valid is True
    wrong = status(lib, "9999")
    assert wrong.pin_valid is False  # not the cached answer of the right PIN
    assert status(lib, None).pin_valid is None
    for key in lib.acs.cache._entries:
        assert "1234" not in repr(key) and "9999" not in repr(key)


def test_bounded_and_switchable_off() -> None:
    t = [0.0]
    cache = ReadCache(ttl=1.0, size=3, clock=lambda: t[0])
    for k in range(3):
        cache.put(k, k)
    cache.put(3, 3)  # full: starts over rather than growing
    assert len(cache) == 1 and cache.get(3) == 3
    t[0] = 1.0
    assert cache.get(3) is None
    off = ReadCache(ttl=0)
    off.put("k", "v")
    assert off.get("k") is None
