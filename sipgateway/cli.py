"""The ``sipgateway`` command: decode, checksum and send SIP2 messages by hand; unlock; rules test;
usage reports and the embedded database's data (usagereport.py, dbtool.py).

Subcommands register themselves in ``COMMANDS``; another module adds one with::

    @command
    def _mine(subparsers): p = subparsers.add_parser("mine", ...); p.set_defaults(handler=run)

``main(argv)`` returns the exit status: 0 fine, 1 bad message / connection / reply, 2 usage,
141 (128 + SIGPIPE, as the shell reports for tools that SIGPIPE stops) when whoever read the
output went away (``| head``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TextIO

from sipgateway.logmask import masked
from sipgateway.sip2 import (
    MESSAGES,
    ChecksumError,
    Message,
    SIP2Error,
    checksum,
    format_message,
    parse,
    sip_date,
    tag_name,
    to_json,
)
from sipgateway.transports.framing import LineSplitter

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []
MAX_REPLY = 64 * 1024
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
#: a trailing error-detection block, complete or not, as typed by hand (clients that count
#: past 9 send a multi-digit AY)
_ED_TAIL = re.compile(r"(?:AY(?P<seq>\d+))?(?:AZ(?P<hex>[0-9A-Fa-f]{0,4}))?$")


def command(register: Callable[[argparse._SubParsersAction], None]) -> Callable[[argparse._SubParsersAction], None]:
    """Decorator: ``register(subparsers)`` adds one subcommand with a ``handler`` default."""
    COMMANDS.append(register)
    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sipgateway", description="SIP2 tools: decode, checksum, send.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already explained on stderr)
        return e.code if isinstance(e.code, int) else 2
    try:
        status = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:  # stdout's reader is gone: stop quietly, as cat or grep would
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    return status


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush finds no broken pipe."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):  # not a real file (captured by a test)
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


def _expand(message: str) -> str:
    """``{now}`` -> the current 18-character SIP date (handy when typing messages)."""
    return message.replace("{now}", sip_date(datetime.now())) if "{now}" in message else message


def _encode(text: str, encoding: str) -> bytes:
    try:
        return text.encode(encoding)
    except LookupError:
        raise SIP2Error(f"unknown character set {encoding!r}") from None
    except UnicodeEncodeError as e:
        raise SIP2Error(f"character {text[e.start]!r} cannot be encoded in {encoding}", None, e.start) from None


# -- decode -------------------------------------------------------------------------------

def _checksum_status(data: bytes, msg: Message, encoding: str) -> str:
    if msg.checksum is None:
        return "absent"
    summed = data[:data.rstrip(b" \t\r\n\x00").rfind(b"AZ") + 2]
    if checksum(summed) == msg.checksum.upper():
        return "right"
    return f"right by the character sum (old servers); the byte sum in {encoding} is {checksum(summed)}"


def _print_message(msg: Message, out: TextIO, indent: str = "") -> None:
    spec = MESSAGES[msg.code]
    out.write(f"{indent}{msg.code} {spec.name} ({spec.direction})\n")
    width = max((len(name) for name in msg.fixed), default=0)
    for name, value in msg.fixed.items():
        out.write(f"{indent}  {name:<{width}}  {json.dumps(value, ensure_ascii=False)}\n")
    for tag, values in msg.fields.items():
        for value in values if isinstance(values, list) else [values]:
            out.write(f"{indent}  {tag}  {tag_name(tag):<24} {json.dumps(value, ensure_ascii=False)}\n")


def _parse_showing(data: bytes, encoding: str) -> tuple[Message, ChecksumError | None]:
    """``data`` parsed, and a checksum that does not match (the message is shown anyway);
    ``SIP2Error`` for anything else wrong with it."""
    try:
        return parse(data, encoding), None
    except ChecksumError as e:
        if e.reason != "checksum mismatch":
            raise
        return parse(data, encoding, verify=False), e


def _decode(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    try:
        data = _encode(_expand(args.message), args.encoding)
        msg, wrong = _parse_showing(data, args.encoding)
    except SIP2Error as e:
        err.write(f"sipgateway decode: invalid message: {e}\n")
        return 1
    if args.json:
        if wrong is not None:
            err.write(f"sipgateway decode: invalid message: {wrong}\n")
            return 1
        out.write(json.dumps(to_json(msg), ensure_ascii=False) + "\n")
        return 0
    _print_message(msg, out)
    if wrong is not None:
        out.write(f"checksum: WRONG ({wrong.detail})\n")
        err.write(f"sipgateway decode: invalid message: {wrong}\n")
        return 1
    out.write(f"checksum: {_checksum_status(data, msg, args.encoding)}\n")
    return 0


@command
def _decode_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("decode", help="show a message's fields and whether its checksum is right",
                              description="Decode one SIP2 message (without its terminator).")
    p.add_argument("--json", action="store_true", help='print {"code", "fixed", "fields"} as one JSON object')
    p.add_argument("--encoding", default="utf-8", help="character set (default utf-8; e.g. ascii, cp850)")
    p.add_argument("message", metavar="MESSAGE")
    p.set_defaults(handler=_decode)


# -- checksum -----------------------------------------------------------------------------

def with_error_detection(text: str, sequence: str | None, encoding: str) -> bytes:
    """``text`` with a correct AY/AZ: an existing (possibly partial) AY/AZ tail is replaced,
    keeping its sequence number unless ``sequence`` is given (default 0). A message that has
    variable fields gets the "|" before AY that strict output always has."""
    body, old_seq, had_az_only = split_error_detection(text)
    if sequence is None:
        sequence = old_seq if old_seq is not None else (None if had_az_only else "0")
    spec = MESSAGES.get(body[:2])
    if spec is not None and len(body) > 2 + spec.fixed_len and not body.endswith("|"):
        body += "|"  # it has variable fields, and strict output ends each with "|"
    summed = _encode(body + (f"AY{sequence}" if sequence is not None else "") + "AZ", encoding)
    return summed + checksum(summed).encode("ascii")


def split_error_detection(text: str) -> tuple[str, str | None, bool]:
    """``text`` without its trailing AY/AZ block (complete or not), that block's sequence
    number (None without AY), and whether it had an AZ without an AY."""
    tail = _ED_TAIL.search(text, 2)
    if tail is None or not tail.group(0) or not _at_field_start(text, tail.start()):
        return text, None, False
    return text[:tail.start()], tail.group("seq"), tail.group("seq") is None


def _at_field_start(text: str, i: int) -> bool:
    """Whether a tag can start at ``i``: after "|", or right after the fixed part. ("AY"
    glued to the last value is the one exception the lenient parser allows, checked first.)"""
    if text[i:i + 2] == "AY" or text[i - 1:i] == "|":
        return True
    spec = MESSAGES.get(text[:2])
    return spec is not None and i == 2 + spec.fixed_len


def _checksum(args: argparse.Namespace) -> int:
    if args.sequence is not None and not (len(args.sequence) == 1 and args.sequence.isdigit()):
        sys.stderr.write("sipgateway checksum: --sequence is one digit, 0-9\n")
        return 2
    message = _expand(args.message)
    try:
        data = with_error_detection(message, args.sequence, args.encoding)
    except SIP2Error as e:
        sys.stderr.write(f"sipgateway checksum: {e}\n")
        return 1
    try:  # only a SIP2 message gets one: a known code, its whole fixed part, its required fields
        parse(_encode(split_error_detection(message)[0], args.encoding), args.encoding)
    except SIP2Error as e:
        sys.stderr.write(f"sipgateway checksum: not a SIP2 message: {e}\n")
        return 1
    sys.stdout.write(data.decode(args.encoding) + "\n")
    return 0


@command
def _checksum_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("checksum", help="append a correct AY/AZ to a message",
                              description="Print MESSAGE with a correct AY<n>AZ<hhhh> (an existing one is "
                                          "replaced or completed).")
    p.add_argument("--sequence", metavar="N", help="sequence number 0-9 (default: the message's own, else 0)")
    p.add_argument("--encoding", default="utf-8", help="character set the checksum is summed in (default utf-8)")
    p.add_argument("message", metavar="MESSAGE")
    p.set_defaults(handler=_checksum)


# -- send ---------------------------------------------------------------------------------

class _Replies:
    """Reads replies ended by CR, LF or CRLF from a blocking socket; empty lines are skipped."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lines = LineSplitter(MAX_REPLY)
        self.ready: deque[bytes] = deque()

    def read(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while not self.ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed by the server")
            lines = self.lines.feed(chunk)
            if lines is None:
                raise OSError(f"reply longer than {MAX_REPLY} bytes without a terminator")
            self.ready.extend(lines)
        return self.ready.popleft()


def _address(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _credentials(value: str) -> tuple[str, str, str | None]:
    """USER:PASS[:INSTITUTION]; with three or more parts the last one is the institution."""
    parts = value.split(":")
    if len(parts) < 2 or not parts[0]:
        raise argparse.ArgumentTypeError("expected USER:PASS[:INSTITUTION]")
    if len(parts) == 2:
        return parts[0], parts[1], None
    return parts[0], ":".join(parts[1:-1]), parts[-1]


def _send(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    host, port = args.address
    requests: list[bytes] = []
    sequence = 0
    try:
        if args.login is not None:
            user, password, institution = args.login
            fields = {"CN": user, "CO": password, "CP": institution}
            requests.append(format_message("93", {"uid_algorithm": "0", "pwd_algorithm": "0"}, fields,
                                           sequence=str(sequence) if args.checksum else None,
                                           error_detection=args.checksum, encoding=args.encoding))
            sequence += 1
        for message in args.messages:
            text = _expand(message)
            if args.checksum:
                requests.append(with_error_detection(text, str(sequence % 10), args.encoding))
                sequence += 1
            else:
                requests.append(_encode(text, args.encoding))
    except SIP2Error as e:
        err.write(f"sipgateway send: bad message: {e}\n")
        return 1
    try:
        sock = socket.create_connection((host, port), timeout=args.timeout)
    except OSError as e:
        err.write(f"sipgateway send: cannot connect to {host}:{port}: {e}\n")
        return 1
    status = 0
    with sock:
        replies = _Replies(sock)
        for i, request in enumerate(requests):
            shown = masked(request).decode(args.encoding, "replace")
            out.write(f"> {shown}\n")
            try:
                sock.sendall(request + b"\r")
                reply = replies.read(args.timeout)
            except TimeoutError:
                err.write(f"sipgateway send: no reply from {host}:{port} within {args.timeout:g} s to {shown}\n")
                return 1
            except OSError as e:
                err.write(f"sipgateway send: {host}:{port}: {e}\n")
                return 1
            out.write(f"< {reply.decode(args.encoding, 'replace')}\n")
            status = max(status, _show_reply(reply, args.encoding, out))
            if i == 0 and args.login is not None and reply[:3] != b"941":
                err.write("sipgateway send: login refused\n")
                return 1
    return status


def _show_reply(reply: bytes, encoding: str, out: TextIO) -> int:
    try:
        msg, wrong = _parse_showing(reply, encoding)
    except SIP2Error as e:
        out.write(f"  invalid reply: {e}\n")
        return 1
    _print_message(msg, out, "  ")
    if wrong is not None:
        out.write(f"  checksum: WRONG ({wrong.detail})\n")
        return 1
    if msg.checksum is not None:
        out.write(f"  checksum: {_checksum_status(reply, msg, encoding)}\n")
    return 0


@command
def _send_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("send", help="send messages to a SIP2 server and show the replies",
                              description="Send each MESSAGE (CR-terminated) and print its reply, raw and "
                                          "decoded. {now} in a MESSAGE becomes the current SIP date.")
    p.add_argument("address", metavar="HOST:PORT", type=_address)
    p.add_argument("--login", metavar="USER:PASS[:INSTITUTION]", type=_credentials,
                   help="send a 93 login first (CP=INSTITUTION when given)")
    p.add_argument("--checksum", action="store_true", help="add AY/AZ with an incrementing sequence number")
    p.add_argument("--encoding", default="utf-8", help="character set (default utf-8)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="seconds to wait (default 10)")
    p.add_argument("messages", metavar="MESSAGE", nargs="+")
    p.set_defaults(handler=_send)


# -- unlock -------------------------------------------------------------------------------

@command
def _unlock_command(subparsers: argparse._SubParsersAction) -> None:
    from sipgateway import unlock

    p = subparsers.add_parser("unlock", help="list or lift login lockouts and PIN locks",
                              description="Lift every login lockout and PIN lock of a client address, an SC "
                                          "account or a patron (on a running gateway too), or list them.")
    unlock.add_arguments(p)
    p.set_defaults(handler=unlock.run)


# -- report, db: modules of their own ------------------------------------------------------

@command
def _report_command(subparsers: argparse._SubParsersAction) -> None:
    from sipgateway import usagereport

    usagereport.register(subparsers)


@command
def _db_command(subparsers: argparse._SubParsersAction) -> None:
    from sipgateway import dbtool

    dbtool.register(subparsers)


# -- check-config -------------------------------------------------------------------------

@command
def _check_config_command(subparsers: argparse._SubParsersAction) -> None:
    from sipgateway import checkconfig

    p = subparsers.add_parser("check-config", help="check a configuration file without starting the gateway",
                              description="Make every check start-up makes (keys, values, endpoints, certificate "
                                          "files, the accounts listeners name) without binding anything. Exit 0 "
                                          "with a summary, or 1 with one line per problem.")
    checkconfig.add_arguments(p)
    p.set_defaults(handler=checkconfig.run)


@command
def _rules_command(subparsers: argparse._SubParsersAction) -> None:
    from sipgateway import rulestest

    p = subparsers.add_parser("rules", help="try an account's rewrite rules on a message",
                              description="Rewrite rules (forwarding mode): 'rules test' prints a message after them.")
    rulestest.add_arguments(p)


# -- offline ------------------------------------------------------------------------------

@command
def _offline_command(subparsers: argparse._SubParsersAction) -> None:
    from sipgateway.acs.offline import cli as offline

    p = subparsers.add_parser("offline", help="report or export transactions accepted while the library system "
                                              "was offline",
                              description="The offline journal in the gateway's database: a report, or the pending "
                                          "(or conflicting) transactions as a Koha .koc or Evergreen offline file.")
    offline.add_arguments(p)
    p.set_defaults(handler=offline.run)


if __name__ == "__main__":
    raise SystemExit(main())
