"""Checks of single values, shared by every section: each error names the key and the fix."""

from __future__ import annotations

import codecs

from sipgateway.deadlines import MAX_DEADLINE_MS, MIN_DEADLINE_MS
from sipgateway.settings import TERMINATORS, ErrorDetection


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what to do."""


def number(values: dict[str, str], key: str, default: float, where: str, *, integer: bool = False,
            minimum: float = 0) -> float:
    raw = values.get(key)
    if raw is None or raw == "":
        return default
    try:
        n = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{where}: {key}={raw!r} is not {kind}") from None
    if n < minimum:
        raise ConfigError(f"{where}: {key}={raw!r} must be at least {minimum:g}")
    return n


def deadline_ms(values: dict[str, str], where: str) -> float | None:
    """The ``deadline`` key (whole milliseconds) in seconds; None when unset."""
    raw = values.get("deadline", "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not MIN_DEADLINE_MS <= int(raw) <= MAX_DEADLINE_MS:
        raise ConfigError(f"{where}: deadline={raw!r} must be a whole number of milliseconds from {MIN_DEADLINE_MS} "
                          f"to {MAX_DEADLINE_MS} (how long the devices wait for a reply, e.g. 1000)")
    return int(raw) / 1000


_ASCII = "".join(map(chr, range(128)))


def check_encoding(value: str, where: str) -> str:
    """The codec name of a character set SIP2 can carry: ASCII-compatible (every byte below
    128 means what it means in ASCII, so "|", tags and digits are found byte by byte) and
    either UTF-8 or one byte per character (a multi-byte character of Shift-JIS, GBK or Big5
    can hold the byte of "|"; UTF-16/32 and UTF-7 are not ASCII-compatible; hex, base64,
    rot13 are not character sets)."""
    try:
        name = codecs.lookup(value).name
    except LookupError:
        raise ConfigError(f"{where}: encoding={value!r} is not a known character set "
                          "(use ascii, utf-8, cp850, latin-1 or another single-byte charset)") from None
    if not _sip2_charset(name):
        raise ConfigError(f"{where}: encoding={value!r} cannot carry SIP2: it must be UTF-8 or an ASCII-compatible "
                          "single-byte charset (ascii, utf-8, cp850, cp1252, latin-1, iso-8859-15 ...)")
    return name


def _sip2_charset(name: str) -> bool:
    try:  # str.encode refuses bytes-to-bytes codecs (hex, base64, bz2) with LookupError
        if _ASCII.encode(name) != _ASCII.encode("ascii") or _ASCII.encode("ascii").decode(name) != _ASCII:
            return False
    except (UnicodeError, LookupError):
        return False
    if name == "utf-8":
        return True
    # one byte per character: no byte leaves a single-byte decoder waiting for more
    for b in range(128, 256):
        try:
            if len(codecs.getincrementaldecoder(name)().decode(bytes([b]), final=False)) != 1:
                return False
        except UnicodeDecodeError:
            continue  # a byte this charset does not use
    return True


def check_error_detection(value: str, where: str, key: str = "checksum") -> ErrorDetection:
    try:
        return ErrorDetection(value.lower())
    except ValueError:
        raise ConfigError(f"{where}: {key}={value!r} must be auto, required or off") from None


def check_terminator(value: str, where: str) -> bytes:
    try:
        return TERMINATORS[value.strip().upper()]
    except KeyError:
        raise ConfigError(f"{where}: terminator={value!r} must be CR or CRLF") from None



def yes_no(value: str, where: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "yes", "true", "on"):
        return True
    if v in ("0", "no", "false", "off"):
        return False
    raise ConfigError(f"{where}={value!r} must be yes or no")
