"""The fast paths of ``parse`` and ``format_message`` against the checked (reference) path.

Every input, valid or not, must give the same message or the same error (type, reason,
field, position, detail) both ways, on a cold and on a warm cache: the fast path may only
ever hand over, never decide differently. Inputs: the vectors, the fuzz templates, and
seeded mutations of both (bounded counts, no timing).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from sipgateway.sip2 import SIP2Error, checksum, codec, format_message, parse
from sipgateway.sip2.checked import format_checked, parse_checked
from sipgateway.sip2.wire import byte_sum, with_sequence

VECTORS = Path(__file__).resolve().parents[1] / "vectors.jsonl"
D = "20240105    101500"
SEED = 20261126

REQUESTS = [
    "9300CNsc1|COpass1|CPMAIN|",
    "9900302.00",
    "9900302.00|",
    f"23001{D}AOMAIN|AA100001|AC|AD1234|",
    f"63001{D}  Y       AOMAIN|AA100001|AC|AD1234|BP1|BQ5|",
    f"11NN{D}{' ' * 18}AOMAIN|AA100001|AB200001|AC|AD1234|",
    f"09N{D}{D}APMAIN|AOMAIN|AB200001|AC|",
    f"17{D}AOMAIN|AB1565921879|AC|",
    f"29NN{D}{' ' * 18}AOMAIN|AA100001|AD1234|AB200001|AC|",
    f"65{D}AOMAIN|AA100001|AD1234|AC|",
    "65AOMAIN|AA100001|",
    f"161N{D}20240301    235900AOMAIN|AA1|",
    f"37{D}0400USDBV0.50|AOMAIN|AA100002|AC|AD1234|",
    f"36Y{D}AOMAIN|AA1|AFone|AFtwo|",
    f"17{D}AOMAIN|ABcáliz|AC|",
    "97",
]
#: replies as library systems send them (what a front gateway parses): width-checked tags
#: (CK, BZ, CA, CB, BX, BT, CV) in nearly all, lists (AF, AU, BM) and repeated tags in many
REPLIES_IN = [
    f"18030201{D}CF0|AB200001|AJSketch of the Analytical Engine|BGMAIN|CK001|AQMAIN|APMAIN|CSQA76.17 .M46 1843|",
    f"64              001{D}000100000000000000000000AOMAIN|AA100001|AEAda Lovelace|BZ0010|CA0005|CB0025|"
    "BLY|CQY|BHUSD|BV0.00|CC10.00|AU200001|AU200002|AFone|AFtwo|",
    f"98YYYYNN010003{D}2.00AOMAIN|AMMain Library|BXYYYYNNYYYNYNNYYY|AFWelcome|",
    f"121NNY{D}AOMAIN|AA100001|AB200001|AJA Title|AH20240115    235900|BT01|CK001|",
    f"101YNN{D}AOMAIN|AB200001|AQMAIN|AJA Title|CK001|CV02|",
    f"36Y{D}AOMAIN|AA100001|AFgoodbye|AF|",
    f"18030201{D}AB200001|AB200002|AJT|CK|",
]


def _vectors() -> list[dict]:
    with VECTORS.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _outcome(fn, *args, **kwargs) -> tuple:
    try:
        result = fn(*args, **kwargs)
    except SIP2Error as e:
        return ("error", type(e), e.reason, e.field, e.position, e.detail)
    except (TypeError, ValueError) as e:  # not SIP2Error: a caller's bug, same both ways
        return ("raised", type(e))
    if isinstance(result, bytes):
        return ("bytes", result)
    return ("message", result.code, result.fixed, result.fields)


def _with_ed(text: bytes, seq: int) -> bytes:
    data = text + b"AY%dAZ" % seq
    return data + checksum(data).encode()


def _mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(12)
    i = rng.randrange(len(data) + 1)
    if kind == 0:
        return data[:i] + data[i + 1:]
    if kind == 1:
        return data[:i] + bytes([rng.randrange(256)]) + data[i:]
    if kind == 2:
        return data[:i] + rng.choice([b"|", b"||", b"AY", b"AZ", b"AY1", b"AZ12", b"AF", b"BX", b"CK1"]) + data[i:]
    if kind == 3:
        return data[:i]
    if kind == 4:  # right checksum over a mutated body
        body = data.split(b"AY")[0] if b"AY" in data else data
        return _with_ed(_mutate(body, rng), rng.randrange(10))
    if kind == 5:
        return data.lower() if rng.random() < 0.5 else data.upper()
    if kind == 6:
        return data + rng.choice([b"\r", b"\r\n", b" ", b"\x00", b"|", b"AY1", b"AZ"])
    if kind == 7:  # a very long value
        return data[:i] + b"x" * rng.choice([254, 255, 256, 300]) + data[i:]
    if kind == 8 and len(data) > 2:
        j = rng.randrange(len(data))
        return data[:j] + bytes([data[j] ^ (1 << rng.randrange(8))]) + data[j + 1:]
    if kind == 9:
        return data[:i] + "é".encode(rng.choice(["utf-8", "latin-1"])) + data[i:]
    if kind == 10:  # a duplicated field
        pieces = data.split(b"|")
        k = rng.randrange(len(pieces))
        return b"|".join(pieces[:k + 1] + pieces[k:])
    return data.replace(b"AZ", b"AZ" + rng.choice([b"", b"0x", b" "]), 1)


def _parse_inputs() -> list[bytes]:
    base = [r.encode("utf-8") for r in REQUESTS + REPLIES_IN] + [v["raw"].encode("utf-8") for v in _vectors()]
    base += [_with_ed(r.encode("utf-8"), n % 10) for n, r in enumerate(REQUESTS + REPLIES_IN)]
    rng = random.Random(SEED)
    mutated = [_mutate(rng.choice(base), rng) for _ in range(6000)]
    return base + mutated


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_parse_agrees_with_the_checked_path(encoding: str) -> None:
    disagreements = []
    for data in _parse_inputs():
        for verify in (True, False):
            want = _outcome(parse_checked, data, encoding, verify=verify)
            for _ in range(2):  # cold, then with whatever the first call remembered
                got = _outcome(parse, data, encoding, verify=verify)
                if got != want:
                    disagreements.append((data, verify, got, want))
    assert not disagreements[:5]


def test_parse_takes_the_fast_path_for_typical_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("took the checked path")

    monkeypatch.setattr(codec, "parse_checked", refuse)
    for text in REQUESTS[:9]:
        ed = _with_ed(text.encode(), 3)
        for data in (text.encode(), ed, ed[:-4] + ed[-4:].lower(), ed + b"\r\n"):
            assert parse(data).code == text[:2]


def test_parse_takes_the_fast_path_for_typical_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A front gateway parses every upstream reply: those with lists, repeated or
    width-checked tags are read without the checked path, to the same Message."""
    want = {text: parse_checked(_with_ed(text.encode(), 4)) for text in REPLIES_IN}

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("took the checked path")

    monkeypatch.setattr(codec, "parse_checked", refuse)
    for text in REPLIES_IN:
        got = parse(_with_ed(text.encode(), 4))
        assert (got.code, got.fixed, got.fields) == (want[text].code, want[text].fixed, want[text].fields)
    assert parse(_with_ed(REPLIES_IN[1].encode(), 4)).fields["AU"] == ["200001", "200002"]
    assert parse(_with_ed(REPLIES_IN[-1].encode(), 4)).fields["AB"] == "200001"  # the first wins


def test_parse_leaves_a_wrong_width_to_the_checked_path() -> None:
    with pytest.raises(SIP2Error) as e:
        parse(f"18030201{D}AB200001|AJT|CK01|".encode())
    assert (e.value.reason, e.value.field) == ("field CK wrong width", "CK")


# -- output -------------------------------------------------------------------------------

PATRON_64 = {
    "patron_status": " " * 14, "language": "001", "transaction_date": D,
    "hold_items_count": "0000", "overdue_items_count": "0000", "charged_items_count": "0002",
    "fine_items_count": "0000", "recall_items_count": "0000", "unavailable_holds_count": "0000",
}
REPLIES: list[tuple[str, dict, dict]] = [
    ("94", {"ok": "1"}, {}),
    ("98", {"online_status": "Y", "checkin_ok": "Y", "checkout_ok": "Y", "acs_renewal_policy": "Y",
            "status_update_ok": "N", "offline_ok": "N", "timeout_period": "010", "retries_allowed": "003",
            "date_time_sync": D, "protocol_version": "2.00"},
     {"AO": "MAIN", "AM": "Main Library", "BX": "YYYYNNYYYNYNNYYY", "AN": None}),
    ("18", {"circulation_status": "03", "security_marker": "01", "fee_type": "01", "transaction_date": D},
     {"CF": None, "AH": None, "CJ": "20240106    101500", "CM": None, "AB": "200001", "AJ": "A Title",
      "BG": "MAIN", "BH": "EUR", "BV": "1.00", "CK": "001", "AQ": "MAIN", "AP": "MAIN", "CS": "823 ADA"}),
    ("64", PATRON_64,
     {"AO": "MAIN", "AA": "100001", "AE": "Jane Reader", "BL": "Y", "CQ": "Y", "BH": None, "BV": None,
      "BZ": "0010", "CA": "0005", "CB": "0020", "CC": None, "AU": ["200001", "200002"], "BD": None,
      "BE": "jane@example.org", "BF": None, "AF": ["Welcome", None, ""]}),
    ("12", {"ok": "1", "renewal_ok": "N", "magnetic_media": "N", "desensitize": "Y", "transaction_date": D},
     {"AO": "MAIN", "AA": "P1", "AB": "I1", "AJ": "A Title", "AH": "20240115    235900", "BT": "01",
      "CI": "N", "BH": None, "BV": None, "CK": "001", "BK": None, "BL": "Y", "CQ": None}),
    ("10", {"ok": "1", "resensitize": "Y", "magnetic_media": "N", "alert": "Y", "transaction_date": D},
     {"AO": "MAIN", "AB": "I1", "AQ": "MAIN", "AJ": "A Title", "CL": None, "AA": "P1", "CK": "001",
      "CV": "02", "CY": "P2", "DA": "Joe"}),
    ("24", {"patron_status": "Y" + " " * 13, "language": "000", "transaction_date": D},
     {"AO": "MAIN", "AA": "100001", "AE": "Jane Reader", "BL": "N", "CQ": None, "BH": "USD", "BV": "0.50"}),
    ("16", {"ok": "1", "available": "N", "transaction_date": D},
     {"BW": "20240301    235900", "BR": "2", "AO": "MAIN", "AA": "P1", "AB": "I1", "AJ": None}),
    ("66", {"ok": "1", "renewed_count": "0002", "unrenewed_count": "0000", "transaction_date": D},
     {"AO": "MAIN", "BM": ["1", "2"], "BN": None}),
    ("29", {"third_party_allowed": "N", "no_block": "N", "transaction_date": D, "nb_due_date": " " * 18},
     {"AO": "MAIN", "AA": "P1", "AB": None, "AJ": "T"}),
    ("93", {"uid_algorithm": "|", "pwd_algorithm": "0"}, {"CN": "sc|1", "CO": "pw"}),
]

#: replacement values that break (or just bend) a rule
BAD_VALUES: list[object] = [
    None, "", "x", "Y", "N", "U", "0", "00", "01", "14", "0001", "12345", "EUR", "eur", " " * 18,
    "20241305    101500", "20240105   Z101500", "20240105    101500", "a|b", "a\rb", "a\nb", "Zoë", "\udc80",
    "x" * 255, "x" * 256, 1, 1.5, b"Y", ["a"], ["a", None], ["a", 2], ("a", "b"), [], ["x" * 256], ["a|b"],
    "YYYYNNYYYNYNNYY", "Y" * 16, "١", "2.00", "2.0", "20.0",
]
EXTRA_TAGS = ["ZZ", "XI", "AY", "AZ", "A|", "A", 5]


def _format_cases(rng: random.Random) -> list[tuple[str, dict, dict, dict]]:
    cases = []
    for code, fixed, fields in REPLIES:
        for sequence, ed in ((None, False), ("1", True), (None, True)):
            cases.append((code, fixed, fields, {"sequence": sequence, "error_detection": ed}))
    for _ in range(4000):
        code, fixed, fields = rng.choice(REPLIES)
        fixed, fields = dict(fixed), dict(fields)
        kwargs: dict = {"sequence": rng.choice([None, "1", "0", "9", None, "1", "12", "a", "", 1, "١"]),
                        "error_detection": rng.random() < 0.8,
                        "encoding": rng.choice(["utf-8", "utf-8", "ascii", "latin-1"])}
        for _ in range(rng.randrange(3)):
            where = rng.random()
            if where < 0.5 and fields:
                fields[rng.choice(list(fields))] = rng.choice(BAD_VALUES)
            elif where < 0.7 and fixed:
                fixed[rng.choice(list(fixed))] = rng.choice(BAD_VALUES)
            elif where < 0.75 and fixed:
                del fixed[rng.choice(list(fixed))]
            elif where < 0.8:
                fixed[rng.choice(["ok", "renewal_ok", "extra"])] = "Y"
            else:
                fields[rng.choice(EXTRA_TAGS)] = rng.choice(BAD_VALUES)
        cases.append((code, fixed, fields, kwargs))
    return cases


def test_format_agrees_with_the_checked_path() -> None:
    disagreements = []
    for code, fixed, fields, kwargs in _format_cases(random.Random(SEED)):
        want = _outcome(format_checked, code, fixed, fields, **kwargs)
        for _ in range(2):  # cold, then with whatever the first call remembered
            got = _outcome(format_message, code, fixed, fields, **kwargs)
            if got != want:
                disagreements.append((code, fixed, fields, kwargs, got, want))
    assert not disagreements[:5]


def test_format_takes_the_fast_path_for_typical_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("took the checked path")

    expected = [format_checked(code, fixed, fields, sequence="1", error_detection=True)
                for code, fixed, fields in REPLIES if code != "93"]
    monkeypatch.setattr(codec, "format_checked", refuse)
    got = [format_message(code, fixed, fields, sequence="1", error_detection=True)
           for code, fixed, fields in REPLIES if code != "93"]
    assert got == expected


@pytest.mark.parametrize("code,fixed,fields", [r for r in REPLIES if r[0] != "93"])  # 93's CN has a "|"
def test_a_sequence_number_put_in_gives_the_bytes_formatted_with_it(code: str, fixed: dict, fields: dict) -> None:
    """The reply memo keeps replies without AY and puts the request's in (with_sequence)."""
    plain = format_message(code, fixed, fields, error_detection=True)
    for sequence in [str(d) for d in range(10)] + ["10", "123"]:
        assert with_sequence(plain, sequence) == format_message(code, fixed, fields, sequence=sequence,
                                                                error_detection=True)


def test_remembered_values_do_not_let_a_bad_one_through() -> None:
    code, fixed, fields = REPLIES[3]
    assert format_message(code, fixed, fields)  # fixed part and BL/CQ/BZ... now remembered
    for change, reason in [({"charged_items_count": "002"}, "wrong width (needs 4 characters)"),
                           ({"transaction_date": "20240230    101500"}, "bad date: impossible date/time"),
                           ({"patron_status": "N" + " " * 13}, "bad patron status char")]:
        with pytest.raises(SIP2Error) as caught:
            format_message(code, {**fixed, **change}, fields)
        assert caught.value.reason == reason
    with pytest.raises(SIP2Error) as caught:
        format_message(code, fixed, {**fields, "BL": "U"})
    assert caught.value.reason == "bad Y/N in BL"


def test_caches_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "_FIXED_CACHE", 4)
    monkeypatch.setattr(codec, "_VALUE_CACHE", 4)
    for second in range(30):
        date = f"20240105    1015{second:02d}"
        msg = parse(f"17{date}AOMAIN|AB{second}|AC|".encode())
        assert msg.fixed == {"transaction_date": date} and msg.fields["AB"] == str(second)
        out = format_message("18", {"circulation_status": "03", "security_marker": "01", "fee_type": "01",
                                    "transaction_date": date}, {"AB": "1", "AJ": "t", "CJ": date})
        assert out.endswith(f"CJ{date}|AB1|AJt|".encode())
    in_plan = codec._IN[b"17"][-1]
    out_plan = codec._OUT["18"]
    assert len(in_plan.fixed_seen) <= 4 and len(out_plan.heads) <= 4 and len(codec._VALID["CJ"]) <= 4


# -- byte sums ----------------------------------------------------------------------------

@pytest.mark.parametrize("length", [0, 1, 255, 256, 257, 511, 512, 513, 2000])
def test_byte_sum_is_the_plain_sum(length: int) -> None:
    rng = random.Random(length)
    for data in (b"\xff" * length, bytes(rng.randrange(256) for _ in range(length))):
        assert byte_sum(data) == sum(data)
        assert checksum(data) == "%04X" % (-sum(data) & 0xFFFF)
    assert byte_sum(bytearray(b"\xff" * length)) == 255 * length
    assert byte_sum([1, 2, 3]) == 6


def test_long_messages_checksum_right_both_ways() -> None:
    fields = {"AO": "MAIN", "AA": "1", "AE": "ÿ" * 200, "AF": ["ÿ" * 255] * 3}
    out = format_message("24", REPLIES[6][1], fields, sequence="4", error_detection=True, encoding="latin-1")
    assert len(out) > 1000
    assert checksum(out[:-4]).encode() == out[-4:]
    assert parse(out, "latin-1").fields["AF"] == ["ÿ" * 255] * 3
