"""The JSON log (``twistd --logger sipgateway.logjson.observer``): one object per line with
the listener, peer, account, code and outcome as keys, the patron masked, no secrets."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from twisted.internet.task import Clock
from twisted.logger import Logger, globalLogPublisher
from twisted.python.failure import Failure

from sipgateway.gateway import Gateway
from sipgateway.logjson import JSONLines, lines
from sipgateway.session import Session
from sipgateway.settings import ListenerSettings
from tests.fakes import FakeACS

D = "20240105    101500"


@pytest.fixture
def events() -> Iterator[list[dict]]:
    caught: list[dict] = []
    globalLogPublisher.addObserver(caught.append)
    yield caught
    globalLogPublisher.removeObserver(caught.append)


def written(events: list[dict]) -> list[dict]:
    out = io.StringIO()
    observer = JSONLines(out)
    for event in events:
        observer(event)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def session(gateway: Gateway, address: str = "10.0.0.1") -> tuple[Session, list[bytes]]:
    out: list[bytes] = []
    return Session(gateway, ListenerSettings(name="raw"), out.append, lambda: None, f"raw {address}:4000",
                   address=address), out


def test_audit_lines_are_one_object_each_with_their_fields_and_the_patron_masked(events: list[dict]) -> None:
    clock = Clock()
    gateway = Gateway(acs=FakeACS(), reactor=clock)
    s, out = session(gateway)
    s.line_received(b"9300CNsc1|COpass1|CPMAIN|")
    s.line_received(f"11NN{D}{D}AOMAIN|AA100001|AB200001|AC|AD1234|".encode())
    s.line_received(f"09N{D}{D}APMAIN|AOMAIN|AB200002|AC|".encode())
    clock.advance(0)   # the audit lines of a turn go out together
    assert out[1].startswith(b"121") and out[2].startswith(b"10")
    objects = [o for o in written(events) if o.get("code") in ("11", "09")]
    assert len(objects) == 2
    checkout, checkin = objects
    assert checkout["text"] == ("raw 10.0.0.1:4000 (sc1): audit 11 ok account=sc1 location=MAIN patron=****01 "
                                "item=200001")
    assert {k: v for k, v in checkout.items() if k not in ("time", "text")} == {
        "level": "info", "namespace": "sipgateway.audit.Audit", "listener": "raw", "peer": "10.0.0.1:4000",
        "account": "sc1", "location": "MAIN", "code": "11", "outcome": "ok", "patron": "****01", "item": "200001"}
    assert checkin["code"] == "09" and checkin["item"] == "200002" and "patron" not in checkin
    text = json.dumps(objects)
    assert "100001" not in text and "1234" not in text and "pass1" not in text


def test_lines_about_a_connection_name_its_listener_peer_and_account(events: list[dict]) -> None:
    gateway = Gateway(acs=FakeACS(), reactor=Clock())
    s, out = session(gateway, "10.0.0.9")
    s.line_received(b"9300CNsc1|COwrong|CPMAIN|")
    assert out == [b"940\r"]
    (failed,) = [o for o in written(events) if "login failed" in o["text"]]
    assert failed["text"] == "raw 10.0.0.9:4000: login failed for account 'sc1'"
    assert (failed["level"], failed["listener"], failed["peer"], failed["account"]) == (
        "warn", "raw", "10.0.0.9:4000", "sc1")
    assert "wrong" not in json.dumps(failed)


def test_a_failure_adds_its_traceback_and_the_time_has_its_offset() -> None:
    try:
        raise RuntimeError("broken")
    except RuntimeError:
        failure = Failure()
    events: list[dict] = []
    log = Logger(namespace="sipgateway.test", observer=events.append)
    log.failure("it broke", failure)
    (obj,) = written(events)
    assert obj["text"] == "it broke" and obj["level"] == "critical" and obj["namespace"] == "sipgateway.test"
    assert "RuntimeError: broken" in obj["traceback"]
    assert obj["time"][-6] in "+-" and obj["time"][-3] == ":"    # 2024-01-05T10:15:00.000+01:00


def test_an_event_of_anything_else_is_its_text() -> None:
    assert [{k: v for k, v in o.items() if k != "time"} for o in lines(
        {"log_format": "{n} things", "n": 3, "log_namespace": "x", "log_source": object()})] == [
        {"level": "info", "namespace": "x", "text": "3 things"}]
