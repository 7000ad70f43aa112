"""Listeners behind a load balancer: the PROXY protocol (HAProxy's, versions 1 and 2).

    haproxy:tcp:6001:interface=10.0.0.5        (sip:haproxy:tcp:6001:... in --listen)
    haproxy:tls:6009:privateKey=...            (the header comes first, TLS after it)

HAProxy (``send-proxy`` or ``send-proxy-v2`` on the server line) opens each connection with
a header naming the client's address, then relays the client's bytes.  The gateway reads
that header before anything else sees the connection: only then is the connection made
for the listener's protocols, so the connection limits, the login lockout, the session and
every log line see the client's address (``getPeer``), never the balancer's.  Twisted's
own ``haproxy:`` wrapper hands the connection on before the header has arrived, so whatever
looks at the peer on connecting sees the balancer; hence this module.

A connection whose first bytes are not a well-formed header, or that sends none within
``HEADER_TIMEOUT`` seconds, is closed with one log line.  A ``LOCAL`` header (v2: the
balancer's own health check) or ``PROXY UNKNOWN`` (v1) keeps the connection's own address.
Anyone who can reach such a listener can claim any address: let only the balancer reach it
(``interface=``, a firewall).
"""

from __future__ import annotations

import ipaddress
import struct

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IStreamServerEndpoint
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from zope.interface import directlyProvides, implementer, providedBy

log = Logger()

#: the prefix that puts a listener behind a balancer: ``haproxy:`` + the endpoint
PREFIX = "haproxy"
#: seconds a connection has to send its header (HAProxy sends it at once)
HEADER_TIMEOUT = 10.0
V1_PREFIX = b"PROXY "
V1_MAX = 107  # bytes, CRLF included (the protocol's own limit)
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_MAX = 16 + 65535
_V2_ADDRESSES = {0x1: (4, IPv4Address), 0x2: (16, IPv6Address)}  # family -> (address bytes, type)


class BadHeader(ValueError):
    """What is wrong with a PROXY header, in words (never its bytes)."""


#: what a complete header says: the client's and the balancer's side, or None (keep the connection's)
Addresses = tuple[IAddress, IAddress] | None


def read_header(data: bytes) -> tuple[Addresses, bytes] | None:
    """The addresses a complete header at the start of ``data`` gives and the bytes after
    it, or None while more is needed; ``BadHeader`` when it is not one."""
    if data[:len(V2_SIGNATURE)] == V2_SIGNATURE[:len(data)] and data[:1] == b"\r":
        return _v2(data)
    if data[:len(V1_PREFIX)] == V1_PREFIX[:len(data)]:
        return _v1(data)
    raise BadHeader("the connection did not start with a PROXY protocol header")


def _v1(data: bytes) -> tuple[Addresses, bytes] | None:
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) >= V1_MAX:
            raise BadHeader(f"PROXY v1 header longer than {V1_MAX} bytes")
        return None
    if end + 2 > V1_MAX:
        raise BadHeader(f"PROXY v1 header longer than {V1_MAX} bytes")
    parts = data[:end].decode("ascii", "replace").split(" ")
    rest = data[end + 2:]
    if parts[1:2] == ["UNKNOWN"]:
        return None, rest
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise BadHeader("PROXY v1 header is not 'PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT'")
    kind = IPv4Address if parts[1] == "TCP4" else IPv6Address
    source = _address(kind, parts[2], parts[4])
    destination = _address(kind, parts[3], parts[5])
    return (source, destination), rest


def _address(kind: type, host: str, port: str) -> IAddress:
    try:
        ip = ipaddress.ip_address(host)
        number = int(port) if port.isdigit() else -1
    except ValueError:
        raise BadHeader(f"PROXY v1 header: {host!r} is not an IP address") from None
    if not 0 <= number <= 65535 or (ip.version == 4) != (kind is IPv4Address):
        raise BadHeader("PROXY v1 header: bad address or port")
    return _plain(ip, number)


def _plain(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> IAddress:
    """An IPv4 client seen through an IPv6 socket (::ffff:a.b.c.d) is the IPv4 client: one
    device, one address, for the lockout and the limits."""
    if ip.version == 6 and ip.ipv4_mapped is not None:  # type: ignore[union-attr]
        ip = ip.ipv4_mapped  # type: ignore[union-attr]
    return IPv4Address("TCP", str(ip), port) if ip.version == 4 else IPv6Address("TCP", str(ip), port)


def _v2(data: bytes) -> tuple[Addresses, bytes] | None:
    if len(data) < 16:
        return None
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2 or command > 1:
        raise BadHeader(f"PROXY v2 header with version {version} command {command}")
    size = 16 + struct.unpack("!H", data[14:16])[0]
    if len(data) < size:
        return None
    block, rest = data[16:size], data[size:]
    family = data[13] >> 4
    if command == 0 or family not in _V2_ADDRESSES:
        return None, rest  # LOCAL (the balancer's health check), or not an IP client: keep our own
    width, _ = _V2_ADDRESSES[family]
    if len(block) < 2 * width + 4:
        raise BadHeader("PROXY v2 header shorter than its addresses")
    source_port, destination_port = struct.unpack("!HH", block[2 * width:2 * width + 4])
    source = _plain(ipaddress.ip_address(block[:width]), source_port)
    destination = _plain(ipaddress.ip_address(block[width:2 * width]), destination_port)
    return (source, destination), rest


class ProxyHeaderProtocol(ProtocolWrapper):
    """Reads the header, then makes the connection for the wrapped protocol with the
    client's address as its peer."""

    passes_writes_through = True   # directwrite.py may write to the connection under it

    def __init__(self, factory: ProxyHeaderFactory, wrapped: Protocol) -> None:
        super().__init__(factory, wrapped)
        self._buffer = b""
        self._addresses: Addresses = None
        self._passing = False  # the header is read: bytes go to the wrapped protocol
        self._timer = None

    def makeConnection(self, transport) -> None:
        # ProtocolWrapper's, without making the wrapped protocol's connection yet
        directlyProvides(self, providedBy(transport))
        Protocol.makeConnection(self, transport)
        self.factory.registerProtocol(self)
        self._timer = self.factory.reactor.callLater(HEADER_TIMEOUT, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        if self._passing:
            self.wrappedProtocol.dataReceived(data)
            return
        self._buffer += data
        try:
            found = read_header(self._buffer)
        except BadHeader as e:
            self._refuse(str(e))
            return
        if found is None:
            if len(self._buffer) > V2_MAX:
                self._refuse("PROXY header too long")
            return
        self._addresses, rest = found
        self._buffer = b""
        self._passing = True
        self._cancel_timer()
        self.wrappedProtocol.makeConnection(self)
        if rest and self.connected:
            self.wrappedProtocol.dataReceived(rest)

    def _refuse(self, why: str) -> None:
        self._cancel_timer()
        log.warn("{listener}: {peer}: {why}; closing (this listener expects HAProxy's PROXY protocol)",
                 listener=self.factory.listener, peer=_describe(self.transport.getPeer()), why=why)
        self._buffer = b""
        self.transport.abortConnection() if hasattr(self.transport, "abortConnection") else \
            self.transport.loseConnection()

    def _timed_out(self) -> None:
        self._timer = None
        self._refuse(f"no PROXY header within {HEADER_TIMEOUT:g} s")

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def getPeer(self) -> IAddress:
        return self._addresses[0] if self._addresses else self.transport.getPeer()

    def getHost(self) -> IAddress:
        return self._addresses[1] if self._addresses else self.transport.getHost()

    def connectionLost(self, reason) -> None:
        self._cancel_timer()
        if self._passing:
            super().connectionLost(reason)
        else:  # the wrapped protocol never had a connection
            self.factory.unregisterProtocol(self)


def _describe(address: IAddress) -> str:
    host, port = getattr(address, "host", address), getattr(address, "port", "")
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class ProxyHeaderFactory(WrappingFactory):
    protocol = ProxyHeaderProtocol

    def __init__(self, wrapped, reactor, listener: str = "") -> None:
        super().__init__(wrapped)
        self.reactor = reactor
        self.listener = listener or getattr(wrapped, "listener", "") or "haproxy listener"

    def logPrefix(self) -> str:
        inner = getattr(self.wrappedFactory, "logPrefix", None)
        return f"{inner() if inner else type(self.wrappedFactory).__name__} (PROXY)"


@implementer(IStreamServerEndpoint)
class ProxyHeaderEndpoint:
    """``inner`` (any server endpoint) with the PROXY header read first.  A TLS endpoint of
    ours is wrapped below its TLS: the header comes in clear before the handshake."""

    def __init__(self, reactor, inner) -> None:
        self.reactor = reactor
        self.inner = inner

    def listen(self, factory):
        listener = getattr(factory, "listener", "")
        wrap = getattr(self.inner, "wrap", None)
        tcp = getattr(self.inner, "tcp", None)
        if wrap is not None and tcp is not None:  # TLSServerEndpoint: TCP → PROXY → TLS → ours
            return tcp.listen(ProxyHeaderFactory(wrap(factory), self.reactor, listener))
        return self.inner.listen(ProxyHeaderFactory(factory, self.reactor, listener))


def unwrapped(description: str) -> str:
    """The endpoint a ``haproxy:`` endpoint string wraps ("tcp:6001" for
    "haproxy:tcp:6001"); any other description as it is."""
    kind, colon, rest = description.partition(":")
    return rest if colon and kind.strip().lower() == PREFIX else description
