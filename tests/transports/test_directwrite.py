"""``direct_write``: a line goes straight to the socket when nothing is buffered; anything
else goes through the transport's own buffer, in order.  A device's connection is found
under the wrappers that pass writes through (limits, PROXY header), never under TLS.
``no_delay``: Nagle's algorithm is off on every TCP connection a listener admits, TLS or not."""

from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.transports.directwrite import direct_write, no_delay, plain_connection
from sipgateway.transports.limits import ConnectionCounter, LimitedFactory, _Limited
from sipgateway.transports.proxyheader import ProxyHeaderFactory, ProxyHeaderProtocol


class DirectWriteTests(SynchronousTestCase):
    def connection(self) -> tuple[tcp.Connection, socket.socket]:
        ours, peer = socket.socketpair()
        ours.setblocking(False)
        peer.setblocking(False)
        self.addCleanup(ours.close)
        self.addCleanup(peer.close)
        conn = tcp.Connection(ours, Protocol(), MemoryReactor())
        conn.connected = 1
        return conn, peer

    def test_a_line_is_sent_at_once_when_nothing_is_buffered(self):
        conn, peer = self.connection()
        write = direct_write(conn)
        write(b"64 reply\r")
        self.assertEqual(peer.recv(100), b"64 reply\r")  # no reactor turn was needed
        self.assertEqual((conn._tempDataBuffer, conn.dataBuffer), ([], b""))

    def test_with_data_buffered_the_line_waits_behind_it(self):
        conn, peer = self.connection()
        conn.write(b"first\r")  # buffered: the reactor has not run
        direct_write(conn)(b"second\r")
        with self.assertRaises(BlockingIOError):
            peer.recv(100)
        self.assertEqual(b"".join(conn._tempDataBuffer), b"first\rsecond\r")

    def test_what_the_socket_cannot_take_is_buffered_in_order(self):
        conn, peer = self.connection()
        conn.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        big = bytes(range(256)) * 4096  # more than the socket buffers hold
        direct_write(conn)(big)
        received = b""
        while True:
            try:
                chunk = peer.recv(1 << 20)
            except BlockingIOError:
                break
            received += chunk
        self.assertLess(len(received), len(big))
        self.assertEqual(received + b"".join(conn._tempDataBuffer), big)

    def test_a_closing_connection_and_other_transports_use_their_own_write(self):
        conn, peer = self.connection()
        conn.disconnecting = True
        direct_write(conn)(b"late\r")
        self.assertEqual(conn._tempDataBuffer, [b"late\r"])
        other = StringTransport()
        self.assertEqual(direct_write(other), other.write)

    def test_the_connection_under_pass_through_wrappers_is_written_to(self):
        conn, peer = self.connection()
        proxy = ProxyHeaderProtocol(ProxyHeaderFactory(Factory.forProtocol(Protocol), MemoryReactor()), Protocol())
        proxy.transport = conn
        limited = _Limited(LimitedFactory(Factory.forProtocol(Protocol), ConnectionCounter(10, 10), "sip"), Protocol())
        limited.transport = proxy   # a device's connection: limits over the PROXY header over TCP
        self.assertIs(plain_connection(limited), conn)
        direct_write(limited)(b"98 reply\r")
        self.assertEqual(peer.recv(100), b"98 reply\r")

    def test_a_wrapper_that_changes_what_is_written_is_never_looked_through(self):
        conn, _ = self.connection()
        tls_factory = TLSMemoryBIOFactory(CertificateOptions(), False, Factory.forProtocol(Protocol))
        tls = TLSMemoryBIOProtocol(tls_factory, Protocol())
        tls.transport = conn
        limited = _Limited(LimitedFactory(Factory.forProtocol(Protocol), ConnectionCounter(10, 10), "sip"), Protocol())
        limited.transport = tls   # limits over TLS: the bytes must go through TLS
        self.assertIsNone(plain_connection(limited))
        self.assertEqual(direct_write(limited), limited.write)
        self.assertIsNone(plain_connection(ProtocolWrapper(WrappingFactory(Factory.forProtocol(Protocol)), Protocol())))


class NoDelayTests(SynchronousTestCase):
    def tcp_connection(self) -> tcp.Connection:
        """One end of a real loopback TCP connection, as a Twisted transport."""
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        client = socket.create_connection(listener.getsockname())
        self.addCleanup(client.close)
        ours, _ = listener.accept()
        self.addCleanup(ours.close)
        conn = tcp.Connection(ours, Protocol(), MemoryReactor())
        conn.connected = 1
        conn.getPeer = lambda: IPv4Address("TCP", "127.0.0.1", client.getsockname()[1])
        conn.getHost = lambda: IPv4Address("TCP", *ours.getsockname())
        return conn

    @staticmethod
    def nagle_off(conn: tcp.Connection) -> bool:
        return bool(conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def test_an_admitted_device_connection_has_nagle_off(self):
        # A device that sends its next request before reading the last reply got every reply
        # after the first 44 ms late, behind its own delayed ACK: Nagle held each write
        # while the one before was unacknowledged.
        conn = self.tcp_connection()
        self.assertFalse(self.nagle_off(conn))
        factory = LimitedFactory(Factory.forProtocol(Protocol), ConnectionCounter(10, 10), "sip")
        factory.buildProtocol(conn.getPeer()).makeConnection(conn)
        self.assertTrue(self.nagle_off(conn))

    def test_nagle_is_turned_off_under_tls_and_the_other_wrappers(self):
        conn = self.tcp_connection()
        tls = TLSMemoryBIOProtocol(TLSMemoryBIOFactory(CertificateOptions(), False, Factory.forProtocol(Protocol)),
                                   Protocol())
        tls.transport = conn
        limited = _Limited(LimitedFactory(Factory.forProtocol(Protocol), ConnectionCounter(10, 10), "sip"), Protocol())
        limited.transport = tls
        self.assertTrue(no_delay(limited))
        self.assertTrue(self.nagle_off(conn))

    def test_a_serial_line_or_a_unix_socket_is_left_alone(self):
        self.assertFalse(no_delay(StringTransport()))  # no TCP under it (a serial port has no such call)
        ours, peer = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(peer.close)
        unix = tcp.Connection(ours, Protocol(), MemoryReactor())
        unix.getHost = lambda: UNIXAddress(ours.getsockname() or None)
        self.assertFalse(no_delay(unix))  # Twisted would log an error for each such connection
