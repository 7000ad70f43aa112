"""What reaches the log about a client: its bytes escaped, secrets masked, excerpts capped."""

from __future__ import annotations

import pytest
from twisted.logger import formatEvent, globalLogPublisher

from sipgateway.logmask import LOG_EXCERPT, excerpt, mask, printable
from tests.test_session import Harness


class Logged:
    """Every event logged while the test runs, formatted."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        self.events.append(event)

    def lines(self, containing: str = "") -> list[str]:
        return [text for text in map(formatEvent, self.events) if containing in text]

    def clear(self) -> None:
        self.events.clear()


@pytest.fixture
def logged():
    capture = Logged()
    globalLogPublisher.addObserver(capture)
    yield capture
    globalLogPublisher.removeObserver(capture)


def test_client_bytes_are_escaped_to_printable_ascii() -> None:
    hostile = b"\x1b[2J\x1b]0;owned\x07\r\nfake: logged in as 'admin' \\ \xc3\xa9\x00"
    text = printable(hostile)
    assert text.isascii() and text.isprintable()
    assert text == "\\x1b[2J\\x1b]0;owned\\x07\\r\\nfake: logged in as \\'admin\\' \\\\ \\xc3\\xa9\\x00"


def test_excerpt_masks_before_cutting_and_says_how_much_was_left_out() -> None:
    assert excerpt(b"9300CNsc1|COpass1|CPMAIN|") == "9300CNsc1|CO****|CPMAIN|"
    long = b"2300120240105    101500AOMAIN|AA1|AD" + b"s" * 400 + b"|AC" + b"t" * 10 + b"|"
    text = excerpt(long)
    assert "s" * 5 not in text and "t" * 5 not in text
    assert text == mask(long)  # masked, it is short enough
    junk = b"\x1b" * 1000
    text = excerpt(junk)
    assert text == "\\x1b" * LOG_EXCERPT + f"... ({1000 - LOG_EXCERPT} more bytes not shown)"


def test_unusable_request_log_line_is_escaped_masked_and_capped(logged: Logged) -> None:
    h = Harness()
    h.login()
    request = b"93\x1b[31mCNsc1|COpass1|" + b"\x07" * 2000
    assert h.send(request) == b"96"
    [line] = logged.lines("unusable request")
    assert "\x1b" not in line and "\x07" not in line and "pass1" not in line
    assert line.isascii() and line.isprintable()
    assert "93\\x1b[31mCNsc1|CO****|" + "\\x07" * (LOG_EXCERPT - 20) + "... (1764 more bytes not shown)" in line
