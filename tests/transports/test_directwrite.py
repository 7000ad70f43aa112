"""``direct_write``: a line goes straight to the socket when nothing is buffered; anything
else goes through the transport's own buffer, in order.  A device's connection is found
under the wrappers that pass writes through (limits, PROXY header), never under TLS."""

from __future__ import annotations

import socket

from twisted.internet import tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import MemoryReactor, StringTransport
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.trial.unittest import SynchronousTestCase

from sipgateway.transports.directwrite import direct_write, plain_connection
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
