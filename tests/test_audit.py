"""The audit line: one info line per transaction with side effects (11, 09, 29, 65, 15, 37,
01, 25, 19; OCLC Wise SIP2+ 39, Y3, X1), its outcome, and the patron masked, hashed with a
key, or in full."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.logger import LogLevel

from sipgateway.acs.model import Terminal
from sipgateway.audit import MAX_LINES_PER_EVENT, Audit, mask_patron
from sipgateway.config import ConfigError, load
from sipgateway.gateway import Gateway
from sipgateway.session import Session
from sipgateway.settings import ListenerSettings
from sipgateway.sip2 import checksum, parse
from tests.fakes import FakeACS
from tests.logcapture import Logged, capture
from tests.test_session import Harness

D = "20240105    101500"
B = " " * 18
PEER = "test 127.0.0.1:5000 (sc1)"
WHERE = "account=sc1 location=MAIN"

TRANSACTIONS = {
    "11": f"11NN{D}{B}AOMAIN|AA100001|AB200001|AC|AD1234|",
    "09": f"09N{D}{D}APMAIN|AOMAIN|AB200001|AC|",
    "29": f"29NN{D}{B}AOMAIN|AA100001|AB200001|AC|",
    "65": f"65{D}AOMAIN|AA100001|AC|",
    "15": f"15+{D}AOMAIN|AA100001|AB200001|AC|",
    "37": f"37{D}0100USDBV1.00|AOMAIN|AA100001|AC|",
    "01": f"01N{D}AOMAIN|ALlost card|AA100001|AC|",
    "25": f"25{D}AOMAIN|AA100001|AC|AD1234|",
    "19": f"19{D}AOMAIN|AB200001|AC|CHnew|",
    "39": f"39{D}AA100001|BV1.00|FH2910|FI09|",
    "Y3": f"Y3{D}AA100001|FGBOEK-40-15.75-4100|FI00|",
    "X1": "X1FOjan12345|AA100001|AD1234|",
}
NO_SIDE_EFFECT = [f"17{D}AOMAIN|AB200001|AC|", f"23001{D}AOMAIN|AA100001|AC|AD1234|",
                  f"63001{D}{' ' * 10}AOMAIN|AA100001|AC|", f"35{D}AOMAIN|AA100001|", "9900302.00",
                  f"41{D}AA100001|FJ01-01-2024|FK31-01-2024|", f"70{D}AA100001|AB|", f"Y1{D}AA100001|"]


@pytest.fixture
def logged() -> Iterator[Logged]:
    yield from capture()


def audit_lines(logged: Logged) -> list[str]:
    return [line for text in logged.lines(": audit ") for line in text.split("\n")]


def test_one_line_per_transaction_with_side_effects_and_none_for_the_others(logged: Logged) -> None:
    h = Harness()
    h.login()
    for request in NO_SIDE_EFFECT:
        h.send(request)
    for request in TRANSACTIONS.values():
        h.send(request)
    h.clock.advance(0)
    assert audit_lines(logged) == [
        f"{PEER}: audit 11 ok {WHERE} patron=****01 item=200001",
        f"{PEER}: audit 09 ok {WHERE} patron=- item=200001",
        f"{PEER}: audit 29 ok {WHERE} patron=****01 item=200001",
        f"{PEER}: audit 65 ok {WHERE} patron=****01 item=-",
        f"{PEER}: audit 15 ok {WHERE} patron=****01 item=200001",
        f"{PEER}: audit 37 ok {WHERE} patron=****01 item=-",
        f"{PEER}: audit 01 ok {WHERE} patron=****01 item=-",
        f"{PEER}: audit 25 ok {WHERE} patron=****01 item=-",
        f"{PEER}: audit 19 ok {WHERE} patron=- item=200001",
        f"{PEER}: audit 39 ok {WHERE} patron=****01 item=-",
        f"{PEER}: audit Y3 refused {WHERE} patron=****01 item=-",  # the fake offers no punch cards
        f"{PEER}: audit X1 ok {WHERE} patron=****01 item=-",       # X2 status 0 is OK
    ]
    [event] = [e for e in logged.events if e.get("audit")]  # one reactor turn, one event
    assert event["log_level"] == LogLevel.info


def test_refused_and_failed_outcomes(logged: Logged) -> None:
    h = Harness()
    h.login()
    h.send(f"11NN{D}{B}AOMAIN|AA100001|AB200001|AC|AD1234|BIY|")  # answered at once, not logged yet
    h.send(f"37{D}0100USDBVlots|AOMAIN|AA100001|AC|")       # refused by the session: not a number
    h.send(f"25{D}AOMAIN|AA100002|AC|AD1234|")               # unknown patron: BL N
    h.acs.raise_on.add("checkin")
    h.send(TRANSACTIONS["09"])                               # the ACS broke
    h.acs.manual = True
    h.session.line_received(TRANSACTIONS["11"].encode())
    h.clock.advance(5)                                       # the ACS did not answer in time
    assert audit_lines(logged) == [
        f"{PEER}: audit 11 ok {WHERE} patron=****01 item=200001",
        f"{PEER}: audit 37 refused {WHERE} patron=****01 item=-",
        f"{PEER}: audit 25 refused {WHERE} patron=****02 item=-",
        f"{PEER}: audit 09 failed {WHERE} patron=- item=200001",
        f"{PEER}: audit 11 failed {WHERE} patron=****01 item=200001",
    ]


def test_no_audit_line_before_login_or_for_a_replay(logged: Logged) -> None:
    h = Harness()
    h.send(TRANSACTIONS["11"])  # refused before login: the rate-limited warning, no audit line
    h.login()
    request = TRANSACTIONS["11"] + "AY1AZ"
    request += checksum(request.encode())
    h.send(request)
    h.send(request)  # the device lost our reply: answered from the cache, not run again
    h.clock.advance(0)
    assert len(audit_lines(logged)) == 1


def test_hostile_values_are_escaped(logged: Logged) -> None:
    h = Harness()
    h.login()
    h.send(f"11NN{D}{B}AOMAIN|AA\x1b[2J100001|AB2000\x0701\\|AC|")
    h.clock.advance(0)
    [line] = audit_lines(logged)
    assert line.endswith("patron=*******001 item=2000\\x0701\\\\") and line.isprintable()


def test_patron_masked_hashed_or_in_full() -> None:
    assert [mask_patron(p) for p in ("", "1", "100001", "21234002896242")] == [
        "", "*", "****01", "**********6242"]
    clock = Clock()
    key = "0123456789abcdef"
    assert Audit(clock, "full").patron_text("100001") == "100001"
    hashed = Audit(clock, "hash", key).patron_text("100001")
    # keyed: the same key gives the same text after a restart; no key, no way back
    assert hashed == Audit(Clock(), "hash", key).patron_text("100001") == \
        "h:" + hashlib.blake2b(b"100001", key=key.encode(), digest_size=8).hexdigest()
    assert hashed != Audit(clock, "hash", "another key, 16+").patron_text("100001")
    assert hashed[2:] != hashlib.blake2b(b"100001", digest_size=8).hexdigest()
    assert Audit(clock, "hash", key).patron_text("100002") != hashed


def test_gateway_modes_reach_the_line(logged: Logged) -> None:
    clock = Clock()
    for mode, patron in (("full", "100001"), ("mask", "****01")):
        logged.clear()
        gateway = Gateway(acs=FakeACS(), reactor=clock, audit_patron=mode)
        out: list[bytes] = []
        session = Session(gateway, ListenerSettings(name="t"), out.append, lambda: None, "t 10.0.0.1:1")
        session.line_received(b"9300CNsc1|COpass1|CPMAIN|")
        session.line_received(TRANSACTIONS["11"].encode())
        clock.advance(0)
        assert f" patron={patron} item=200001" in audit_lines(logged)[0]


def test_a_busy_turn_is_one_event_of_at_most_max_lines(logged: Logged) -> None:
    clock = Clock()
    audit = Audit(clock)
    msg = parse(TRANSACTIONS["11"].encode())
    reply = ("12", {"ok": "1"}, {})
    for _ in range(MAX_LINES_PER_EVENT + 5):
        audit.transaction("t", Terminal("sc1", "MAIN", "MAIN"), msg, reply)
    assert [len(e["audit"].split("\n")) for e in logged.events] == [MAX_LINES_PER_EVENT]
    clock.advance(0)
    assert [len(e["audit"].split("\n")) for e in logged.events] == [MAX_LINES_PER_EVENT, 5]


@pytest.mark.parametrize("text,message", [
    ("[gateway]\naudit_patron = md5\n", "[gateway] audit_patron='md5' must be mask, hash or full"),
    ("[gateway]\naudit_patron = hash\n", "[gateway] audit_key: missing; audit_patron = hash needs a secret"),
    ("[gateway]\naudit_patron = hash\naudit_key = short\n", "[gateway] audit_key: too short"),
])
def test_audit_config_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "gw.ini"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load(str(path))
    assert message in str(e.value) and "short" not in str(e.value).split("audit_key")[0]


def test_audit_config(tmp_path: Path) -> None:
    path = tmp_path / "gw.ini"
    path.write_text("[gateway]\naudit_patron = HASH\naudit_key = 0123456789abcdef0123\n")
    config = load(str(path))
    assert (config.audit_patron, config.audit_key) == ("hash", "0123456789abcdef0123")
    assert "0123456789abcdef" not in repr(config)
    assert load(None).audit_patron == "mask"
