"""Capturing what the gateway logs while a test runs."""

from __future__ import annotations

from collections.abc import Iterator

from twisted.logger import formatEvent, globalLogPublisher


class Logged:
    """Every event logged while the test runs, formatted."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def lines(self, containing: str = "") -> list[str]:
        return [text for text in map(formatEvent, self.events) if containing in text]

    def clear(self) -> None:
        self.events.clear()


def capture() -> Iterator[Logged]:
    """For a fixture: ``yield from capture()``."""
    logged = Logged()
    globalLogPublisher.addObserver(logged)
    try:
        yield logged
    finally:
        globalLogPublisher.removeObserver(logged)
