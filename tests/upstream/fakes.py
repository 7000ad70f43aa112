"""Fake library-system SIP2 servers with each profile's documented quirks, and an in-memory
network to reach them without sockets.

``FakeUpstream`` is a server factory; its ``Behaviour`` says which quirks it has and how it
misbehaves (slow, silent, dropping, closing on login, sending garbage). It keeps a tiny
library (items on loan, due dates) so that checkouts, renewals and checkins mean something,
and records every line it received (``received``) for the tests to assert on.

``MemoryEndpoint`` is a client endpoint that connects to a ``FakeUpstream`` through
``twisted.test.iosim`` (no sockets); the test moves bytes with ``flush`` and time with a
``Clock``. The same factory also listens on real loopback sockets where the socket is the
point (TLS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.test import iosim
from zope.interface import implementer

from sipgateway.sip2 import Message, SIP2Error, format_message, parse, sip_date
from sipgateway.transports.framing import LineSplitter

NOW = datetime(2024, 5, 6, 10, 30, 0)
DUE = datetime(2024, 5, 27, 23, 59, 0)


@dataclass
class Behaviour:
    """What a fake server does. ``profile`` switches on that system's quirks."""

    profile: str = "generic"
    accounts: dict[str, str] = field(default_factory=lambda: {"gw": "secret", "sorter1": "pw1"})
    #: seconds before each reply (the test's Clock)
    delay: float = 0.0
    #: request codes never answered
    silent_on: set[str] = field(default_factory=set)
    #: request codes on which the connection is closed instead of answered
    drop_on: set[str] = field(default_factory=set)
    #: request code -> a line sent instead of the reply
    garbage_on: dict[str, bytes] = field(default_factory=dict)
    #: close the connection on every 93
    close_on_login: bool = False
    #: how reply checksums are written: "bytes", "lowercase", "characters" or "none"
    checksum: str = "bytes"
    #: requests a FOLIO login token is good for (the sorter problem); None: forever
    token_uses: int | None = None
    #: Koha's client_timeout: close a connection idle this many seconds (None: never)
    idle_timeout: float | None = None
    #: extra: a reply whose AY differs from the request's
    wrong_sequence: bool = False
    #: extra: answer with this reply code instead of the right one
    wrong_code: str | None = None


class Library:
    """Just enough state for loans to mean something."""

    def __init__(self) -> None:
        self.titles = {"it1": "Moby|Dick", "it2": "Ulysses", "it3": "Café crème"}
        self.loans: dict[str, tuple[str, datetime]] = {}  # item -> (patron, due)
        self.log: list[str] = []

    def checkout(self, patron: str, item: str, renews_own: bool) -> tuple[bool, bool, datetime | None, str]:
        if item not in self.titles:
            return False, False, None, "Item not found"
        if item in self.loans:
            holder, due = self.loans[item]
            if holder == patron and renews_own:
                due = due + timedelta(days=21)
                self.loans[item] = (patron, due)
                self.log.append(f"renew {item} {patron}")
                return True, True, due, "Item renewed"
            return False, False, None, "Item already checked out"
        self.loans[item] = (patron, DUE)
        self.log.append(f"checkout {item} {patron}")
        return True, False, DUE, ""

    def checkin(self, item: str) -> bool:
        if self.loans.pop(item, None) is None:
            return False
        self.log.append(f"checkin {item}")
        return True


class FakeUpstreamProtocol(Protocol):
    def __init__(self, factory: FakeUpstream) -> None:
        self.factory = factory
        self.b = factory.behaviour
        self.splitter = LineSplitter(65536)
        self.logged_in: str | None = None
        self.token = 0
        self.idle_timer = None
        self.gone = False
        self.lost: Deferred = Deferred()

    @property
    def encoding(self) -> str:
        return "cp850" if self.b.profile == "folio" else "utf-8"

    @property
    def terminator(self) -> bytes:
        return b"\r\n" if self.b.profile == "koha" else b"\r"

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self._arm_idle()

    def connectionLost(self, reason=None) -> None:
        self.gone = True
        self.lost.callback(None)
        if self.idle_timer is not None and self.idle_timer.active():
            self.idle_timer.cancel()

    def _arm_idle(self) -> None:
        if self.b.idle_timeout is None:
            return
        if self.idle_timer is not None and self.idle_timer.active():
            self.idle_timer.cancel()
        self.idle_timer = self.factory.clock.callLater(self.b.idle_timeout, self.transport.loseConnection)

    def dataReceived(self, data: bytes) -> None:
        for line in self.splitter.feed(data) or []:
            self._arm_idle()
            self.factory.raw.append(line)
            try:
                msg = parse(line, self.encoding, verify=False)
            except SIP2Error:
                self.factory.received.append(Message("??"))
                continue
            self.factory.received.append(msg)
            self.handle(msg)

    # -- answering --------------------------------------------------------------------------------

    def handle(self, msg: Message) -> None:
        b, code = self.b, msg.code
        if code == "97":
            self.write_line(self.factory.last_reply or b"96")
            return
        if code in b.drop_on:
            self.transport.loseConnection()
            return
        if code in b.silent_on:
            return
        if code in b.garbage_on:
            self.later(lambda: self.write_line(b.garbage_on[code]))
            return
        if code == "99" and self.logged_in is None and b.profile in ("evergreen", "koha", "folio"):
            self.transport.loseConnection()  # "sending SC status before login not enabled, exiting"
            return
        if code == "93":
            self.login(msg)
            return
        if b.profile == "folio" and code != "99":
            if self.logged_in is None or (b.token_uses is not None and self.token <= 0):
                self.later(lambda: self.write_line(b"Access token is missing. Please login to Folio to obtain a "
                                                   b"valid access token."))
                return
            self.token -= 1
        reply = self.answer(msg)
        self.later(lambda: self.send(msg, *reply))

    def login(self, msg: Message) -> None:
        b = self.b
        ok = b.accounts.get(msg.get("CN") or "") == (msg.get("CO") or "\0")
        if b.close_on_login or (not ok and b.profile == "evergreen"):
            self.transport.loseConnection()
            return
        if ok:
            self.logged_in = msg.get("CN")
            self.token = b.token_uses if b.token_uses is not None else 1
        self.later(lambda: self.send(msg, "94", {"ok": "1" if ok else "0"}, {}))

    def answer(self, msg: Message) -> tuple[str, dict, dict]:
        code, lib = msg.code, self.factory.library
        now = sip_date(NOW)
        if code == "99":
            return "98", {"online_status": "Y", "checkin_ok": "Y", "checkout_ok": "Y", "acs_renewal_policy": "Y",
                          "status_update_ok": "N", "offline_ok": "N", "timeout_period": "030",
                          "retries_allowed": "003", "date_time_sync": now, "protocol_version": "2.00"}, \
                {"AO": "MAIN", "BX": "YYYYYYYYYYYYYYYY", "AM": "Fake Library"}
        item = msg.get("AB") or ""
        title = lib.titles.get(item, "")
        if code in ("11", "29"):
            ok, renewed, due, screen = lib.checkout(msg.get("AA") or "", item, self.b.profile == "alma"
                                                    or code == "29")
            return ("12" if code == "11" else "30"), {
                "ok": "1" if ok else "0", "renewal_ok": "Y" if renewed else "N", "magnetic_media": "N",
                "desensitize": "Y" if ok else "N", "transaction_date": now}, {
                "AO": msg.get("AO") or "", "AA": msg.get("AA") or "", "AB": item, "AJ": title,
                "AH": self.due(due), "AF": [screen] if screen else None}
        if code == "09":
            ok = lib.checkin(item)
            return "10", {"ok": "1" if ok else "0", "resensitize": "Y", "magnetic_media": "N", "alert": "N",
                          "transaction_date": now}, {"AO": msg.get("AO") or "", "AB": item, "AQ": "MAIN",
                                                     "AJ": title or None, "CT": "ANNEX"}
        if code == "17":
            loan = lib.loans.get(item)
            return "18", {"circulation_status": "04" if loan else "03", "security_marker": "00",
                          "fee_type": "01", "transaction_date": now}, {
                "AB": item, "AJ": title or "(unknown)", "AH": self.due(loan[1]) if loan else None}
        return "96", {}, {}

    def due(self, due: datetime | None) -> str:
        if due is None:
            return ""
        if self.b.profile == "evergreen":
            return due.strftime("%Y-%m-%d %H:%M:%S")  # open-ils.sip2 without due_date_use_sip_date_format
        return sip_date(due)

    def send(self, request: Message, code: str, fixed: dict, fields: dict) -> None:
        b = self.b
        code = b.wrong_code or code
        escaped = {t: _escape(v) if b.profile == "koha" else v for t, v in fields.items()}
        if b.profile != "koha":
            escaped = {t: _no_bars(v) for t, v in escaped.items()}
        body = format_message(code, fixed, escaped, encoding=self.encoding)
        seq = request.sequence
        if b.wrong_sequence and seq is not None:
            seq = str((int(seq) + 1) % 10)
        if b.checksum != "none" and request.checksum is not None:
            body += (f"AY{seq}AZ" if seq is not None else "AZ").encode("ascii")
            if b.checksum == "characters":
                total = sum(ord(c) & 0xFF for c in body.decode(self.encoding))
            else:
                total = sum(body)
            text = "%04X" % (-total & 0xFFFF)
            body += (text.lower() if b.checksum == "lowercase" else text).encode("ascii")
        self.factory.last_reply = body
        if b.profile == "symphony":  # the reply in two writes, the terminator apart
            half = len(body) // 2
            self.transport.write(body[:half])
            self.factory.clock.callLater(0.01, self.write_raw, body[half:])
            self.factory.clock.callLater(0.02, self.write_raw, self.terminator)
        else:
            self.write_line(body)

    def write_raw(self, data: bytes) -> None:
        if not self.gone:
            self.transport.write(data)

    def write_line(self, line: bytes) -> None:
        if not self.gone:
            self.transport.write(line + self.terminator)

    def later(self, action) -> None:
        if self.b.delay:
            self.factory.clock.callLater(self.b.delay, lambda: None if self.gone else action())
        else:
            action()


def _escape(value):
    """Koha's add_field: a '|' inside a value becomes "&#124;"."""
    if isinstance(value, list):
        return [v.replace("|", "&#124;") for v in value]
    return value.replace("|", "&#124;") if isinstance(value, str) else value


def _no_bars(value):
    if isinstance(value, list):
        return [v.replace("|", "/") for v in value]
    return value.replace("|", "/") if isinstance(value, str) else value


class FakeUpstream(Factory):
    """A fake library system: a server factory for iosim or a real port."""

    def __init__(self, behaviour: Behaviour | None = None, clock=None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.clock = clock if clock is not None else Clock()
        self.library = Library()
        self.received: list[Message] = []
        self.raw: list[bytes] = []
        self.connections: list[FakeUpstreamProtocol] = []
        self.last_reply: bytes | None = None

    def buildProtocol(self, addr) -> FakeUpstreamProtocol:
        return FakeUpstreamProtocol(self)

    def codes(self) -> list[str]:
        return [m.code for m in self.received]


@implementer(IStreamClientEndpoint)
class MemoryEndpoint:
    """Connects client factories to ``server`` through iosim; ``refuse`` makes connecting fail."""

    def __init__(self, server: FakeUpstream) -> None:
        self.server = server
        self.refuse = False
        self.pumps: list[iosim.IOPump] = []
        self.attempts = 0

    def connect(self, factory):
        self.attempts += 1
        if self.refuse:
            return fail(ConnectionRefusedError("refused by the test"))
        address = IPv4Address("TCP", "127.0.0.1", 6001)
        client = factory.buildProtocol(address)
        server = self.server.buildProtocol(address)
        pump = iosim.connect(server, iosim.FakeTransport(server, isServer=True),
                             client, iosim.FakeTransport(client, isServer=False), greet=False)
        self.pumps.append(pump)
        return succeed(client)

    def flush(self) -> None:
        """Move bytes (and close notices) until nothing moves."""
        for _ in range(100):
            if not any([pump.pump() for pump in self.pumps]):
                break
        self.pumps = [p for p in self.pumps if not (p.clientIO.disconnected and p.serverIO.disconnected)]
