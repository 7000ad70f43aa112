"""Fuzzing: generated and mutated messages through codec, session and the SQLite ACS.

No exception escapes, every input gets a reply or a clean close, and input answered
with 96 changes nothing in the database.  ``make test`` runs a short run;
``make fuzz`` sets SIPGATEWAY_FUZZ_CASES for the long one (at least 100,000)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from sipgateway.acs.sqlite import SQLiteACS
from sipgateway.gateway import Gateway
from sipgateway.session import Session
from sipgateway.settings import ListenerSettings
from sipgateway.sip2 import SIP2Error, checksum, parse

CASES = int(os.environ.get("SIPGATEWAY_FUZZ_CASES", "100000"))
SEED = int(os.environ.get("SIPGATEWAY_FUZZ_SEED", "20261125"))
VECTORS = Path(__file__).with_name("vectors.jsonl")
D = "20240105    101500"

TEMPLATES = [
    "9300CNsc1|COpass1|CPMAIN|",
    "9900302.00",
    f"23001{D}AOMAIN|AA100001|AC|AD1234|",
    f"63001{D}  Y       AOMAIN|AA100001|AC|AD1234|BP1|BQ5|",
    f"63001{D}Y         AOMAIN|AA100002|AC|AD1234|",
    f"11NN{D}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|",
    f"11YY{D}{D}AOMAIN|AAdjfiander|AB200002|AC|",
    f"09N{D}{D}APMAIN|AOMAIN|AB200001|AC|",
    f"17{D}AOMAIN|AB1565921879|AC|",
    f"19{D}AOMAIN|AB200002|AC|CHtorn|",
    f"29NN{D}{' ' * 18}AOMAIN|AA100001|AD1234|AB200001|AC|",
    f"65{D}AOMAIN|AA100001|AD1234|AC|",
    f"15+{D}AOMAIN|AA100001|AD1234|AB660|AC|",
    f"15-{D}AOMAIN|AA100001|AB660|",
    f"01N{D}AOMAIN|ALblocked|AAmiker|AC|",
    f"25{D}AOMAIN|AAmiker|AC|AD6789|",
    f"35{D}AOMAIN|AA100001|AC|AD|",
    f"37{D}0400USDBV0.50|AOMAIN|AA100002|AC|AD1234|",
    "97",
]


def corpus() -> list[bytes]:
    lines = [t.encode() for t in TEMPLATES]
    for line in VECTORS.read_text(encoding="utf-8").splitlines():
        vector = json.loads(line)
        lines.append(vector["raw"].encode("utf-8"))
    return lines


def with_checksum(data: bytes, seq: int) -> bytes:
    body = data + b"AY%dAZ" % (seq % 10)
    return body + checksum(body).encode()


def mutate(rng: random.Random, base: bytes) -> bytes:
    """One of many ways a real device, a line or a scanner garbles a message."""
    choice = rng.randrange(12)
    data = bytearray(base)
    if choice == 0 and data:      # flip bytes
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif choice == 1 and data:    # truncate
        del data[rng.randrange(len(data)):]
    elif choice == 2:             # insert separators, tags, digits
        for _ in range(rng.randint(1, 3)):
            data[rng.randint(0, len(data)):0] = rng.choice([b"|", b"AY", b"AZ", b"AA", b"||", b"0", b" ", b"Y"])
    elif choice == 3:             # a field far too long
        pos = rng.randint(0, len(data))
        data[pos:pos] = b"AF" + b"x" * rng.randint(256, 3000) + b"|"
    elif choice == 4:             # wrong charset: Latin-1 / cp850 / broken UTF-8 bytes
        pos = rng.randint(0, len(data))
        data[pos:pos] = rng.choice([b"\xe9", b"\xa0", b"\xc3", b"\xff\xfe", "cáliz".encode("cp850")])
    elif choice == 5:             # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    elif choice == 6:             # checksum right over whatever it is now
        return with_checksum(bytes(data), rng.randrange(10))
    elif choice == 7:             # checksum wrong
        return bytes(data) + b"AY1AZ%04X" % rng.randrange(65536)
    elif choice == 8:             # duplicate a chunk
        if data:
            a = rng.randrange(len(data))
            data[a:a] = data[a:a + rng.randint(1, 20)]
    elif choice == 9:             # the fixed part shifted
        data[2:2] = b" " * rng.randint(1, 3)
    elif choice == 10:            # embedded NUL and control characters
        data[rng.randint(0, len(data)):0] = bytes([rng.choice([0, 1, 7, 9, 27, 127])])
    return bytes(data)


@pytest.fixture
def failures():
    seen: list[dict] = []

    def observer(event: dict) -> None:
        if "log_failure" in event:
            seen.append(event)

    globalLogPublisher.addObserver(observer)
    yield seen
    globalLogPublisher.removeObserver(observer)


def test_codec_never_raises_anything_but_sip2error() -> None:
    rng = random.Random(SEED)
    base = corpus()
    for _ in range(CASES):
        data = mutate(rng, rng.choice(base))
        for encoding in ("utf-8", "ascii", "cp850"):
            try:
                parse(data, encoding)
            except SIP2Error:
                pass


@pytest.mark.parametrize("account,password", [("sc1", "pass1"), ("scclient", "clientpwd")])
def test_session_and_sqlite_survive_garbage(failures: list[dict], account: str, password: str) -> None:
    """Half the cases on a UTF-8 account, half on an ASCII one."""
    cases = CASES // 2
    rng = random.Random(SEED + len(account))
    base = corpus()
    acs = SQLiteACS.synchronous(":memory:")
    acs.seed_demo()
    conn = acs.runner.conn
    clock = Clock()
    clock.advance(1704449700)
    gateway = Gateway(acs=acs, reactor=clock)
    settings = ListenerSettings(name="fuzz", idle_timeout=0, login_timeout=0)
    out: list[bytes] = []
    closed: list[bool] = []

    def new_session() -> Session:
        s = Session(gateway, settings, out.append, lambda: closed.append(True), "fuzz 127.0.0.1:1")
        s.line_received(f"9300CN{account}|CO{password}|CPMAIN|".encode())
        assert out[-1] == b"941\r"
        return s

    session = new_session()
    replies = bad = 0
    for i in range(cases):
        data = mutate(rng, rng.choice(base)) if rng.random() < 0.8 else with_checksum(rng.choice(base), i)
        data = data.replace(b"\r", b"").replace(b"\n", b"")  # framing already split the line
        before_out, before_closed, before_changes = len(out), len(closed), conn.total_changes
        session.line_received(data)
        if not data.strip(b" \t\0"):
            assert len(out) == before_out
            continue
        if len(closed) > before_closed:  # a clean close (the same bad bytes three times)
            session = new_session()
            continue
        assert len(out) == before_out + 1, (data, out[before_out:])
        reply = out[-1]
        assert reply.endswith(b"\r") and b"\r" not in reply[:-1] and b"\n" not in reply
        replies += 1
        if reply[:2] == b"96":
            bad += 1
            assert conn.total_changes == before_changes, data
        if session.account is None or session.account.name != account:  # a fuzzed 93 changed the login
            session = new_session()
    assert replies > cases // 2 and 0 < bad < replies
    assert failures == [], [f["log_failure"].getTraceback() for f in failures[:3]]
