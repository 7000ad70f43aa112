"""``terminator = CR|CRLF``: per account and per listener, for every reply on the
connection (96 and 97 included), on raw TCP and after a telnet login."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sipgateway.config import ConfigError, load
from sipgateway.gateway import Gateway
from sipgateway.session import Session
from sipgateway.settings import AccountSettings, ListenerSettings
from sipgateway.sip2 import checksum
from sipgateway.transports.raw import SIPFactory
from sipgateway.transports.telnet import LOGIN_OK, TelnetSIPFactory
from tests.fakes import FakeACS

PEER = IPv4Address("TCP", "192.0.2.7", 40001)
CRLF = b"\r\n"


def raw(settings: ListenerSettings, accounts: dict[str, AccountSettings] | None = None):
    gateway = Gateway(acs=FakeACS(), reactor=Clock(), account_settings=accounts or {})
    proto = SIPFactory(gateway, settings).buildProtocol(PEER)
    wire = StringTransport(peerAddress=PEER)
    proto.makeConnection(wire)
    return proto, wire


def exchange(proto, wire: StringTransport, line: bytes) -> bytes:
    wire.clear()
    proto.dataReceived(line + b"\r")
    return wire.value()


def test_listener_crlf_ends_every_reply_from_the_first() -> None:
    proto, wire = raw(ListenerSettings(name="raw", terminator=CRLF))
    assert exchange(proto, wire, b"97") == b"96\r\n"                          # nothing sent yet
    assert exchange(proto, wire, b"junk") == b"96\r\n"
    assert exchange(proto, wire, b"9300CNsc1|COwrong|CPMAIN|") == b"940\r\n"
    assert exchange(proto, wire, b"9300CNsc1|COpass1|CPMAIN|") == b"941\r\n"
    status = exchange(proto, wire, b"9900302.00AY1AZFCA5")
    assert status.startswith(b"98YY") and status.endswith(b"AY1AZ" + status[-6:-2] + CRLF)
    assert status.count(b"\r") == 1
    assert exchange(proto, wire, b"97AZFEF5") == status                     # the resend too
    checkout = b"11NN20240105    101500                  AOMAIN|AA100001|AB200001|AC|AY2AZ"
    checkout += checksum(checkout).encode()
    first = exchange(proto, wire, checkout)
    assert first.endswith(CRLF) and exchange(proto, wire, checkout) == first  # replayed from the cache


def test_account_crlf_applies_once_it_has_logged_in() -> None:
    proto, wire = raw(ListenerSettings(name="raw"), {"sc1": AccountSettings(terminator=CRLF)})
    assert exchange(proto, wire, b"junk") == b"96\r"                          # no account yet: CR
    assert exchange(proto, wire, b"9300CNsc1|COwrong|CPMAIN|") == b"940\r"
    assert exchange(proto, wire, b"9300CNsc1|COpass1|CPMAIN|") == b"941\r\n"
    assert exchange(proto, wire, b"junk") == b"96\r\n"
    assert exchange(proto, wire, b"97") == b"96\r\n"


def test_the_listener_wins_over_the_account() -> None:
    proto, wire = raw(ListenerSettings(name="raw", terminator=b"\r"), {"sc1": AccountSettings(terminator=CRLF)})
    assert exchange(proto, wire, b"9300CNsc1|COpass1|CPMAIN|") == b"941\r"
    assert exchange(proto, wire, b"9900302.00").endswith(b"|\r")


def test_telnet_replies_end_with_the_account_terminator() -> None:
    gateway = Gateway(acs=FakeACS(), reactor=Clock(), account_settings={"sc1": AccountSettings(terminator=CRLF)})
    telnet = TelnetSIPFactory(gateway, ListenerSettings(name="telnet"), session_factory=Session).buildProtocol(PEER)
    wire = StringTransport(peerAddress=PEER)
    telnet.makeConnection(wire)
    telnet.dataReceived(b"sc1\r\x00")
    telnet.dataReceived(b"pass1\r\x00")
    assert wire.value().endswith(LOGIN_OK)
    wire.clear()
    telnet.dataReceived(b"9900302.00\r\x00")
    assert wire.value().startswith(b"98YY") and wire.value().endswith(b"|\r\n")
    wire.clear()
    telnet.dataReceived(b"97\r\x00junk\r\x00")
    assert wire.value().endswith(b"|\r\n96\r\n")


def test_config_keys_for_listeners_and_accounts(tmp_path: Path) -> None:
    path = tmp_path / "gw.ini"
    path.write_text("[listener:raw]\nlisten = sip:tcp:6001:terminator=crlf\n"
                    "[listener:koha]\nlisten = sip:tcp:6002\nterminator = CR\n"
                    "[account:kiosk]\npassword = pw\ninstitution = MAIN\nterminator = CRLF\n"
                    "[account:sc1]\nterminator = CRLF\n")
    config = load(str(path))
    assert {li.settings.name: li.settings.terminator for li in config.listeners} == {"raw": CRLF, "koha": b"\r"}
    assert {a.name: a.settings.terminator for a in config.accounts} == {"kiosk": CRLF, "sc1": CRLF}
    assert load(None, listen=["telnet:tcp:6002:terminator=CRLF"]).listeners[0].settings.terminator == CRLF
    assert load(None, listen=["sip:tcp:6001"]).listeners[0].settings.terminator is None


@pytest.mark.parametrize("text", [
    "[listener:a]\nlisten = sip:tcp:6001:terminator=LF\n",
    "[account:k]\npassword = p\ninstitution = M\nterminator = \\n\n",
])
def test_a_bad_terminator_names_the_key(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"terminator=.* must be CR or CRLF"):
        load(str(path))
