"""SIP2 line framing shared by the doors: CR, LF or CRLF, bounded length."""

from __future__ import annotations


class LineSplitter:
    """Splits a byte stream into lines ended by CR, LF or CRLF; empty lines are dropped.

    ``feed`` returns the complete lines, or None when the unterminated rest exceeds
    ``max_line`` (the caller closes the connection)."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = b""

    def feed(self, data: bytes) -> list[bytes] | None:
        buffer = self._buffer + data if self._buffer else data
        if b"\r" not in buffer and b"\n" not in buffer:
            self._buffer = buffer
            return None if len(buffer) > self.max_line else []
        if b"\n" in buffer:
            buffer = buffer.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
        *lines, self._buffer = buffer.split(b"\r")
        if len(self._buffer) > self.max_line or any(len(line) > self.max_line for line in lines):
            return None
        return [line for line in lines if line]

    @property
    def pending(self) -> int:
        return len(self._buffer)
