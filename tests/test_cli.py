"""The ``sipgateway`` command: decode, checksum, send (against a loopback server thread)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from sipgateway.cli import MAX_REPLY, build_parser, main
from sipgateway.sip2 import checksum, format_message, parse

VECTORS = [json.loads(line) for line in (Path(__file__).parent / "vectors.jsonl").read_text("utf-8").splitlines()
           if line.strip()]
VALID = [v for v in VECTORS if v["valid"]]
INVALID = [v for v in VECTORS if not v["valid"]]
DATE = "20240105    101500"
SIP_DATE = re.compile(r"\d{8}    \d{6}")


# -- decode --------------------------------------------------------------------------------

@pytest.mark.parametrize("v", VALID, ids=[v["id"] for v in VALID])
def test_decode_json_matches_every_valid_vector(v: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--json", v["raw"]]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"code": v["code"], "fixed": v["fixed"], "fields": v["fields"]}
    assert out.count("\n") == 1 and err == ""


@pytest.mark.parametrize("v", INVALID, ids=[v["id"] for v in INVALID])
def test_decode_invalid_exits_1_with_the_reason(v: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--json", v["raw"]]) == 1
    out, err = capsys.readouterr()
    assert out == "" and v["error"] in err


def test_decode_human(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "9300CNsipuser|COsippass|CPMAIN|AY1AZF371"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("93 Login (request)\n")
    assert 'uid_algorithm  "0"' in out
    assert re.search(r'CO  login password\s+"sippass"', out)  # the user's own input, shown as given
    assert out.endswith("checksum: right\n")


def test_decode_checksum_absent_repeated_fields_and_unknown_tags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", f"36Y{DATE}AOMAIN|AA1|AFone|AFtwo|ZZx|"]) == 0
    out = capsys.readouterr().out
    assert out.count("AF  screen message") == 2 and "ZZ  unknown field" in out
    assert f'transaction_date  "{DATE}"' in out
    assert out.endswith("checksum: absent\n")


def test_decode_wrong_checksum_shows_fields_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "9300CNsipuser|COsippass|CPMAIN|AY1AZF370"]) == 1
    out, err = capsys.readouterr()
    assert "CN  login user id" in out and "checksum: WRONG (computed F371)" in out
    assert "field AZ at position 34: checksum mismatch" in err


def test_decode_position_and_field_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "2300120240105    10150AOMAIN|AA1|AC|AD|"]) == 1
    assert "field transaction_date at position 5: bad date: non-digit in date/time" in capsys.readouterr().err


def test_decode_encodings(capsys: pytest.CaptureFixture[str]) -> None:
    # F57A is the cp850 byte sum of this message (SIP2 error detection: bytes summed)
    message = f"17{DATE}AOMAIN|ABcáliz|AY2AZF57A"
    assert main(["decode", "--encoding", "cp850", message]) == 0
    assert capsys.readouterr().out.endswith("checksum: right\n")
    assert main(["decode", "--encoding", "ascii", message]) == 1
    assert "cannot be encoded in ascii" in capsys.readouterr().err
    assert main(["decode", "--encoding", "nonesuch", "941"]) == 1
    assert "unknown character set" in capsys.readouterr().err


def test_decode_latin1_character_sum_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", f"17{DATE}AOMAIN|ABcáliz|AY2AZF539"]) == 0
    assert "right by the character sum" in capsys.readouterr().out


# -- checksum ------------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    (["9300CNsipuser|COsippass|CPMAIN|", "--sequence", "1"], "9300CNsipuser|COsippass|CPMAIN|AY1AZF371"),
    (["9300CNsipuser|COsippass|CPMAIN|AY1AZ0000"], "9300CNsipuser|COsippass|CPMAIN|AY1AZF371"),
    (["9300CNsipuser|COsippass|CPMAIN|AY1"], "9300CNsipuser|COsippass|CPMAIN|AY1AZF371"),
    (["9300CNsipuser|COsippass|CPMAIN|AY1AZ"], "9300CNsipuser|COsippass|CPMAIN|AY1AZF371"),
    (["9300CNsipuser|COsippass|CPMAIN"], "9300CNsipuser|COsippass|CPMAIN|AY0AZF372"),
    (["9300CNsipuser|COsippass|CPMAIN|AY5AZF36D", "--sequence", "1"], "9300CNsipuser|COsippass|CPMAIN|AY1AZF371"),
    (["941", "--sequence", "1"], "941AY1AZFDFC"),
    (["97AZ1234"], "97AZFEF5"),
    (["9900302.00"], "9900302.00AY0AZFCA6"),
])
def test_checksum(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checksum", *args]) == 0
    out = capsys.readouterr().out
    assert out == expected + "\n"
    assert parse(expected.encode()).checksum  # and it verifies


def test_checksum_does_not_eat_a_value_ending_in_az(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checksum", f"23001{DATE}AOMAIN|AA1|ACTOPAZ"]) == 0
    assert parse(capsys.readouterr().out.strip().encode()).get("AC") == "TOPAZ"


def test_checksum_now_and_encoding(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checksum", "--encoding", "cp850", "17{now}AOMAIN|ABcáliz|", "--sequence", "2"]) == 0
    out = capsys.readouterr().out.strip()
    assert SIP_DATE.fullmatch(out[2:20])
    assert parse(out.encode("cp850"), "cp850").get("AB") == "cáliz"


def test_checksum_bad_sequence(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checksum", "--sequence", "10", "941"]) == 2
    assert "one digit" in capsys.readouterr().err


def test_usage_errors_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    assert "decode" in capsys.readouterr().out


def test_parser_is_extensible() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    assert {"decode", "checksum", "send"} <= set(subparsers.choices)


# -- send against a loopback server ----------------------------------------------------------

class LoopbackServer:
    """Accepts one connection on 127.0.0.1, records each CR-terminated request and writes
    ``respond(request)`` back (None: stay silent). Bounded: 5 s socket timeouts, closes itself."""

    def __init__(self, respond: Callable[[bytes], bytes | None]) -> None:
        self.respond = respond
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(5)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            buffer = b""
            while True:
                try:
                    chunk = conn.recv(4096)
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while b"\r" in buffer:
                    line, buffer = buffer.split(b"\r", 1)
                    self.requests.append(line)
                    reply = self.respond(line)
                    if reply is not None:
                        conn.sendall(reply)
                    if reply == b"":
                        return  # close without answering

    def close(self) -> list[bytes]:
        self.listener.close()
        self.thread.join(10)
        assert not self.thread.is_alive()
        return self.requests


def acs(request: bytes) -> bytes:
    """Answers like a gateway would: 94 to 93, 98 to 99, 96 otherwise; mirrors AY/AZ."""
    msg = parse(request)
    ed = msg.checksum is not None
    if msg.code == "93":
        ok = "1" if msg.get("CO") == "pass1" else "0"
        data = format_message("94", {"ok": ok}, sequence=msg.sequence, error_detection=ed)
    elif msg.code == "99":
        fixed = {"online_status": "Y", "checkin_ok": "Y", "checkout_ok": "Y", "acs_renewal_policy": "Y",
                 "status_update_ok": "N", "offline_ok": "N", "timeout_period": "030", "retries_allowed": "003",
                 "date_time_sync": DATE, "protocol_version": "2.00"}
        data = format_message("98", fixed, {"AO": "MAIN", "BX": "Y" * 16}, sequence=msg.sequence,
                              error_detection=ed)
    else:
        data = format_message("96", {})
    return data + b"\r\n"  # CRLF, as KOHA sends: the LF must not count as an empty reply


@pytest.fixture
def server():
    servers: list[LoopbackServer] = []

    def start(respond: Callable[[bytes], bytes | None] = acs) -> LoopbackServer:
        s = LoopbackServer(respond)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


def test_send_with_login_and_checksums(server, capsys: pytest.CaptureFixture[str]) -> None:
    srv = server()
    status = main(["send", f"127.0.0.1:{srv.port}", "--login", "sc1:pass1:MAIN", "--checksum", "--timeout", "5",
                   "9900302.00", "23001{now}AOMAIN|AA100001|AC|AD1234|"])
    out, err = capsys.readouterr()
    requests = srv.close()
    assert status == 0, err
    login = b"9300CNsc1|COpass1|CPMAIN|AY0AZ"
    login += checksum(login).encode()
    assert requests[0] == login
    assert requests[1] == b"9900302.00AY1AZFCA5"
    second = parse(requests[2])
    assert second.sequence == "2" and SIP_DATE.fullmatch(second.fixed["transaction_date"])
    # requests are echoed with secrets masked; replies raw and decoded
    assert "pass1" not in out and "1234" not in out
    assert f"> 9300CNsc1|CO****|CPMAIN|AY0AZ{login[-4:].decode()}\n" in out and "|AD****|" in out
    assert "< 941AY0AZFDFD" in out and "98 ACS Status (response)" in out and "96 Request SC Resend" in out
    assert "checksum: right" in out


def test_send_plain_institutionless_login(server, capsys: pytest.CaptureFixture[str]) -> None:
    srv = server()
    assert main(["send", f"127.0.0.1:{srv.port}", "--login", "sc1:pass1", "9900302.00"]) == 0
    assert srv.close() == [b"9300CNsc1|COpass1|", b"9900302.00"]
    assert "< 941" in capsys.readouterr().out


def test_send_login_refused(server, capsys: pytest.CaptureFixture[str]) -> None:
    srv = server()
    assert main(["send", f"127.0.0.1:{srv.port}", "--login", "sc1:wrong", "9900302.00"]) == 1
    assert len(srv.close()) == 1
    assert "login refused" in capsys.readouterr().err


def test_send_reply_timeout(server, capsys: pytest.CaptureFixture[str]) -> None:
    srv = server(lambda request: None)
    assert main(["send", f"127.0.0.1:{srv.port}", "--timeout", "0.2", "--login", "sc1:secret", "9900302.00"]) == 1
    srv.close()
    err = capsys.readouterr().err
    assert "no reply from 127.0.0.1" in err and "within 0.2 s" in err and "secret" not in err


def test_send_server_closes(server, capsys: pytest.CaptureFixture[str]) -> None:
    srv = server(lambda request: b"")
    assert main(["send", f"127.0.0.1:{srv.port}", "--timeout", "5", "9900302.00"]) == 1
    srv.close()
    assert "connection closed by the server" in capsys.readouterr().err


def test_send_two_replies_in_one_read_and_a_reply_without_end(server, capsys: pytest.CaptureFixture[str]) -> None:
    srv = server(lambda request: b"941\r\n\r\n98YYYYNN03000320240105    1015002.00AOMAIN|BXYYYYYYYYYYYYYYYY|\r"
                 if request.startswith(b"93") else None)
    assert main(["send", f"127.0.0.1:{srv.port}", "--timeout", "5", "9300CNsc1|COpass1|", "9900302.00"]) == 0
    srv.close()
    assert "< 98YYYYNN030003" in capsys.readouterr().out  # the second reply of the read, the empty line skipped
    srv = server(lambda request: b"9" * (MAX_REPLY + 1))
    assert main(["send", f"127.0.0.1:{srv.port}", "--timeout", "5", "9900302.00"]) == 1
    srv.close()
    assert f"reply longer than {MAX_REPLY} bytes without a terminator" in capsys.readouterr().err


def test_send_bad_reply_checksum(server, capsys: pytest.CaptureFixture[str]) -> None:
    srv = server(lambda request: b"941AY1AZ0000\r")
    assert main(["send", f"127.0.0.1:{srv.port}", "--timeout", "5", "9900302.00"]) == 1
    srv.close()
    assert "checksum: WRONG (computed FDFC)" in capsys.readouterr().out


def test_send_undecodable_reply(server, capsys: pytest.CaptureFixture[str]) -> None:
    srv = server(lambda request: b"XX\n")
    assert main(["send", f"127.0.0.1:{srv.port}", "--timeout", "5", "9900302.00"]) == 1
    srv.close()
    assert "invalid reply: at position 0: unknown message code" in capsys.readouterr().out


def test_send_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    assert main(["send", f"127.0.0.1:{port}", "--timeout", "2", "9900302.00"]) == 1
    assert f"cannot connect to 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["send", "localhost", "941"],
    ["send", "localhost:99999", "941"],
    ["send", "127.0.0.1:6001", "--login", "nopassword", "941"],
])
def test_send_usage_errors(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert "error" in capsys.readouterr().err


def test_send_needs_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "127.0.0.1:6001", "--login", "sc1:pass1"]) == 2
    assert "MESSAGE" in capsys.readouterr().err


# -- checksum: only SIP2 messages, partial tails completed ----------------------------------

@pytest.mark.parametrize("message, reason", [
    ("garbage", "at position 0: unknown message code ('ga')"),
    ("23001", "field transaction_date at position 5: truncated fixed field transaction_date"),
    ("9300CNsc1|", "field CO: missing required field CO"),
    ("", "at position 0: too short"),
    ("AY1AZ", "at position 0: unknown message code ('AY')"),
])
def test_checksum_refuses_what_is_not_a_sip2_message(message: str, reason: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checksum", message]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"sipgateway checksum: not a SIP2 message: {reason}\n"


@pytest.mark.parametrize("message, completed", [
    # a client that counts past 9: its AY is kept as given, the AZ completed
    ("9300CNsc1|COpass1|CPMAIN|AY89AZ", "9300CNsc1|COpass1|CPMAIN|AY89AZ"),
    ("9300CNsc1|COpass1|CPMAIN|AY89", "9300CNsc1|COpass1|CPMAIN|AY89AZ"),
    ("9300CNsc1|COpass1|CPMAIN|AY12AZ0000", "9300CNsc1|COpass1|CPMAIN|AY12AZ"),
    ("9300CNsc1|COpass1|CPMAIN|AY8AZ", "9300CNsc1|COpass1|CPMAIN|AY8AZ"),
    ("9300CNsc1|COpass1|CPMAIN|AY3AZ1234", "9300CNsc1|COpass1|CPMAIN|AY3AZ"),  # full: recomputed
    ("9300CNsc1|COpass1|CPMAIN|AZ", "9300CNsc1|COpass1|CPMAIN|AZ"),  # AZ without AY: none added
    ("9300CNsc1|COpass1|CPMAIN|AZ12", "9300CNsc1|COpass1|CPMAIN|AZ"),
])
def test_checksum_completes_the_tail_it_was_given(message: str, completed: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["checksum", message]) == 0
    out = capsys.readouterr().out
    assert out == completed + checksum(completed.encode()) + "\n"


# -- a reader that goes away ----------------------------------------------------------------

def run_into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess:
    """Run the command with its stdout a pipe nobody reads any more (``| head`` after it quit)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "sipgateway.cli", *args], stdout=write,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, timeout=60)
    finally:
        os.close(write)


def test_send_into_a_closed_pipe_exits_quietly(server) -> None:
    srv = server()
    out = run_into_closed_pipe(["send", f"127.0.0.1:{srv.port}", "--login", "sc1:pass1:MAIN", "--checksum",
                                "--timeout", "5", "9900302.00"])
    assert (out.returncode, out.stderr) == (128 + signal.SIGPIPE, "")


def test_decode_into_a_closed_pipe_exits_quietly() -> None:
    out = run_into_closed_pipe(["decode", "9300CNsc1|COpass1|CPMAIN|"])
    assert (out.returncode, out.stderr) == (128 + signal.SIGPIPE, "")
