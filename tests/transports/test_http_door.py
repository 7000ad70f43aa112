"""The ``http`` door's resource and HTTP sessions over twisted.web's real channel (a
StringTransport, a Clock, the in-memory ACS): the three shapes, tokens and their expiry,
HTTP errors as JSON, bounded bodies and sessions, ordering, lockout by client address,
client certificates bound to accounts."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from cryptography import x509

from sipgateway.config import parse_listen
from sipgateway.session import MAX_PENDING
from sipgateway.sip2 import checksum
from tests.transports.certs_pki import CLIENT_SUBJECT, make_pki
from tests.transports.httpdoor_harness import LOGIN, Door, parse_answers

PATRON = "6300120240105    101500          AOMAIN|AA100001|AC|AD1234|"
CHECKOUT = "11YN20240105    101500                  AOMAIN|AA100001|AB200001|AC|"
CHECKIN = "09N20240105    10150020240105    101500APMAIN|AOMAIN|AB200001|AC|"
ITEM = "1720240105    101500AOMAIN|AB200001|AC|"


def with_ed(body: str, seq: int) -> str:
    text = f"{body}AY{seq}AZ"
    return text + checksum(text.encode())


@pytest.fixture
def door() -> Door:
    return Door()


# --- OCLC Wise's tunnel ------------------------------------------------------------------------

def test_wise_token_flow_login_63_11_09(door: Door) -> None:
    client = door.client()
    login = client.wise(with_ed(LOGIN, 1))
    assert login.status == 200 and login.headers["content-type"] == "application/json"
    token = login.json["token"]
    assert login.json == {"sip2response": "941AY1AZFDFC", "token": token}
    assert len(token) >= 43 and token.replace("-", "").replace("_", "").isalnum()
    patron = client.wise(with_ed(PATRON, 2), token).json
    assert patron["token"] == token and patron["sip2response"].startswith("64")
    assert "|AEAda Lovelace|" in patron["sip2response"] and patron["sip2response"][-9:-4] == "AY2AZ"
    checkout = client.wise(CHECKOUT, token).json["sip2response"]
    assert checkout.startswith("121NNY") and "AJHarry Potter y el cáliz de fuego|" in checkout
    assert client.wise(CHECKIN, token).json["sip2response"].startswith("101")
    assert [call[0] for call in door.acs.calls] == ["authenticate", "patron_information", "checkout", "checkin"]
    assert {s.account.name for s in door.gateway.sessions} == {"sc1"}  # one session, as /sessions shows


def test_a_refused_login_gets_no_token_and_keeps_no_session(door: Door) -> None:
    answer = door.client().wise("9300CNsc1|COwrong|CPMAIN|")
    assert answer.json == {"sip2response": "940", "token": ""}
    assert len(door.tunnels) == 0 and not door.gateway.sessions


def test_a_request_before_login_gets_the_sessions_refusal(door: Door) -> None:
    answer = door.client().wise(ITEM).json
    assert answer["token"] == "" and answer["sip2response"].startswith("18")
    assert "AFPlease log in first (93)|" in answer["sip2response"]
    assert door.acs.calls == [] and not door.gateway.sessions


def test_an_unknown_token_is_401_and_a_93_with_it_logs_in_again(door: Door) -> None:
    client = door.client()
    answer = client.wise(ITEM, "not-a-token")
    assert answer.status == 401 and answer.json == {"error": "unknown or expired session; log in again with a 93"}
    assert answer.headers["www-authenticate"] == 'SIP2 login="93"'
    again = client.wise(LOGIN, "not-a-token").json
    assert again["sip2response"] == "941" and again["token"] not in ("", "not-a-token")


def test_a_token_expires_after_the_idle_timeout_then_401_then_login_again(door: Door) -> None:
    token = door.login()
    door.clock.advance(7199)  # the http door's default idle_timeout: two hours
    assert door.client().wise(ITEM, token).status == 200  # (idle HTTP connections close sooner)
    door.clock.advance(7199)  # every request starts the idle time again
    assert door.client().wise(ITEM, token).status == 200
    door.clock.advance(7200)
    assert not door.gateway.sessions and len(door.tunnels) == 0
    client = door.client()
    assert client.wise(ITEM, token).status == 401
    fresh = door.login(client)
    assert fresh != token and client.wise(ITEM, fresh).status == 200


def test_the_accounts_idle_timeout_wins_after_login() -> None:
    door = Door(idle_timeouts={"sc1": 60.0})
    client = door.client()
    token = door.login(client)
    door.clock.advance(60)
    assert client.wise(ITEM, token).status == 401


def test_an_idle_keep_alive_connection_closes_but_its_session_stays(door: Door) -> None:
    client = door.client()
    token = door.login(client)
    door.clock.advance(300)
    assert client.transport.disconnecting and door.gateway.sessions
    assert door.client().wise(ITEM, token).status == 200


@pytest.mark.parametrize("path", ["/sip2https/services", "/sip2", "/sip2/json"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_other_methods_are_405(door: Door, path: str, method: str) -> None:
    answer = door.client().request(path, b"", method=method)
    assert answer.status == 405 and answer.headers["allow"] == "POST"
    if method != "HEAD":
        assert answer.body == b'{"error": "Method not allowed"}'


def test_another_path_is_404(door: Door) -> None:
    answer = door.client().request("/sip2/other", LOGIN)
    assert answer.status == 404
    assert answer.json == {"error": "no such path; POST to /sip2https/services, /sip2, /sip2/json"}


@pytest.mark.parametrize(("path", "body", "error"), [
    ("/sip2https/services", b'{"sip2request": "99', "the body is not JSON (Unterminated string starting at: "
                                                    "line 1 column 17)"),
    ("/sip2https/services", b'"9900302.00"', "the body is a JSON string, not an object"),
    ("/sip2", b"", "the body is empty; it must hold one SIP2 message"),
    ("/sip2/json", b'{"code": "93", "fields": [{"CO": [1]}]}', "field CO is a JSON array, not a string"),
])
def test_a_malformed_body_is_400_with_a_json_error(door: Door, path: str, body: bytes, error: str) -> None:
    answer = door.client().request(path, body)
    assert answer.status == 400 and answer.json["error"].startswith(error)
    assert b"Traceback" not in answer.raw and not door.gateway.sessions


def test_a_message_the_sessions_charset_cannot_carry_is_400(door: Door) -> None:
    client = door.client()
    token = client.wise("9300CNascii|COpw|CPMAIN|").json["token"]  # an ASCII account
    answer = client.wise("1720240105    101500AOMAIN|ABcafé|AC|", token)
    assert answer.status == 400
    assert answer.json == {"error": "character 33 of the SIP2 message cannot be written in the session's character "
                                    "set (ascii)"}
    assert client.wise(ITEM, token).status == 200  # the session goes on


def test_a_message_longer_than_max_line_is_400() -> None:
    door = Door("http:tcp:0:max_line=64")
    answer = door.client().wise("17" + "x" * 70)
    assert answer.status == 400
    assert answer.json == {"error": "the SIP2 message is 72 bytes, more than the listener's max_line (64)"}


# --- bounded bodies ---------------------------------------------------------------------------

def test_a_body_over_max_body_is_413_at_its_content_length_and_the_connection_closes() -> None:
    door = Door("http:tcp:0:max_body=1024")
    client = door.client()
    client.send(b"POST /sip2 HTTP/1.1\r\nHost: g\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 100)
    [answer] = client.answers()
    assert answer.status == 413 and answer.headers["connection"] == "close"
    assert answer.json == {"error": "the body is longer than the listener's max_body (1024 bytes)"}
    assert client.transport.disconnecting
    client.send(b"x" * 4000)  # what was already on its way is dropped
    assert client.answers() == []


def test_a_chunked_body_over_max_body_is_413_when_it_passes_the_bound() -> None:
    door = Door("http:tcp:0:max_body=1024")
    client = door.client()
    client.send(b"POST /sip2 HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n")
    client.send(b"300\r\n" + b"x" * 0x300 + b"\r\n")
    assert client.answers() == []
    client.send(b"300\r\n" + b"x" * 0x300 + b"\r\n")
    [answer] = client.answers()
    assert answer.status == 413 and client.transport.disconnecting


def test_a_chunked_body_under_the_bound_is_served(door: Door) -> None:
    client = door.client()
    body = json.dumps({"sip2request": LOGIN}).encode()
    client.send(b"POST /sip2https/services HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
                + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    [answer] = client.answers()
    assert answer.json["sip2response"] == "941"


# --- raw and SIP2Mediator's shapes ---------------------------------------------------------------

def test_raw_shape_carries_the_session_in_a_header(door: Door) -> None:
    client = door.client()
    login = client.raw(with_ed(LOGIN, 1) + "\r")
    assert login.status == 200 and login.headers["content-type"] == "text/plain; charset=utf-8"
    assert login.body == b"941AY1AZFDFC" and login.headers["cache-control"] == "no-store"
    token = login.token
    item = client.raw(ITEM, token)
    assert item.body.startswith(b"18") and b"AJDune|" in item.body and item.token == token
    assert client.raw(ITEM, "stale").status == 401
    refused = client.raw("9300CNsc1|COwrong|CPMAIN|")
    assert refused.body == b"940" and refused.token is None


def test_mediator_shape_login_request_and_end_session(door: Door) -> None:
    client = door.client()
    login = client.mediator({"code": "93", "fixed_fields": ["0", "0"],
                             "fields": [{"CN": "sc1"}, {"CO": "pass1"}, {"CP": "MAIN"}, {"AY": "1AZFDFC"}]})
    assert login.json == {"code": "94", "fixed_fields": ["1"], "fields": [{"AY": "1"}, {"AZ": "FDFC"}]}
    token = login.token
    patron = client.mediator({"code": 63, "fixed_fields": ["001", "20240105    101500", " " * 10],
                              "fields": [{"AO": "MAIN"}, {"AA": "100001"}, {"AC": ""}, {"AD": "1234"}]}, token).json
    assert patron["code"] == "64" and len(patron["fixed_fields"]) == 9
    assert patron["fixed_fields"][1:3] == ["001", "20240105    101500"]
    assert patron["fields"][:3] == [{"AO": "MAIN"}, {"AA": "100001"}, {"AE": "Ada Lovelace"}]
    assert door.acs.calls[-1][0] == "patron_information"
    end = client.mediator({"code": "XS"}, token)
    assert end.json == {"code": "XT", "fixed_fields": [], "fields": []}
    assert not door.gateway.sessions
    assert client.mediator({"code": "99", "fixed_fields": ["0", "030", "2.00"]}, token).status == 401


def test_mediator_shape_a_message_that_is_not_sip2_gets_96_from_the_session(door: Door) -> None:
    client = door.client()
    token = door.login(client)
    short = client.mediator({"code": "17", "fixed_fields": ["2024"], "fields": [{"AB": "200001"}]}, token)
    assert short.status == 200 and short.json == {"code": "96", "fixed_fields": [], "fields": []}
    unknown = client.mediator({"code": "Q7", "fixed_fields": []}, token)
    assert unknown.json["code"] == "96"


# --- one session, many requests ------------------------------------------------------------------

def test_concurrent_requests_on_one_token_are_answered_in_order(door: Door) -> None:
    token = door.login()
    first, second = door.client(), door.client()
    door.acs.manual = True
    assert first.wise(with_ed(ITEM, 1), token, expect=0) is None
    assert second.wise(with_ed(ITEM, 2), token, expect=0) is None
    assert len(door.acs.pending) == 1  # one at a time, in the session's queue
    door.acs.fire()
    [one] = first.answers()
    assert one.json["sip2response"][-9:-4] == "AY1AZ" and second.answers() == []
    door.acs.fire()
    [two] = second.answers()
    assert two.json["sip2response"][-9:-4] == "AY2AZ"


def test_more_waiting_requests_than_a_session_queues_are_429(door: Door) -> None:
    token = door.login()
    door.acs.manual = True
    clients = [door.client() for _ in range(MAX_PENDING + 1)]
    for client in clients[:MAX_PENDING]:
        client.wise(ITEM, token, expect=0)
    refused = clients[-1].wise(ITEM, token)
    assert refused.status == 429 and "wait for their replies" in refused.json["error"]
    while door.acs.pending:
        door.acs.fire()
    door.acs.manual = False
    assert all(c.answers()[0].status == 200 for c in clients[:MAX_PENDING])
    assert clients[-1].wise(ITEM, token).status == 200  # the session is still there


def test_a_repeated_checkout_with_ay_az_is_replayed_not_run_twice(door: Door) -> None:
    client = door.client()
    token = door.login(client)
    first = client.wise(with_ed(CHECKOUT, 3), token).json["sip2response"]
    again = client.wise(with_ed(CHECKOUT, 3), token).json["sip2response"]
    assert again == first and [c[0] for c in door.acs.calls].count("checkout") == 1
    assert client.wise("97", token).json["sip2response"] == first


def test_an_acs_timeout_is_the_sessions_failure_reply(door: Door) -> None:
    client = door.client()
    token = door.login(client)
    door.acs.manual = True
    client.wise(CHECKOUT, token, expect=0)
    door.clock.advance(door.gateway.acs_timeout)
    [answer] = client.answers()
    assert answer.json["sip2response"].startswith("120") and "did not answer in time" in answer.json["sip2response"]


def test_a_login_whose_client_went_away_keeps_no_session(door: Door) -> None:
    client = door.client()
    door.acs.manual = True
    client.wise(LOGIN, expect=0)
    client.channel.connectionLost(None)
    door.acs.fire()
    assert len(door.tunnels) == 0 and not door.gateway.sessions


def test_max_sessions_ends_the_one_unused_longest() -> None:
    door = Door("http:tcp:0:max_sessions=2")
    client = door.client()
    first, second = door.login(client), door.login(client)
    door.clock.advance(1)
    assert client.wise(ITEM, first).status == 200  # first is now used more recently than second
    third = door.login(client)
    assert len(door.tunnels) == 2 and len(door.gateway.sessions) == 2
    assert client.wise(ITEM, second).status == 401
    assert client.wise(ITEM, first).status == 200 and client.wise(ITEM, third).status == 200


def test_a_gateway_restart_forgets_every_token(door: Door) -> None:
    token = door.login()
    door.site.doStart()
    door.site.doStop()  # the listener stops (the gateway stops)
    assert not door.gateway.sessions and door.client().wise(ITEM, token).status == 401


# --- lockout by client address ---------------------------------------------------------------------

def test_ten_failed_logins_from_one_address_lock_it_out() -> None:
    door = Door()
    attacker, kiosk = door.client("10.0.0.66"), door.client("10.0.0.7")
    for _ in range(10):
        assert attacker.wise("9300CNsc1|COwrong|CPMAIN|").json["sip2response"] == "940"
    assert attacker.wise(LOGIN).json == {"sip2response": "940", "token": ""}  # locked, even with the password
    assert kiosk.wise(LOGIN).json["sip2response"] == "941"  # another address is not


def test_x_forwarded_for_counts_only_from_trusted_proxies() -> None:
    door = Door("http:tcp:0:trusted_proxies=10.0.0.1")
    proxy, stranger = door.client("10.0.0.1"), door.client("10.0.0.66")
    for n in range(10):  # behind the proxy, each failure from another client address
        proxy.wise("9300CNsc1|COwrong|CPMAIN|", headers={"X-Forwarded-For": f"198.51.100.{n}"})
    assert proxy.wise(LOGIN, headers={"X-Forwarded-For": "198.51.100.99"}).json["sip2response"] == "941"
    for n in range(10):  # a stranger's X-Forwarded-For is not read: all its failures are its own
        stranger.wise("9300CNsc1|COwrong|CPMAIN|", headers={"X-Forwarded-For": f"203.0.113.{n}"})
    assert stranger.wise(LOGIN, headers={"X-Forwarded-For": "203.0.113.99"}).json["sip2response"] == "940"
    forwarded = [s for s in door.gateway.sessions if s.account is not None]
    assert forwarded[0].address == "198.51.100.99" and "198.51.100.99 via 10.0.0.1:50000" in forwarded[0].peer


# --- client certificates ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client_cert(tmp_path_factory) -> x509.Certificate:
    return make_pki(str(tmp_path_factory.mktemp("pki"))).client.cert


def test_a_client_certificate_bound_to_an_account_needs_no_93(client_cert) -> None:
    settings = parse_listen("http:tcp:0").settings
    door = Door(settings=type(settings)(**{**settings.__dict__, "cert_accounts": {CLIENT_SUBJECT: "sc1"}}))
    kiosk = door.client(certificate=client_cert)
    first = kiosk.wise(ITEM).json
    assert first["sip2response"].startswith("18") and "Please log in" not in first["sip2response"]
    token = first["token"]
    assert token and kiosk.wise(ITEM, token).json["token"] == token
    assert kiosk.wise("9300CNascii|COpw|CPMAIN|", token).json["sip2response"] == "940"  # bound to sc1
    assert door.client().wise(ITEM, token).status == 401  # the token is not good without the certificate
    [session] = door.gateway.sessions
    assert session.account.name == "sc1" and f"[{CLIENT_SUBJECT}]" in session.peer


def test_pipelined_requests_on_one_connection_are_answered_in_order(door: Door) -> None:
    client = door.client()
    token = door.login(client)
    one = json.dumps({"sip2request": with_ed(ITEM, 1), "token": token}).encode()
    two = json.dumps({"sip2request": with_ed(ITEM, 2), "token": token}).encode()
    client.send(b"".join(b"POST /sip2https/services HTTP/1.1\r\nHost: g\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body) for body in (one, two)))
    answers = client.answers()
    assert [json.loads(a.body)["sip2response"][-9:-4] for a in answers] == ["AY1AZ", "AY2AZ"]


def test_answers_carry_a_date_and_never_a_traceback_on_a_bug(door: Door) -> None:
    client = door.client()
    token = door.login(client)
    door.acs.raise_on.add("item_information")
    answer = client.wise(ITEM, token)
    assert answer.status == 200 and "could not complete this request" in answer.json["sip2response"]
    assert datetime.strptime(answer.headers["date"], "%a, %d %b %Y %H:%M:%S GMT")
    assert parse_answers(answer.raw)[0].status == 200
