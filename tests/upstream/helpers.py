"""Shared pieces of the upstream tests: log capture, a protocol on a StringTransport, replies."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, formatEvent, globalLogPublisher

from sipgateway.acs.upstream.profiles import PROFILES
from sipgateway.acs.upstream.protocol import UpstreamProtocol
from sipgateway.acs.upstream.wire import WireSettings
from sipgateway.sip2 import checksum, format_message

CHECKIN_FIXED = {"no_block": "N", "transaction_date": "20240506    103000", "return_date": " " * 18}
CHECKIN_FIELDS = {"AP": "DESK", "AO": "MAIN", "AB": "it2"}


class LogCapture:
    """Collects log events (all levels) while a test runs: ``lines()`` gives them formatted."""

    def __init__(self, testcase) -> None:
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        testcase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def lines(self, level: LogLevel | None = None) -> list[str]:
        return [formatEvent(e) for e in self.events if level is None or e.get("log_level") == level]

    def text(self) -> str:
        return "\n".join(self.lines())


def protocol(profile: str = "generic", timeout: float = 5.0, **overrides) -> tuple[UpstreamProtocol, StringTransport,
                                                                                    Clock]:
    """A connected protocol on a StringTransport with its own Clock."""
    clock = Clock()
    settings = WireSettings.for_profile(PROFILES[profile], **overrides)
    proto = UpstreamProtocol(settings, clock, "ils.example.org:6001", timeout=timeout)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport, clock


def reply(code: str, fixed: dict, fields: dict, sequence: str | None = None, *, lower: bool = False,
          terminator: bytes = b"\r") -> bytes:
    """A server's reply line, with AY/AZ when ``sequence`` is given."""
    body = format_message(code, fixed, fields)
    if sequence is not None:
        body += f"AY{sequence}AZ".encode()
        text = checksum(body)
        body += (text.lower() if lower else text).encode()
    return body + terminator


def checkin_reply(sequence: str | None = "0", ok: str = "1", **kw) -> bytes:
    return reply("10", {"ok": ok, "resensitize": "Y", "magnetic_media": "N", "alert": "N",
                        "transaction_date": "20240506    103000"}, {"AO": "MAIN", "AB": "it2", "AQ": "MAIN"},
                 sequence, **kw)
