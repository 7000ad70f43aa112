"""Writing a line straight to a TCP socket when nothing waits in the transport's buffer.

Twisted's TCP transport buffers every write and sends it on the next reactor turn, after
registering the socket for writability, and unregisters it once the buffer is empty: a
loop turn and two epoll changes per write.  A connection that carries one small request
or reply at a time almost always has an empty buffer and room in the socket's, so the
whole line can be sent at once.  ``direct_write(transport)`` gives a ``write`` that does
so, and hands everything else to the transport's own ``write``, which keeps the order and
reports errors as usual: data already buffered, a partial send (the rest is buffered), a
send error (the transport finds it again and closes), a closing connection, TLS, or a
transport that is not a plain TCP connection (then ``transport.write`` itself is given).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import tcp


def direct_write(transport: Any) -> Callable[[bytes], None]:
    if not isinstance(transport, tcp.Connection) or getattr(transport, "TLS", False):
        return transport.write

    def write(data: bytes) -> None:
        t = transport
        if (t.connected and not t.disconnecting and not t._writeDisconnected and not t.TLS
                and not t._tempDataBuffer and not t.dataBuffer and type(data) is bytes):
            try:
                sent = t.socket.send(data)
            except OSError:  # full (EAGAIN) or broken: the transport's own write deals with it
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        t.write(data)

    return write
