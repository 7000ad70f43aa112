"""Every vector of tests/vectors.jsonl (SIP2 requests and replies of real servers and
clients, valid and deliberately broken) and of tests/vectors_local.jsonl (our own, for sloppy
clients those do not cover) is its own test: valid ones parse to exactly their fixed/fields
and format back; invalid ones fail with their reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sipgateway.sip2 import ChecksumError, SIP2Error, UnknownMessageError, format_message, parse, to_json

TESTS = Path(__file__).resolve().parents[1]
VECTORS = TESTS / "vectors.jsonl"
LOCAL_VECTORS = TESTS / "vectors_local.jsonl"

#: valid vectors that are lenient input: formatting them gives the canonical form instead
NON_CANONICAL = {
    "login-req-no-trailing-pipe": "last field without its |",
    "login-req-lower-cksum": "lowercase checksum",
    "scstatus-req-pipe": "stray | after the fixed part",
    "acsstatus-resp-wise-gg": "BX before AM (Wise order)",
    "patinfo-resp-unknown": "Evergreen field order",
    "checkout-req-wise-fv": "Wise field order",
    "checkin-resp-hold": "CV after DA (Evergreen order)",
    "iteminfo-resp-transit": "BG after AP (Evergreen order)",
    "feepaid-req-wise-anon": "AA before AO",
    "wise-renewopt-req": "| after the date",
    "wise-username-resp": "| after the status",
}


def _load() -> list[dict]:
    vectors = []
    for path in (VECTORS, LOCAL_VECTORS):
        with path.open(encoding="utf-8") as f:
            vectors += [json.loads(line) for line in f if line.strip()]
    return vectors


ALL = _load()
VALID = [v for v in ALL if v["valid"]]
INVALID = [v for v in ALL if not v["valid"]]


def test_vector_ids_are_unique_and_cover_both_outcomes() -> None:
    ids = [v["id"] for v in ALL]
    assert len(ids) == len(set(ids))
    assert VALID and INVALID
    assert set(NON_CANONICAL) <= {v["id"] for v in VALID}


@pytest.mark.parametrize("v", VALID, ids=[v["id"] for v in VALID])
def test_valid_vector(v: dict) -> None:
    raw = v["raw"].encode("utf-8")
    msg = parse(raw)
    assert to_json(msg) == {"code": v["code"], "fixed": v["fixed"], "fields": v["fields"]}

    fields = dict(msg.fields)
    sequence = fields.pop("AY", None)
    has_checksum = fields.pop("AZ", None) is not None
    out = format_message(msg.code, msg.fixed, fields, sequence=sequence, error_detection=has_checksum)
    if v["id"] in NON_CANONICAL:
        assert out != raw, f"{v['id']} is canonical after all; drop it from NON_CANONICAL"
        again = parse(out)
        assert again.fixed == msg.fixed
        expected = dict(v["fields"])
        if has_checksum:  # the checksum is recomputed over the canonical bytes
            expected["AZ"] = again.fields["AZ"]
        assert again.fields == expected
    else:
        assert out == raw


@pytest.mark.parametrize("v", INVALID, ids=[v["id"] for v in INVALID])
def test_invalid_vector(v: dict) -> None:
    with pytest.raises(SIP2Error) as caught:
        parse(v["raw"].encode("utf-8"))
    e = caught.value
    assert e.reason == v["error"]
    if "checksum" in v["error"]:
        assert isinstance(e, ChecksumError)
    if v["error"] == "unknown message code":
        assert isinstance(e, UnknownMessageError)
    # the message says why, and where when there is a where
    assert v["error"] in str(e)
    if e.field is not None:
        assert f"field {e.field}" in str(e)
