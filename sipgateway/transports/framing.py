"""Line framing, the one splitter for every reader of lines: the doors' SIP2 traffic, the
telnet door's login prompt and the command line's replies."""

from __future__ import annotations


class LineTooLong(ValueError):
    """A line, or the unterminated rest, is longer than the splitter's ``max_line``."""


class LineSplitter:
    """Splits a byte stream into lines ended by CR, LF or CRLF, each at most ``max_line``
    bytes.

    ``feed`` is for SIP2 traffic: it returns every complete line, empty ones dropped, or None
    when a line or the unterminated rest exceeds ``max_line`` (the caller closes the
    connection).  A dialogue that takes one line at a time, where an empty line means
    something (the telnet login prompt), uses ``push`` and ``next_line``; there a CRLF split
    between two reads is still one line end.  The rest of the stream stays for ``feed``."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = b""
        self._after_cr = False  # next_line: the last line ended with CR; a LF next is its tail

    def feed(self, data: bytes) -> list[bytes] | None:
        if not self._buffer and data[-1:] == b"\r" and data.count(b"\r") == 1 and b"\n" not in data:
            # one whole line ended by CR, as nearly every read of SIP2 traffic is
            if len(data) > self.max_line + 1:
                return None
            return [data[:-1]] if len(data) > 1 else []
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

    def push(self, data: bytes) -> None:
        """Keep ``data`` for ``next_line`` (or a later ``feed``)."""
        self._buffer += data

    def next_line(self) -> bytes | None:
        """The next complete line, empty or not, or None while there is none; ``LineTooLong``
        when it, or the unterminated rest, is longer than ``max_line``."""
        buffer = self._buffer
        if self._after_cr and buffer:
            self._after_cr = False
            if buffer[:1] == b"\n":
                buffer = self._buffer = buffer[1:]
        cr, lf = buffer.find(b"\r"), buffer.find(b"\n")
        end = cr if lf < 0 or 0 <= cr < lf else lf
        if end < 0:
            if len(buffer) > self.max_line:
                raise LineTooLong(len(buffer))
            return None
        if end > self.max_line:
            raise LineTooLong(end)
        self._buffer = buffer[end + 1:]
        self._after_cr = end == cr
        return buffer[:end]

    @property
    def pending(self) -> int:
        return len(self._buffer)
