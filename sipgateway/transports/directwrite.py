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

A device's connection reaches its protocol through wrappers (the connection limits, the
PROXY header reader) that pass every write through unchanged; a wrapper class says so with
``passes_writes_through = True``, and the TCP connection under such wrappers is written to.
Any other wrapper (TLS above all) stops the search: its own ``write`` is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import tcp
from twisted.internet.address import IPv4Address, IPv6Address

#: wrappers looked through at most (a device's connection has two)
MAX_WRAPPERS = 4


def plain_connection(transport: Any) -> tcp.Connection | None:
    """The plain TCP connection under ``transport`` and pass-through wrappers, or None."""
    for _ in range(MAX_WRAPPERS + 1):
        if isinstance(transport, tcp.Connection):
            return None if getattr(transport, "TLS", False) else transport
        if not getattr(type(transport), "passes_writes_through", False):
            return None
        transport = getattr(transport, "transport", None)
    return None


def direct_write(transport: Any) -> Callable[[bytes], None]:
    connection = plain_connection(transport)
    if connection is None:
        return transport.write

    def write(data: bytes) -> None:
        t = connection
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


def no_delay(transport: Any) -> bool:
    """Turn Nagle's algorithm off on the TCP connection under ``transport`` (protocol
    wrappers, TLS included, pass the call down); False for a serial line or a UNIX socket.

    Every write is a whole reply or request, so Nagle can only hold one back: a write made
    while the previous one is unacknowledged waits for the peer's delayed ACK, 40 ms, which
    is what a device that sends its next request before reading the last reply would get for
    each reply after the first, and a forwarded request after a late reply."""
    get_host = getattr(transport, "getHost", None)
    setter = getattr(transport, "setTcpNoDelay", None)
    if get_host is None or setter is None:
        return False
    address = get_host()
    # Twisted logs an error for a socket that has no TCP_NODELAY (a UNIX socket is a tcp.Connection too)
    if not isinstance(address, (IPv4Address, IPv6Address)) or address.type != "TCP":
        return False
    setter(True)
    return True
