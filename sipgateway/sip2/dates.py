"""SIP2 18-character dates: ``YYYYMMDDZZZZHHMMSS`` (the SIP2 specification's date format)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

from sipgateway.sip2.errors import SIP2Error

BLANK_DATE = " " * 18
UTC_ZONE = "   Z"
LOCAL_ZONE = "    "

_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@lru_cache(maxsize=1024)  # the same few dates (this second, due dates) come again and again
def date_problem(s: str) -> str | None:
    """Why ``s`` is not a valid SIP2 date, or None. Any 4 printable characters are a zone."""
    if len(s) != 18:
        return "bad date: wrong length"
    day, time = s[:8], s[12:]
    if not (day.isdigit() and time.isdigit() and day.isascii() and time.isascii()):
        return "bad date: non-digit in date/time"
    zone = s[8:12]
    if not (zone.isascii() and zone.isprintable()):
        return "bad date: unprintable time zone"
    # two ASCII digits compare as strings as they do as numbers
    if not _real_day(day) or time[:2] > "23" or time[2:4] > "59" or time[4:] > "59":
        return "bad date: impossible date/time"
    return None


@lru_cache(maxsize=256)  # a new second is a new date, but rarely a new day
def _real_day(day: str) -> bool:
    """``YYYYMMDD`` (8 ASCII digits) names a day of the Gregorian calendar (year 0 is not)."""
    year, month, mday = int(day[:4]), int(day[4:6]), int(day[6:])
    if not 1 <= month <= 12 or year == 0 or mday == 0:
        return False
    last = 29 if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else _DAYS[month]
    return mday <= last


def sip_date(dt: datetime, *, utc: bool = False) -> str:
    """``dt`` as ``YYYYMMDD    HHMMSS`` (local) or ``YYYYMMDD   ZHHMMSS`` (UTC).

    An aware ``dt`` is converted to UTC or to the local zone; a naive one is taken as
    already being in the zone asked for."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC) if utc else dt.astimezone()
    zone = UTC_ZONE if utc else LOCAL_ZONE
    return f"{dt.year:04d}{dt.month:02d}{dt.day:02d}{zone}{dt.hour:02d}{dt.minute:02d}{dt.second:02d}"


def parse_sip_date(s: str) -> datetime | None:
    """A naive local datetime; None for 18 spaces. UTC dates (``   Z``) are converted to
    local time so every date the session sees compares with every other; other zone
    codes are taken as local (their meaning is vendor-defined)."""
    if s == BLANK_DATE:
        return None
    problem = date_problem(s)
    if problem is not None:
        raise SIP2Error(problem, detail=repr(s))
    dt = datetime(int(s[:4]), int(s[4:6]), int(s[6:8]), int(s[12:14]), int(s[14:16]), int(s[16:]))
    if s[8:12] == UTC_ZONE:
        dt = dt.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)
    return dt
