"""Round trips through the wire of every profile, as properties: a model request reaches the
library system as the same request, and its reply, written with that system's quirks and
cut into arbitrary reads, reaches the model as the same result."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sipgateway.acs.upstream.profiles import CHECKSUM_MODES, DATE_TAGS, PROFILES
from sipgateway.acs.upstream.wire import WireSettings, decode_reply, encode_request
from sipgateway.exchange import EXCHANGES, ReplyContext, RequestContext
from sipgateway.sip2 import ChecksumError, Message, SIP2Error, checksum, format_message, parse
from sipgateway.transports.framing import LineSplitter
from tests.exchange.test_table import REQUESTS, RESULTS

NOW = datetime(2024, 1, 5, 10, 15)
profiles = st.sampled_from(sorted(PROFILES))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(REQUESTS)).flatmap(lambda code: st.tuples(st.just(code), REQUESTS[code])), profiles,
       st.sampled_from(CHECKSUM_MODES), st.integers(0, 9))
def test_request_reaches_the_server_as_sent(case, profile, mode, sequence):
    code, request = case
    settings_ = WireSettings.for_profile(PROFILES[profile], checksum=mode)
    exchange = EXCHANGES[code]
    body = exchange.request_message(request, RequestContext("MAIN", NOW, "term", "HALL"))
    try:
        data = encode_request(*body, str(sequence), settings_)
    except SIP2Error:  # a character the upstream's character set lacks: refused, never mangled
        assume(False)
    assert data.endswith(settings_.terminator)
    line = data[:-len(settings_.terminator)]
    assert b"\r" not in line and b"\n" not in line
    msg = parse(line, settings_.encoding)  # checked: the checksum is right (a sum of characters is accepted)
    assert exchange.parse(msg) == request
    if mode == "none":
        assert msg.checksum is None
    else:
        assert msg.sequence == str(sequence)


def _server_value(profile: str, tag: str, value):
    """What that system's server writes for a value the specification would write as ``value``."""
    if profile == "evergreen" and tag in DATE_TAGS and isinstance(value, str) and value.strip():
        return f"{value[:4]}-{value[4:6]}-{value[6:8]} {value[12:14]}:{value[14:16]}:{value[16:]}"
    return value


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(RESULTS)).flatmap(lambda code: st.tuples(st.just(code), RESULTS[code])), profiles,
       st.sampled_from(["bytes", "lowercase", "characters", "none"]), st.lists(st.integers(1, 40), max_size=6))
def test_reply_reaches_the_model_whatever_the_quirks(case, profile, style, cuts):
    code, result = case
    exchange = EXCHANGES[code]
    wire = WireSettings.for_profile(PROFILES[profile])
    reply_code, fixed, fields = exchange.build(result, ReplyContext(getattr(result, "institution", "") or "MAIN",
                                                                    NOW, "utf-8", "001"))
    fields = {tag: _server_value(profile, tag, value) for tag, value in fields.items()}
    try:
        body = format_message(reply_code, fixed, fields, encoding=wire.encoding)
    except SIP2Error:
        assume(False)
    if style != "none":
        body += b"AY4AZ"
        total = sum(ord(c) & 0xFF for c in body.decode(wire.encoding)) if style == "characters" else sum(body)
        text = "%04X" % (-total & 0xFFFF)
        body += (text.lower() if style == "lowercase" else text).encode()
    data = body + (b"\r\n" if profile == "koha" else b"\r")
    splitter, lines, at = LineSplitter(65536), [], 0
    for cut in cuts + [len(data)]:  # arbitrary reads
        lines += splitter.feed(data[at:at + cut]) or []
        at += cut
    lines += splitter.feed(data[at:]) or []
    assert len(lines) == 1
    assert exchange.read(decode_reply(lines[0], wire)) == result


def test_decoded_replies_keep_short_lines_only_and_stay_bounded():
    from sipgateway.acs.upstream.wire import DECODED_LINE, DecodedReplies

    memo = DecodedReplies(WireSettings.for_profile(PROFILES["generic"]), size=3)
    short = b"10" + b"1YNN20240506    103000" + b"AOMAIN|ABit2|AQMAIN|"
    assert memo.decode(short)[0] is memo.decode(short)[0]
    long = short + (b"AF" + b"x" * 200 + b"|") * (DECODED_LINE // 200)
    first, _ = memo.decode(long)
    assert first.get("AB") == "it2"
    assert memo.decode(long)[0] is not first  # decoded again: long lines are not kept
    for n in range(5):  # more lines than it holds: cleared, never above its size
        memo.decode(short + b"AF%d|" % n)
        memo.decode(with_ed(short + b"AF%d|" % n, n))
        assert len(memo._lines) <= 3 and len(memo._bodies) <= 3


def with_ed(body: bytes, sequence: int | None, *, lower: bool = False) -> bytes:
    body += b"AZ" if sequence is None else b"AY%dAZ" % sequence
    text = checksum(body)
    return body + (text.lower() if lower else text).encode()


def test_decoded_replies_are_one_message_whatever_the_sequence_number():
    """A device's AY cycles through ten digits: the same answer under each is one Message
    (the reply memo downstream keys on its identity), without AY/AZ; the AY comes beside."""
    from sipgateway.acs.upstream.wire import DecodedReplies

    memo = DecodedReplies(WireSettings.for_profile(PROFILES["generic"]))
    body = b"18030201" + b"20240506    103000" + b"AB200001|AJA Title|CK001|AQMAIN|"
    decoded = [memo.decode(with_ed(body, n, lower=n % 2 == 1)) for n in range(10)]
    assert [sequence for _, sequence in decoded] == [str(n) for n in range(10)]
    assert all(msg is decoded[0][0] for msg, _ in decoded)
    assert decoded[0][0] == Message("18", parse(body).fixed, {"AB": "200001", "AJ": "A Title", "CK": "001",
                                                               "AQ": "MAIN"})
    assert memo.decode(body) == (decoded[0][0], None)  # no AY/AZ: decoded as such, its own entry
    assert memo.decode(with_ed(body, None))[1] is None
    bad = with_ed(body, 3)[:-4] + b"0000"
    with pytest.raises(ChecksumError):  # a known answer with a wrong checksum is still refused
        memo.decode(bad)
    with pytest.raises(ChecksumError):
        memo.decode(with_ed(body, 3)[:-4] + b"00G0")
    loose = DecodedReplies(WireSettings.for_profile(replace(PROFILES["generic"], verify_checksum=False)))
    assert loose.decode(with_ed(body, 1))[1] == "1"
    assert loose.decode(bad) == (loose.decode(with_ed(body, 1))[0], "3")  # not verified: taken
    with pytest.raises(ChecksumError):  # but still hex digits
        loose.decode(with_ed(body, 3)[:-4] + b"00G0")


def test_a_known_answer_with_a_character_sum_is_checked_and_stays_one_message():
    """Servers that sum characters (old Perl ones): the byte sum does not match a non-ASCII
    line, so each line is checked the lenient way; the answer is still the one Message."""
    from sipgateway.acs.upstream.wire import DecodedReplies, character_checksum

    memo = DecodedReplies(WireSettings.for_profile(PROFILES["generic"]))
    body = "18030201" + "20240506    103000" + "AB200001|AJCafé au lait|CK001|AQMAIN|"

    def line(n: int) -> bytes:
        text = f"{body}AY{n}AZ"
        return (text + character_checksum(text)).encode("utf-8")

    first, second = memo.decode(line(1)), memo.decode(line(2))
    assert second[0] is first[0] and (first[1], second[1]) == ("1", "2")
    assert first[0].fields["AJ"] == "Café au lait"
    with pytest.raises(ChecksumError):
        memo.decode(line(3)[:-4] + b"0000")


@pytest.mark.parametrize("mode", CHECKSUM_MODES)
def test_encoded_requests_put_the_sequence_number_in_as_encode_request_does(mode):
    """Connections with the same settings share one memo of requests written without AY."""
    from sipgateway.acs.upstream.wire import EncodedRequests, encoded_requests

    wire = WireSettings.for_profile(PROFILES["folio"], checksum=mode)
    assert encoded_requests(WireSettings.for_profile(PROFILES["folio"], checksum=mode)) is encoded_requests(wire)
    memo = EncodedRequests(wire)
    fixed = {"transaction_date": "20240506    103000"}
    fields = {"AO": "MAIN", "AB": "Café 200001", "AC": ""}
    for sequence in [None] + [str(n) for n in range(10)]:
        for _ in range(2):  # written, then from the memo
            assert memo.request("17", fixed, fields, sequence) == encode_request("17", fixed, fields, sequence, wire)
    assert len(memo._requests) == 1
