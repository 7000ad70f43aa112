"""One exception family for everything the codec refuses.

``reason`` is the short phrase (the vectors' ``error``); ``str(e)`` adds which field and
where: "field transaction_date at position 5: bad date: non-digit in date/time".
Values of secret fields (CO, AD, AC) never appear in a message.
"""

from __future__ import annotations


class SIP2Error(ValueError):
    """Bad SIP2 input, or output that would break the strict output rules."""

    def __init__(self, reason: str, field: str | None = None, position: int | None = None,
                 detail: str | None = None) -> None:
        self.reason = reason
        self.field = field
        self.position = position
        self.detail = detail
        super().__init__(reason)

    def __str__(self) -> str:
        where = []
        if self.field is not None:
            where.append(f"field {self.field}")
        if self.position is not None:
            where.append(f"at position {self.position}")
        text = f"{' '.join(where)}: {self.reason}" if where else self.reason
        return f"{text} ({self.detail})" if self.detail else text


class ChecksumError(SIP2Error):
    """AZ is malformed or does not match: the SC should be asked to resend (96)."""


class UnknownMessageError(SIP2Error):
    """The two-character message code is not in the table."""
