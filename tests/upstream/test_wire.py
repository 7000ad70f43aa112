"""Round trips through the wire of every profile, as properties: a model request reaches the
library system as the same request, and its reply, written with that system's quirks and
cut into arbitrary reads, reaches the model as the same result."""

from __future__ import annotations

from datetime import datetime

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sipgateway.acs.upstream.profiles import CHECKSUM_MODES, DATE_TAGS, PROFILES
from sipgateway.acs.upstream.wire import WireSettings, decode_reply, encode_request
from sipgateway.exchange import EXCHANGES, ReplyContext, RequestContext
from sipgateway.sip2 import SIP2Error, format_message, parse
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
    assert memo.decode(short) is memo.decode(short)
    long = short + (b"AF" + b"x" * 200 + b"|") * (DECODED_LINE // 200)
    first = memo.decode(long)
    assert first.get("AB") == "it2"
    assert memo.decode(long) is not first  # decoded again: long lines are not kept
    for n in range(5):  # more lines than it holds: cleared, never above its size
        memo.decode(short + b"AF%d|" % n)
        assert len(memo._lines) <= 3
