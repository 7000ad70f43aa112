"""A person at a terminal with the real inetutils ``telnet`` client, against the real twistd:
the password is not echoed, what they type after it is, and replies end as configured."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.system.process import GatewayProcess, free_port

TELNET = shutil.which("telnet")
pytestmark = pytest.mark.skipif(TELNET is None, reason="needs a telnet client (apt-get install telnet)")


class Terminal:
    """``telnet 127.0.0.1 PORT`` on a pseudo-terminal; ``screen`` is everything it displayed."""

    def __init__(self, port: int) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes telnet
            os.execv(TELNET, ["telnet", "127.0.0.1", str(port)])
        self.screen = b""

    def wait_for(self, text: bytes, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} never appeared; the screen: {self.screen!r}"
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if ready:
                self.screen += os.read(self.fd, 4096)

    def type(self, keys: bytes) -> None:
        """One key at a time, as a person types."""
        for key in keys:
            os.write(self.fd, bytes([key]))
            time.sleep(0.01)

    def close(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)


@pytest.mark.parametrize("terminator", ["CR", "CRLF"])
def test_a_person_sees_what_they_type_after_the_password(tmp_path: Path, terminator: str) -> None:
    port = free_port()
    gateway = GatewayProcess(tmp_path, ["--listen", f"telnet:tcp:{port}:interface=127.0.0.1:terminator={terminator}",
                                        "--database", "sqlite:gw.sqlite3", "--demo"], [port]).start()
    term = Terminal(port)
    try:
        term.wait_for(b"login: ")
        term.type(b"sc1\r")
        term.wait_for(b"password: ")
        time.sleep(0.2)  # the client switches its echo off when our WILL ECHO arrives
        term.type(b"pass1\r")
        term.wait_for(b"Login OK.  Initiating SIP\r\n")
        time.sleep(0.2)  # ... and on again with our WONT ECHO
        term.type(b"9900302.00\r")
        term.wait_for(b"AMMain Library|")
        term.wait_for(b"|BXYYYYYYYYYYYYYYYY|\r")
        after_password = term.screen.split(b"password: ", 1)[1]
        assert b"pass1" not in term.screen
        assert after_password.startswith(b"\r\nLogin OK.  Initiating SIP\r\n9900302.00")  # echoed by the client
        end = b"|\r\n" if terminator == "CRLF" else b"|\r"
        term.wait_for(end)
    finally:
        term.close()
        gateway.stop()
