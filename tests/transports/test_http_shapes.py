"""The HTTP door's pieces without a server: the three body shapes, X-Forwarded-For from
trusted proxies only, and the ``http`` listener's keys in the config."""

from __future__ import annotations

import ipaddress
import json

import pytest

from sipgateway.config import ConfigError, load, parse_listen
from sipgateway.config.http import DEFAULT_MAX_BODY, DEFAULT_MAX_SESSIONS, HTTPOptions
from sipgateway.sip2 import Message, parse
from sipgateway.transports.httpdoor import shapes
from sipgateway.transports.httpdoor.clients import forwarded_for
from sipgateway.transports.httpdoor.shapes import BadBody

# --- Wise ------------------------------------------------------------------------------------


def test_wise_request_and_response() -> None:
    assert shapes.wise_request(b'{"sip2request": "9900302.00", "token": ""}') == ("9900302.00", "")
    assert shapes.wise_request(b'{"sip2request": "9900302.00\\r", "token": null}') == ("9900302.00", "")
    assert shapes.wise_request(b'{"token": "abc", "sip2request": "9900302.00"}') == ("9900302.00", "abc")
    assert json.loads(shapes.wise_response("98YY", "t")) == {"sip2response": "98YY", "token": "t"}


@pytest.mark.parametrize(("body", "error"), [
    (b"{", "the body is not JSON (Expecting property name enclosed in double quotes: line 1 column 2)"),
    (b"\xff\xfe", "the body is not UTF-8 text"),
    (b"[1]", "the body is a JSON array, not an object"),
    (b"{}", '"sip2request" is missing or not a string'),
    (b'{"sip2request": 93}', '"sip2request" is a JSON number, not a string'),
    (b'{"sip2request": "99", "token": 5}', '"token" is a JSON number, not a string'),
    (b'{"sip2request": "  \\r\\n"}', '"sip2request" is empty; it must hold one SIP2 message'),
    (b'{"sip2request": "9900302.00\\r9900302.00"}',
     '"sip2request" holds more than one line; send one SIP2 message per request'),
])
def test_a_bad_wise_body_names_the_problem(body: bytes, error: str) -> None:
    with pytest.raises(BadBody) as e:
        shapes.wise_request(body)
    assert str(e.value) == error


# --- raw -------------------------------------------------------------------------------------

def test_raw_request_reads_the_charset_and_drops_one_terminator() -> None:
    assert shapes.raw_request(b"9900302.00\r\n", b"text/plain; charset=utf-8") == "9900302.00"
    assert shapes.raw_request("17AB caf\xe9".encode("latin-1"), b"text/plain; charset=latin-1") == "17AB caf\xe9"
    assert shapes.raw_request("17AB café".encode(), None) == "17AB café"
    with pytest.raises(BadBody, match="not utf-8 text"):
        shapes.raw_request(b"17\xff", b"text/plain")
    with pytest.raises(BadBody, match="charset 'klingon', which is unknown"):
        shapes.raw_request(b"99", b"text/plain; charset=klingon")


# --- SIP2Mediator ------------------------------------------------------------------------------

def test_mediator_request_is_the_sip2_text_with_ay_az_last() -> None:
    login = {"code": "93", "fixed_fields": ["0", "0"], "fields": [{"CN": "sc1"}, {"CO": "pass1"}, {"CP": "MAIN"}]}
    assert shapes.mediator_request(json.dumps(login).encode()) == "9300CNsc1|COpass1|CPMAIN|"
    # SIP2Mediator's README writes the code as a number; its parser joins "AY1AZ..." into one field
    login.update(code=93, fields=[{"AY": "1AZF371"}, {"CN": "sc1"}])
    assert shapes.mediator_request(json.dumps(login).encode()) == "9300CNsc1|AY1AZF371"
    login["fields"] = {"CN": "sc1", "AZ": "ABCD", "AY": "3"}  # an object of tags is read too
    assert shapes.mediator_request(json.dumps(login).encode()) == "9300CNsc1|AY3AZABCD"
    assert shapes.mediator_request(b'{"code": "XS"}') == "XS"


@pytest.mark.parametrize(("obj", "error"), [
    ({}, '"code" must be the two-character message code, for example "93"'),
    ({"code": "930"}, '"code" must be the two-character message code, for example "93"'),
    ({"code": "93", "fixed_fields": "00"}, '"fixed_fields" must be an array of strings'),
    ({"code": "93", "fields": [["CN", "x"]]}, '"fields" must be an array of objects such as {"CN": "sc1"}'),
    ({"code": "93", "fields": [{"CNX": "x"}]}, "field tag 'CNX' is not two characters"),
    ({"code": "93", "fields": [{"CO": None}]}, "field CO is a JSON null, not a string"),
    ({"code": "93", "fields": [{"CO": "a|b"}]}, "field CO holds '|', CR or LF, which SIP2 cannot carry in a value"),
])
def test_a_bad_mediator_body_names_the_problem_without_the_value(obj: dict, error: str) -> None:
    with pytest.raises(BadBody) as e:
        shapes.mediator_request(json.dumps(obj).encode())
    assert str(e.value).startswith(error)
    assert "a|b" not in str(e.value)


def test_mediator_response_is_fixed_fields_in_order_and_fields_in_wire_order() -> None:
    reply = parse(b"64              00120240105    101500000100020003000400050006AOMAIN|AA100001|AEAda|"
                  b"AU200001|AU200002|BLY|AY4AZ0000", verify=False)
    out = json.loads(shapes.mediator_response(reply))
    assert out["code"] == "64"
    assert out["fixed_fields"] == [" " * 14, "001", "20240105    101500", "0001", "0002", "0003", "0004", "0005",
                                   "0006"]
    assert out["fields"] == [{"AO": "MAIN"}, {"AA": "100001"}, {"AE": "Ada"}, {"AU": "200001"}, {"AU": "200002"},
                             {"BL": "Y"}, {"AY": "4"}, {"AZ": "0000"}]
    assert json.loads(shapes.mediator_response(Message("96"))) == {"code": "96", "fixed_fields": [], "fields": []}


# --- X-Forwarded-For -------------------------------------------------------------------------

PROXIES = (ipaddress.ip_network("10.0.0.1"), ipaddress.ip_network("192.168.0.0/24"))


@pytest.mark.parametrize(("peer", "header", "client"), [
    ("203.0.113.9", [b"198.51.100.7"], "203.0.113.9"),                # not a trusted proxy: ignored
    ("10.0.0.1", None, "10.0.0.1"),                                    # a trusted proxy without the header
    ("10.0.0.1", [b"198.51.100.7"], "198.51.100.7"),
    ("10.0.0.1", [b"6.6.6.6, 198.51.100.7"], "198.51.100.7"),         # the client cannot pick its address
    ("10.0.0.1", [b"198.51.100.7, 192.168.0.4"], "198.51.100.7"),     # past every trusted proxy
    ("10.0.0.1", [b"198.51.100.7", b"192.168.0.4"], "198.51.100.7"),  # the header given twice
    ("10.0.0.1", [b"[2001:db8::1]:4711"], "2001:db8::1"),
    ("10.0.0.1", [b"198.51.100.7:4711"], "198.51.100.7"),
    ("10.0.0.1", [b"garbage, 192.168.0.4"], "192.168.0.4"),           # garbled: the last vouched-for address
])
def test_the_client_address_comes_from_x_forwarded_for_of_trusted_proxies_only(peer, header, client) -> None:
    assert forwarded_for(peer, header, PROXIES) == client


# --- the listener's keys ---------------------------------------------------------------------

def test_http_listener_keys_in_the_endpoint_and_the_section(tmp_path) -> None:
    listener = parse_listen("http:tcp:8080:interface=127.0.0.1:trusted_proxies=127.0.0.1 \\:\\:1:max_sessions=5")
    assert listener.endpoint == "tcp:8080:interface=127.0.0.1"
    assert listener.settings.options == HTTPOptions((ipaddress.ip_network("127.0.0.1"), ipaddress.ip_network("::1")),
                                                    5, DEFAULT_MAX_BODY)
    assert listener.settings.idle_timeout == 7200  # the http door's default: Wise's two hours
    config = tmp_path / "gw.ini"
    config.write_text("[listener:web]\nlisten = http:tcp:8080\ntrusted_proxies = 10.0.0.1, 10.1.0.0/16 ::1\n"
                      "max_body = 2048\nidle_timeout = 60\n")
    web = load(str(config)).listeners[0]
    assert web.settings.options.trusted_proxies == tuple(ipaddress.ip_network(n) for n in
                                                         ("10.0.0.1", "10.1.0.0/16", "::1"))
    assert web.settings.options.max_body == 2048 and web.settings.options.max_sessions == DEFAULT_MAX_SESSIONS
    assert web.settings.idle_timeout == 60 and web.settings.name == "web"


@pytest.mark.parametrize(("listen", "error"), [
    ("sip:tcp:6001:trusted_proxies=127.0.0.1", "--listen: trusted_proxies= applies only to http listeners, not sip"),
    ("http:tcp:8080:trusted_proxies=proxy.example", "--listen: trusted_proxies: 'proxy.example' is not an IP "
                                                    "address or network"),
    ("http:tcp:8080:max_sessions=0", "--listen: max_sessions='0' must be at least 1"),
    ("http:tcp:8080:max_body=100", "--listen: max_body='100' must be at least 1024"),
])
def test_bad_http_listener_keys_are_named(listen: str, error: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_listen(listen)
    assert str(e.value).startswith(error)
