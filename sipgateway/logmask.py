"""Masking of secrets in logged SIP2 messages: passwords and PINs never reach a log."""

from __future__ import annotations

import re

#: CO login password, AD patron password, AC terminal password
SECRET_TAGS = (b"CO", b"AD", b"AC")
_SECRET = re.compile(rb"(\||^|(?<=[0-9 Z]))(CO|AD|AC)([^|]*)")


def mask(line: bytes) -> str:
    """The message as text, with the values of CO, AD and AC replaced by ****."""
    masked = _SECRET.sub(lambda mo: mo.group(1) + mo.group(2) + (b"****" if mo.group(3) else b""), line)
    return masked.decode("utf-8", "replace")
