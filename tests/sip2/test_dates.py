"""SIP2 18-character dates: formatting, parsing, validation (the SIP2 specification's date format)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sipgateway.sip2 import SIP2Error, parse_sip_date, sip_date
from sipgateway.sip2.dates import date_problem


def test_local_and_utc_formats() -> None:
    dt = datetime(2024, 1, 5, 10, 15, 0)
    assert sip_date(dt) == "20240105    101500"
    assert sip_date(dt, utc=True) == "20240105   Z101500"
    assert len(sip_date(datetime(999, 2, 3, 4, 5, 6))) == 18


def test_aware_datetimes_are_converted() -> None:
    cet = timezone(timedelta(hours=1))
    dt = datetime(2024, 1, 5, 10, 15, 0, tzinfo=cet)
    assert sip_date(dt, utc=True) == "20240105   Z091500"
    local = dt.astimezone().replace(tzinfo=None)
    assert sip_date(dt) == sip_date(local)


def test_parse_local_blank_and_utc() -> None:
    assert parse_sip_date("20240105    101500") == datetime(2024, 1, 5, 10, 15, 0)
    assert parse_sip_date(" " * 18) is None
    expected = datetime(2024, 1, 5, 9, 15, tzinfo=UTC).astimezone().replace(tzinfo=None)
    assert parse_sip_date("20240105   Z091500") == expected
    assert parse_sip_date("20240105CEST101500") == datetime(2024, 1, 5, 10, 15, 0)  # other zones: as local


def test_round_trip() -> None:
    dt = datetime(2024, 2, 29, 23, 59, 59)
    assert parse_sip_date(sip_date(dt)) == dt


@pytest.mark.parametrize("text, reason", [
    ("20240105    10150", "bad date: wrong length"),
    ("2024O105    101500", "bad date: non-digit in date/time"),
    ("20240105    1015 0", "bad date: non-digit in date/time"),
    ("20240105\t   101500", "bad date: unprintable time zone"),
    ("20241305    101500", "bad date: impossible date/time"),
    ("20240100    101500", "bad date: impossible date/time"),
    ("20230229    101500", "bad date: impossible date/time"),
    ("21000229    101500", "bad date: impossible date/time"),
    ("00000105    101500", "bad date: impossible date/time"),
    ("20240105    240000", "bad date: impossible date/time"),
    ("20240105    106000", "bad date: impossible date/time"),
    ("20240105    101560", "bad date: impossible date/time"),
    ("２0240105    101500", "bad date: non-digit in date/time"),
])
def test_bad_dates(text: str, reason: str) -> None:
    with pytest.raises(SIP2Error) as caught:
        parse_sip_date(text)
    assert caught.value.reason == reason


def test_leap_years() -> None:
    assert parse_sip_date("20000229    000000") == datetime(2000, 2, 29)
    assert parse_sip_date("20240229    000000") == datetime(2024, 2, 29)


def test_date_rules_agree_with_the_calendar() -> None:
    # every digit string with a printable zone is valid exactly when datetime accepts it
    rng = random.Random(18)
    for _ in range(3000):
        year, month, day = rng.randrange(0, 3000), rng.randrange(0, 14), rng.randrange(0, 33)
        hour, minute, second = rng.randrange(0, 26), rng.randrange(0, 62), rng.randrange(0, 62)
        text = f"{year:04d}{month:02d}{day:02d}{rng.choice(['    ', '   Z', 'CEST'])}{hour:02d}{minute:02d}{second:02d}"
        try:
            datetime(year, month, day, hour, minute, second)
        except ValueError:
            assert date_problem(text) == "bad date: impossible date/time", text
        else:
            assert date_problem(text) is None, text
