"""Codec unit tests: checksums (SIP2 error detection), lenient input, strict output, charsets."""

from __future__ import annotations

import pytest

from sipgateway.sip2 import (
    MESSAGES,
    ChecksumError,
    Message,
    SIP2Error,
    UnknownMessageError,
    checksum,
    format_message,
    parse,
    to_json,
)

DATE = "20240105    101500"
PATRON_STATUS_64 = {
    "patron_status": " " * 14, "language": "001", "transaction_date": DATE,
    "hold_items_count": "0000", "overdue_items_count": "0000", "charged_items_count": "0003",
    "fine_items_count": "0000", "recall_items_count": "0000", "unavailable_holds_count": "0000",
}


def with_checksum(text: str, encoding: str = "utf-8") -> bytes:
    data = text.encode(encoding)
    return data + checksum(data).encode()


# -- checksums: worked examples ----------------------------------

@pytest.mark.parametrize("summed, expected", [
    ("9300CNsipuser|COsippass|CPMAIN|AY1AZ", "F371"),
    ("97AZ", "FEF5"),
    ("96AZ", "FEF6"),
    ("941AY1AZ", "FDFC"),
    ("940AY1AZ", "FDFD"),
])
def test_checksum_worked_examples(summed: str, expected: str) -> None:
    assert checksum(summed.encode("ascii")) == expected


def test_format_produces_the_worked_examples() -> None:
    login = {"uid_algorithm": "0", "pwd_algorithm": "0"}
    fields = {"CN": "sipuser", "CO": "sippass", "CP": "MAIN"}
    assert format_message("93", login, fields, sequence="1", error_detection=True) == \
        b"9300CNsipuser|COsippass|CPMAIN|AY1AZF371"
    assert format_message("97", {}, error_detection=True) == b"97AZFEF5"
    assert format_message("96", {}, error_detection=True) == b"96AZFEF6"
    assert format_message("94", {"ok": "1"}, sequence="1", error_detection=True) == b"941AY1AZFDFC"
    assert format_message("94", {"ok": "0"}, sequence="1", error_detection=True) == b"940AY1AZFDFD"
    assert format_message("94", {"ok": "1"}) == b"941"


NON_ASCII = "17" + DATE + "AOMAIN|ABcáliz|AY2AZ"


@pytest.mark.parametrize("encoding, expected", [("utf-8", "F4B6"), ("latin-1", "F539"), ("cp850", "F57A")])
def test_checksum_is_over_the_encoded_bytes(encoding: str, expected: str) -> None:
    assert checksum(NON_ASCII.encode(encoding)) == expected
    out = format_message("17", {"transaction_date": DATE}, {"AO": "MAIN", "AB": "cáliz"}, sequence="2",
                         error_detection=True, encoding=encoding)
    assert out == (NON_ASCII + expected).encode(encoding)
    msg = parse(out, encoding)
    assert msg.get("AB") == "cáliz" and msg.checksum == expected and msg.sequence == "2"


@pytest.mark.parametrize("encoding", ["utf-8", "cp850"])
def test_character_sum_accepted_as_old_perl_servers_compute_it(encoding: str) -> None:
    # F539 is the sum over the characters (code points mod 256), not over these bytes
    data = (NON_ASCII + "F539").encode(encoding)
    assert parse(data, encoding).checksum == "F539"
    with pytest.raises(ChecksumError) as caught:
        parse((NON_ASCII + "F538").encode(encoding), encoding)
    assert caught.value.reason == "checksum mismatch"


def test_lowercase_checksum_accepted_uppercase_emitted() -> None:
    msg = parse(b"9300CNsipuser|COsippass|CPMAIN|AY1AZf371")
    assert msg.checksum == "f371"
    assert format_message("94", {"ok": "1"}, sequence="1", error_detection=True).endswith(b"FDFC")


def test_verify_false_skips_the_checksum_but_not_its_shape() -> None:
    assert parse(b"9300CNa|COb|AY1AZ0000", verify=False).checksum == "0000"
    with pytest.raises(ChecksumError):
        parse(b"9300CNa|COb|AY1AZ00", verify=False)


def test_checksum_not_last_is_malformed() -> None:
    with pytest.raises(ChecksumError) as caught:
        parse(b"9300CNa|AZ1234|COb|")
    assert caught.value.reason == "malformed checksum"
    assert caught.value.field == "AZ" and caught.value.position == 8


def test_checksum_error_names_field_and_position() -> None:
    with pytest.raises(ChecksumError) as caught:
        parse(b"9300CNsipuser|COsippass|CPMAIN|AY1AZF370")
    assert str(caught.value).startswith("field AZ at position 34: checksum mismatch")


# -- lenient input (docs/architecture.rst, "Strict output, lenient input") ---------------

@pytest.mark.parametrize("tail", [b"\r", b"\n", b"\r\n", b"  \t", b"\x00"])
def test_trailing_terminators_and_whitespace(tail: bytes) -> None:
    msg = parse(b"9300CNsipuser|COsippass|CPMAIN|AY1AZF371" + tail)
    assert msg.fields == {"CN": "sipuser", "CO": "sippass", "CP": "MAIN", "AY": "1", "AZ": "F371"}


def test_no_pipe_before_ay() -> None:
    msg = parse(with_checksum("9300CNsipuser|COsippass|CPMAINAY1AZ"))
    assert msg.get("CP") == "MAIN" and msg.sequence == "1"


def test_ay_without_az() -> None:
    msg = parse(b"11NN" + DATE.encode() + b" " * 18 + b"AOMAIN|AA1|AB2|AC|BIN|AY1")
    assert msg.sequence == "1" and msg.checksum is None and msg.get("BI") == "N"


def test_multi_digit_sequence_number_is_accepted_as_sent() -> None:
    # SIP2 says one digit; clients that count past 9 send AY10, AY11, ...
    for seq in ("10", "11", "99", "123", "007"):
        raw = with_checksum(f"9300CNsipuser|COsippass|CPMAIN|AY{seq}AZ")
        msg = parse(raw)
        assert msg.fields == {"CN": "sipuser", "CO": "sippass", "CP": "MAIN", "AY": seq, "AZ": raw[-4:].decode()}
    assert parse(with_checksum("9300CNsipuser|COsippass|CPMAINAY12AZ")).get("CP") == "MAIN"
    assert parse(b"11NN" + DATE.encode() + b" " * 18 + b"AOMAIN|AA1|AB2|AC|BIN|AY12").sequence == "12"


def test_multi_digit_sequence_checksum_is_over_the_bytes_as_sent() -> None:
    raw = with_checksum("9300CNsipuser|COsippass|CPMAIN|AY10AZ")
    assert raw.endswith(b"AY10AZF341")
    with pytest.raises(ChecksumError):  # the checksum of AY1, not of AY10
        parse(b"9300CNsipuser|COsippass|CPMAIN|AY10AZF371")
    with pytest.raises(SIP2Error) as caught:
        parse(with_checksum("9300CNsipuser|COsippass|CPMAIN|AY1xAZ"))
    assert caught.value.reason == "sequence number not a digit"


def test_az_without_ay_after_fixed_part() -> None:
    msg = parse(with_checksum("9900302.00AZ"))
    assert msg.sequence is None and msg.checksum is not None


def test_duplicates_keep_the_first_and_repeatable_tags_are_lists() -> None:
    msg = parse(b"36Y" + DATE.encode() + b"AOMAIN|AOOTHER|AA1|AFone|AFtwo|")
    assert msg.fields == {"AO": "MAIN", "AA": "1", "AF": ["one", "two"]}
    assert msg.get("AF") == "one"


def test_unknown_tags_are_kept() -> None:
    msg = parse(b"23001" + DATE.encode() + b"AOMAIN|AA1|XIinternal|ZZ|")
    assert msg.fields["XI"] == "internal" and msg.fields["ZZ"] == ""


def test_empty_values_and_doubled_separators() -> None:
    msg = parse(b"23001" + DATE.encode() + b"AOMAIN||AA1|AC|AD|")
    assert msg.fields == {"AO": "MAIN", "AA": "1", "AC": "", "AD": ""}


def test_renew_all_without_date() -> None:
    msg = parse(b"65AOMAIN|AA21234002896242|AD1234|")
    assert msg.fixed == {} and msg.get("AA") == "21234002896242"


def test_hold_response_with_fixed_expiration_date() -> None:
    msg = parse(b"161N" + DATE.encode() + b"20240301    235900AOMAIN|AA1|")
    assert msg.fields["BW"] == "20240301    235900" and msg.get("AO") == "MAIN"


def test_blank_optional_dates_but_not_blank_transaction_dates() -> None:
    assert parse(b"09N" + DATE.encode() + b" " * 18 + b"AOMAIN|AB1|").fixed["return_date"] == " " * 18
    with pytest.raises(SIP2Error) as caught:
        parse(b"17" + b" " * 18 + b"AOMAIN|AB1|")
    assert caught.value.field == "transaction_date"


def test_any_printable_zone_on_input() -> None:
    assert parse(b"1720240105CEST101500AOMAIN|AB1|").fixed["transaction_date"] == "20240105CEST101500"


def test_unknown_counts_as_spaces_and_n_in_patron_status() -> None:
    fixed = "YNNN          001" + DATE + "    " * 6
    msg = parse(b"64" + fixed.encode() + b"AOMAIN|AA1|AE|")
    assert msg.fixed["hold_items_count"] == "    " and msg.fixed["patron_status"].startswith("YNNN")


def test_trailing_spaces_inside_the_fixed_part_are_kept() -> None:
    # a 63 whose fixed part ends in the blank summary, followed by nothing: AO is missing,
    # but the summary itself must not be reported as truncated
    with pytest.raises(SIP2Error) as caught:
        parse(b"63001" + DATE.encode() + b" " * 10 + b"   ")
    assert caught.value.reason == "missing required field AO"


def test_renew_needs_item_or_title() -> None:
    with pytest.raises(SIP2Error) as caught:
        parse(b"29NN" + DATE.encode() + b" " * 18 + b"AOMAIN|AA1|")
    assert caught.value.reason == "missing required field AB or AJ"


def test_malformed_field() -> None:
    with pytest.raises(SIP2Error) as caught:
        parse(b"9300CNa|COb|X")
    assert caught.value.reason == "malformed field" and caught.value.position == 12


def test_errors_never_show_secret_values() -> None:
    password = "hunter2" * 40
    with pytest.raises(SIP2Error) as caught:
        parse(f"9300CNa|CO{password}|".encode())
    assert caught.value.reason == "field too long (>255)" and caught.value.field == "CO"
    assert "hunter2" not in str(caught.value)


def test_the_brief_example_message() -> None:
    with pytest.raises(SIP2Error) as caught:
        parse(b"2300120240105    10150AOMAIN|AA1|AC|AD|")
    assert str(caught.value).startswith("field transaction_date at position 5: bad date: non-digit in date/time")


def test_unknown_code_and_too_short() -> None:
    with pytest.raises(UnknownMessageError):
        parse(b"ZZ")
    with pytest.raises(SIP2Error) as caught:
        parse(b"\r\n")
    assert caught.value.reason == "too short"


def test_bytes_like_input() -> None:
    assert parse(bytearray(b"941")).fixed == {"ok": "1"}
    assert parse(memoryview(b"941")).code == "94"


# -- strict output -------------------------------------------------------------------------

def test_known_tags_in_table_order_then_unknown_in_given_order() -> None:
    fields = {"ZZ": "z", "AF": ["one", None, "two"], "AA": "1", "XI": "x", "AO": "MAIN", "BK": None}
    out = format_message("36", {"end_session": "Y", "transaction_date": DATE}, fields)
    assert out == b"36Y" + DATE.encode() + b"AOMAIN|AA1|AFone|AFtwo|ZZz|XIx|"


def test_tuples_repeat_tags_too() -> None:
    out = format_message("66", {"ok": "1", "renewed_count": "0002", "unrenewed_count": "0000",
                                "transaction_date": DATE}, {"AO": "M", "BM": ("1", "2")})
    assert out.endswith(b"AOM|BM1|BM2|")


@pytest.mark.parametrize("tag, value, reason", [
    ("CK", "01", "field CK wrong width"),
    ("CK", "0A1", "non-digit in CK"),
    ("BT", "6", "field BT wrong width"),
    ("BT", "10", "bad value in BT"),
    ("CV", "2", "field CV wrong width"),
    ("CH", "a|b", "value contains '|' or CR/LF"),
    ("CH", "a\rb", "value contains '|' or CR/LF"),
    ("CH", "a\nb", "value contains '|' or CR/LF"),
    ("AF", "x" * 256, "field too long (>255)"),
    ("AF", ["ok", "x" * 256], "field too long (>255)"),
    ("BH", "eur", "bad value in BH"),
    ("CI", "", "field CI wrong width"),
    ("CI", "U", "bad Y/N in CI"),
    ("BV", 1.0, "value must be text or a list of texts, not float"),
    ("AF", ["ok", 2], "value must be text, not int"),
    ("AY", "1", "added by format_message: use sequence= and error_detection="),
    ("AZ", "FFFF", "added by format_message: use sequence= and error_detection="),
])
def test_strict_variable_fields(tag: str, value: object, reason: str) -> None:
    fields = {"AO": "MAIN", "AA": "1", "AB": "2", "AJ": "", "AH": "", tag: value}
    with pytest.raises(SIP2Error) as caught:
        format_message("12", {"ok": "0", "renewal_ok": "N", "magnetic_media": "U", "desensitize": "N",
                              "transaction_date": DATE}, fields)
    assert caught.value.reason == reason and caught.value.field == tag


def test_strict_bx_width() -> None:
    fixed = {"online_status": "Y", "checkin_ok": "Y", "checkout_ok": "Y", "acs_renewal_policy": "Y",
             "status_update_ok": "N", "offline_ok": "N", "timeout_period": "000", "retries_allowed": "999",
             "date_time_sync": DATE, "protocol_version": "2.00"}
    assert format_message("98", fixed, {"AO": "M", "BX": "Y" * 16})
    with pytest.raises(SIP2Error) as caught:
        format_message("98", fixed, {"AO": "M", "BX": "Y" * 15})
    assert caught.value.reason == "field BX wrong width"


@pytest.mark.parametrize("change, field, reason", [
    ({"transaction_date": DATE[:-1]}, "transaction_date", "wrong width (needs 18 characters)"),
    ({"transaction_date": "20241305    101500"}, "transaction_date", "bad date: impossible date/time"),
    ({"transaction_date": "20240105   X101500"}, "transaction_date", None),  # any zone... on input only
    ({"patron_status": "N" * 14}, "patron_status", "bad patron status char"),
    ({"hold_items_count": "12"}, "hold_items_count", "wrong width (needs 4 characters)"),
    ({"language": "0A1"}, "language", "non-digit in language"),
    ({"charged_items_count": None}, "charged_items_count", "missing fixed field"),
    ({"renewal_ok": "Y"}, "renewal_ok", "not a fixed field of message 64"),
])
def test_strict_fixed_fields(change: dict, field: str, reason: str | None) -> None:
    fixed = {**PATRON_STATUS_64, **change}
    fixed = {k: v for k, v in fixed.items() if v is not None}
    fields = {"AO": "MAIN", "AA": "1", "AE": ""}
    if reason is None:
        assert format_message("64", fixed, fields)
        return
    with pytest.raises(SIP2Error) as caught:
        format_message("64", fixed, fields)
    assert caught.value.reason == reason and caught.value.field == field


def test_strict_code_tables() -> None:
    base = {"circulation_status": "03", "security_marker": "02", "fee_type": "01", "transaction_date": DATE}
    assert format_message("18", base, {"AB": "1", "AJ": "t"})
    for name, bad in [("circulation_status", "14"), ("security_marker", "04"), ("fee_type", "00")]:
        with pytest.raises(SIP2Error) as caught:
            format_message("18", {**base, name: bad}, {"AB": "1", "AJ": "t"})
        assert caught.value.reason == f"bad value in {name}"


def test_missing_required_field_on_output() -> None:
    with pytest.raises(SIP2Error) as caught:
        format_message("36", {"end_session": "Y", "transaction_date": DATE}, {"AO": "MAIN", "AA": None})
    assert caught.value.reason == "missing required field AA"


def test_sequence_rules() -> None:
    for bad in ("1a", "", " 1", "\u0661", "1" * 256):
        with pytest.raises(SIP2Error) as caught:
            format_message("94", {"ok": "1"}, sequence=bad, error_detection=True)
        assert caught.value.reason == "sequence number not a digit"
    # a client counting past 9 gets its own sequence number back
    assert format_message("94", {"ok": "1"}, sequence="10", error_detection=True) == b"941AY10AZFDCC"
    with pytest.raises(SIP2Error):
        format_message("94", {"ok": "1"}, sequence="1")


def test_unknown_code_and_bad_tag_on_output() -> None:
    with pytest.raises(UnknownMessageError):
        format_message("55", {})
    with pytest.raises(SIP2Error):
        format_message("94", {"ok": "1"}, {"A|": "x"})


def test_unencodable_output_names_the_field_but_not_a_secret() -> None:
    fixed = {"patron_status": " " * 14, "language": "000", "transaction_date": DATE}
    with pytest.raises(SIP2Error) as caught:
        format_message("24", fixed, {"AO": "M", "AA": "1", "AE": "Zoë"}, encoding="ascii")
    assert caught.value.field == "AE" and "'ë'" in str(caught.value)
    with pytest.raises(SIP2Error) as caught:
        format_message("23", {"language": "000", "transaction_date": DATE},
                       {"AO": "M", "AA": "1", "AD": "pé"}, encoding="ascii")
    assert caught.value.field == "AD" and "é" not in str(caught.value)


# -- character sets -------------------------------------------------------------------------

def test_cp850_round_trip() -> None:
    out = format_message("17", {"transaction_date": DATE}, {"AO": "MAIN", "AB": "cáliz"}, encoding="cp850")
    assert b"c\xa0liz" in out
    assert parse(out, "cp850").get("AB") == "cáliz"


def test_undecodable_input_names_position_and_field() -> None:
    with pytest.raises(SIP2Error) as caught:
        parse(b"17" + DATE.encode() + b"AOMAIN|ABc\xe1liz|", "utf-8")
    e = caught.value
    assert e.field == "AB" and e.position == 30 and "utf-8" in e.reason
    with pytest.raises(SIP2Error):
        parse(b"17" + DATE.encode() + b"AOMAIN|ABc\xe1liz|", "ascii")


@pytest.mark.parametrize("encoding", ["no-such-charset", "utf-16"])
def test_unusable_character_sets(encoding: str) -> None:
    with pytest.raises(SIP2Error):
        parse(b"941", encoding)
    with pytest.raises(SIP2Error):
        format_message("94", {"ok": "1"}, encoding=encoding)


def test_codec_aliases_accepted() -> None:
    assert parse(b"941", "UTF8").code == "94"
    assert parse(b"941", "IBM850").code == "94"
    assert format_message("94", {"ok": "1"}, encoding="latin_1") == b"941"


# -- Message, to_json and the table -----------------------------------------------------

def test_message_accessors() -> None:
    msg = Message("36", {}, {"AO": "M", "AF": [], "AG": ["a", "b"], "AY": "3", "AZ": "ABCD"})
    assert msg.get("AO") == "M" and msg.get("AG") == "a" and msg.get("AF", "-") == "-"
    assert msg.get("AB") is None and msg.get("AB", "x") == "x"
    assert msg.sequence == "3" and msg.checksum == "ABCD" and msg.name == "End Session Response"


def test_to_json_copies() -> None:
    msg = parse(b"36Y" + DATE.encode() + b"AOMAIN|AA1|AFone|")
    data = to_json(msg)
    data["fields"]["AF"].append("two")
    assert msg.fields["AF"] == ["one"]
    assert data["code"] == "36" and data["fixed"] == msg.fixed


FIXED_LENGTHS = {  # the specification's fixed parts (and Wise's for the WISE messages)
    "01": 19, "09": 37, "10": 22, "11": 38, "12": 22, "15": 19, "16": 20, "17": 18, "18": 24, "19": 18,
    "20": 19, "23": 21, "24": 35, "25": 18, "26": 35, "29": 38, "30": 22, "35": 18, "36": 19, "37": 25,
    "38": 19, "63": 31, "64": 59, "65": 18, "66": 27, "93": 2, "94": 1, "96": 0, "97": 0, "98": 34,
    "99": 8, "39": 18, "40": 19, "41": 18, "42": 0, "Y1": 18, "Y2": 1, "Y3": 18, "Y4": 1, "X1": 0,
    "X2": 1, "70": 18, "71": 0,
}


def test_table_covers_every_message_with_the_reference_widths() -> None:
    assert {code: spec.fixed_len for code, spec in MESSAGES.items()} == FIXED_LENGTHS
    for code, spec in MESSAGES.items():
        assert spec.code == code and spec.name
        assert set(spec.required) <= set(spec.fields)
        assert sum(f.width for f in spec.fixed) == spec.fixed_len
        if spec.reply is not None:
            assert MESSAGES[spec.reply].direction == "response"
        if "AF" in spec.fields:
            assert {"AF", "AG", "FQ"} <= spec.repeatable


def test_fg_is_a_list_only_where_wise_repeats_it() -> None:
    assert "FG" in MESSAGES["42"].repeatable and "FG" in MESSAGES["Y2"].repeatable
    assert "FG" not in MESSAGES["71"].repeatable


def test_space_padded_print_width_is_accepted_on_input_only() -> None:
    """php-sip2 sends sprintf("%3s", 80) as the 99 print width: " 80"."""
    from sipgateway.sip2 import SIP2Error, format_message, parse

    assert parse(b"990 802.00").fixed["max_print_width"] == " 80"
    assert parse(b"990   2.00").fixed["max_print_width"] == "   "
    with pytest.raises(SIP2Error):
        parse(b"990x82.00")
    with pytest.raises(SIP2Error):
        format_message("99", {"status_code": "0", "max_print_width": " 80", "protocol_version": "2.00"})
