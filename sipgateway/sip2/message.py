"""The decoded form of one SIP2 message."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipgateway.sip2.messages import MESSAGES


@dataclass(slots=True)
class Message:
    """A decoded message. ``fixed``: raw, untrimmed values by snake_case name. ``fields``:
    tag -> value, repeatable tags always as lists, AY/AZ included when present, unknown
    tags kept."""

    code: str
    fixed: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str | list[str]] = field(default_factory=dict)

    @property
    def sequence(self) -> str | None:
        """The sequence number (AY), or None."""
        return self.get("AY")

    @property
    def checksum(self) -> str | None:
        """The checksum (AZ) as received, or None."""
        return self.get("AZ")

    @property
    def name(self) -> str:
        return MESSAGES[self.code].name

    def get(self, tag: str, default: str | None = None) -> str | None:
        """The value of ``tag``; for a repeatable tag its first value."""
        v = self.fields.get(tag)
        if v is None:
            return default
        if type(v) is list:
            return v[0] if v else default
        return v  # type: ignore[return-value]
