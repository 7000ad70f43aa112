"""The tls: door over real loopback sockets: client certificates required and checked,
TLS 1.2 minimum, the subject seen by the server, and start-up errors that name the file."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from OpenSSL import SSL, crypto
from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, serverFromString
from twisted.internet.interfaces import IHandshakeListener, IOpenSSLContextFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from sipgateway.transports import tls as tls_module
from sipgateway.transports.tls import (
    TLSConfigError,
    TLSEndpointParser,
    TLSServerEndpoint,
    parse_tls_endpoint,
    peer_subject,
    server_from_string,
    split_description,
)
from tests.transports.certs_pki import CLIENT_SUBJECT, PKI, Issued, make_pki

_PKI: PKI | None = None


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def pki() -> PKI:
    """One PKI per test run: key generation is the slow part."""
    global _PKI
    if _PKI is None:
        directory = tempfile.mkdtemp(prefix="sipgateway-tls-")
        atexit.register(shutil.rmtree, directory, True)
        _PKI = make_pki(directory)
    return _PKI


@implementer(IOpenSSLContextFactory)
class ClientContext:
    """A pyOpenSSL client context: verifies the server against ``ca``, optionally presents
    ``client`` and optionally speaks only TLS 1.1 (at security level 0, so that OpenSSL
    really offers it and any refusal comes from the server)."""

    def __init__(self, ca: Issued, client: Issued | None = None, tls11_only: bool = False) -> None:
        self.ca, self.client, self.tls11_only = ca, client, tls11_only

    def getContext(self) -> SSL.Context:
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_verify(SSL.VERIFY_PEER, lambda conn, cert, err, depth, ok: bool(ok))
        ctx.get_cert_store().add_cert(crypto.X509.from_cryptography(self.ca.cert))
        if self.client is not None:
            ctx.use_certificate(self.client.cert)
            ctx.use_privatekey(self.client.key)
        if self.tls11_only:
            ctx.set_min_proto_version(SSL.TLS1_1_VERSION)
            ctx.set_max_proto_version(SSL.TLS1_1_VERSION)
            ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        return ctx


@implementer(IOpenSSLContextFactory)
class LenientServerContext:
    """A server that accepts TLS 1.1: the control proving ClientContext(tls11_only) works."""

    def __init__(self, server: Issued) -> None:
        self.server = server

    def getContext(self) -> SSL.Context:
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_1_VERSION)
        ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
        ctx.use_certificate(self.server.cert)
        ctx.use_privatekey(self.server.key)
        return ctx


class SubjectEcho(Protocol):
    """Server side: answers any data with the peer certificate's subject (or '-')."""

    def __init__(self, record: list) -> None:
        self.record = record
        self.lost: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        subject = peer_subject(self.transport)
        self.record.append(subject)
        self.transport.write((subject or "-").encode() + b"\r")

    def connectionLost(self, reason: Failure) -> None:
        self.reason = reason
        self.lost.callback(None)


class ServerFactory(Factory):
    def __init__(self) -> None:
        self.subjects: list = []
        self.protocols: list[SubjectEcho] = []

    def buildProtocol(self, addr):
        p = SubjectEcho(self.subjects)
        self.protocols.append(p)
        return p


@implementer(IHandshakeListener)
class Client(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.handshake_done = False
        self.lost: Deferred = Deferred()

    def handshakeCompleted(self) -> None:
        self.handshake_done = True

    def connectionMade(self) -> None:
        self.transport.write(b"hello\r")  # TLS holds it until the handshake is done

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.received.endswith(b"\r"):
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        self.reason = reason
        self.lost.callback(None)


class TLSLoopbackTests(TestCase):
    timeout = 20

    def listen(self, endpoint) -> Deferred:
        factory = ServerFactory()
        d = endpoint.listen(factory)

        def listening(port):
            self.addCleanup(port.stopListening)
            return factory, port.getHost().port

        return d.addCallback(listening)

    def endpoint(self, with_ca: bool = True, server: Issued | None = None, **kw) -> TLSServerEndpoint:
        p = pki()
        server = server or p.server
        return TLSServerEndpoint(reactor, 0, privateKey=server.key_path, certKey=server.cert_path,
                                 caCerts=p.ca.cert_path if with_ca else None, interface="127.0.0.1", **kw)

    @inlineCallbacks
    def exchange(self, server, client_context: ClientContext):
        """Connect once to ``server`` (an endpoint, or an already listening (factory, port));
        return (client, server factory, client's close reason)."""
        if isinstance(server, TLSServerEndpoint):
            factory, port = yield self.listen(server)
        else:
            factory, port = server
        client = Client()
        tls_factory = TLSMemoryBIOFactory(client_context, True, Factory.forProtocol(lambda: client))
        yield TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(tls_factory)
        yield client.lost
        reason = client.reason
        # Both ends closed before the test ends: nothing left in the reactor.
        yield DeferredList([p.lost for p in factory.protocols])
        return client, factory, reason

    def setUp(self) -> None:
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def server_log(self) -> str:
        return "\n".join(formatEvent(e) for e in self.events if e.get("log_namespace") == tls_module.__name__)

    def assert_refused(self, client: Client, factory: ServerFactory, reason: Failure, alert: str,
                       server_says: str | None = None) -> None:
        if server_says is not None:  # the operator sees why in the gateway's log
            self.assertIn(f": TLS refused or failed: {server_says}", self.server_log())
            self.assertIn("127.0.0.1:", self.server_log())
        self.assertEqual(client.received, b"")
        self.assertEqual(factory.subjects, [], "the server must never see application data")
        self.assertTrue(reason.check(SSL.Error), f"expected a TLS error, got {reason!r}")
        self.assertIn(alert, str(reason.value))
        for server_side in factory.protocols:
            self.assertTrue(server_side.lost.called)

    @inlineCallbacks
    def test_right_client_certificate_handshakes_and_subject_is_seen(self):
        p = pki()
        client, factory, reason = yield self.exchange(self.endpoint(), ClientContext(p.ca, p.client))
        self.assertTrue(client.handshake_done)
        self.assertEqual(client.received, CLIENT_SUBJECT.encode() + b"\r")
        self.assertEqual(factory.subjects, [CLIENT_SUBJECT])

    @inlineCallbacks
    def test_client_without_certificate_is_refused(self):
        p = pki()
        client, factory, reason = yield self.exchange(self.endpoint(), ClientContext(p.ca))
        self.assert_refused(client, factory, reason, "certificate required",
                            server_says="peer did not return a certificate")

    @inlineCallbacks
    def test_certificate_from_another_ca_is_refused(self):
        p = pki()
        client, factory, reason = yield self.exchange(self.endpoint(), ClientContext(p.ca, p.other_client))
        self.assert_refused(client, factory, reason, "unknown ca", server_says="certificate verify failed")

    @inlineCallbacks
    def test_expired_certificate_is_refused(self):
        p = pki()
        client, factory, reason = yield self.exchange(self.endpoint(), ClientContext(p.ca, p.expired_client))
        self.assert_refused(client, factory, reason, "certificate expired", server_says="certificate verify failed")

    @inlineCallbacks
    def test_tls_1_1_client_is_refused(self):
        p = pki()
        # Control: the same client does complete TLS 1.1 with a server that allows it ...
        lenient_factory = ServerFactory()
        lenient = TLSMemoryBIOFactory(LenientServerContext(p.server), False, lenient_factory)
        port = reactor.listenTCP(0, lenient, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client, _, _ = yield self.exchange((lenient_factory, port.getHost().port),
                                           ClientContext(p.ca, p.client, tls11_only=True))
        self.assertEqual(client.received, b"-\r")
        # ... and ours refuses it.
        client, factory, reason = yield self.exchange(self.endpoint(),
                                                      ClientContext(p.ca, p.client, tls11_only=True))
        self.assert_refused(client, factory, reason, "protocol version", server_says="unsupported protocol")
        self.assertFalse(client.handshake_done)

    @inlineCallbacks
    def test_without_ca_no_client_certificate_is_asked_for(self):
        p = pki()
        client, factory, reason = yield self.exchange(self.endpoint(with_ca=False), ClientContext(p.ca))
        self.assertEqual(client.received, b"-\r")
        self.assertEqual(factory.subjects, [None])

    @inlineCallbacks
    def test_extra_cert_chain_is_served(self):
        # The client trusts only the root; the server's certificate is signed by an
        # intermediate, which the server must send for verification to succeed.
        p = pki()
        endpoint = self.endpoint(server=p.chained_server, extraCertChain=p.intermediate.cert_path)
        client, factory, reason = yield self.exchange(endpoint, ClientContext(p.ca, p.client))
        self.assertEqual(client.received, CLIENT_SUBJECT.encode() + b"\r")

    @inlineCallbacks
    def test_without_the_chain_the_client_cannot_verify(self):
        p = pki()
        endpoint = self.endpoint(server=p.chained_server)
        client, factory, reason = yield self.exchange(endpoint, ClientContext(p.ca, p.client))
        self.assert_refused(client, factory, reason, "certificate verify failed")


class StartupErrorTests(SynchronousTestCase):
    def error(self, *args, **kwargs) -> str:
        return str(self.assertRaises(TLSConfigError, parse_tls_endpoint, reactor, *args, **kwargs))

    def write(self, name: str, data: bytes) -> str:
        directory = tempfile.mkdtemp(prefix="sipgateway-tls-")
        self.addCleanup(shutil.rmtree, directory, True)
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_missing_key_file_names_file_and_key(self):
        p = pki()
        message = self.error("6009", privateKey="nowhere.key", certKey=p.server.cert_path)
        self.assertIn("privateKey file 'nowhere.key' cannot be read: No such file", message)

    def test_missing_cert_file_names_file_and_key(self):
        p = pki()
        message = self.error("6009", privateKey=p.server.key_path, certKey="x.pem")
        self.assertEqual(message,
                         "tls endpoint: certKey file 'x.pem' cannot be read: No such file or directory")

    def test_missing_ca_file_names_file_and_key(self):
        p = pki()
        message = self.error("6009", privateKey=p.server.key_path, certKey=p.server.cert_path,
                             caCerts="ca.pem")
        self.assertIn("caCerts file 'ca.pem' cannot be read", message)

    def test_unreadable_file(self):
        p = pki()
        if os.geteuid() == 0:
            # root reads anything; a directory is unreadable as a file for everyone.
            path = os.path.dirname(p.server.key_path)
        else:
            path = self.write("key", read(p.server.key_path))
            os.chmod(path, 0)
        message = self.error("6009", privateKey=path, certKey=p.server.cert_path)
        self.assertIn(f"privateKey file {path!r} cannot be read", message)

    def test_mismatched_key_and_certificate(self):
        p = pki()
        message = self.error("6009", privateKey=p.client.key_path, certKey=p.server.cert_path)
        self.assertIn(f"privateKey file {p.client.key_path!r} does not belong to the certificate in certKey "
                      f"file {p.server.cert_path!r}", message)

    def test_not_a_key_says_so_without_quoting_it(self):
        p = pki()
        secretish = b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
        path = self.write("bad.key", secretish)
        message = self.error("6009", privateKey=path, certKey=p.server.cert_path)
        self.assertIn(f"privateKey file {path!r} holds no PEM private key", message)
        self.assertNotIn("c2VjcmV0", message)

    def test_encrypted_key_is_explained(self):
        from cryptography.hazmat.primitives import serialization

        p = pki()
        encrypted = p.server.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.BestAvailableEncryption(b"passphrase"))
        path = self.write("enc.key", encrypted)
        message = self.error("6009", privateKey=path, certKey=p.server.cert_path)
        self.assertIn("is encrypted with a passphrase", message)

    def test_certificate_file_without_certificates(self):
        p = pki()
        message = self.error("6009", privateKey=p.server.key_path, certKey=p.server.key_path)
        self.assertIn(f"certKey file {p.server.key_path!r} holds no PEM certificate", message)

    def test_ca_file_without_certificates(self):
        p = pki()
        path = self.write("empty.pem", b"")
        message = self.error("6009", privateKey=p.server.key_path, certKey=p.server.cert_path, caCerts=path)
        self.assertIn(f"caCerts file {path!r} holds no PEM certificate", message)

    def test_one_file_with_key_and_certificate(self):
        p = pki()
        both = self.write("both.pem", read(p.server.key_path) + read(p.server.cert_path))
        endpoint = parse_tls_endpoint(reactor, "6009", privateKey=both)
        self.assertIsInstance(endpoint, TLSServerEndpoint)
        self.assertFalse(endpoint.requires_client_certificate)

    def test_bad_port_backlog_and_unknown_option(self):
        p = pki()
        files = {"privateKey": p.server.key_path, "certKey": p.server.cert_path}
        self.assertIn("port='http' is not a whole number", self.error("http", **files))
        self.assertIn("port='70000' must be between 0 and 65535", self.error("70000", **files))
        self.assertIn("backlog='lots' is not a whole number", self.error("6009", backlog="lots", **files))
        self.assertIn("unknown option 'cacert'", self.error("6009", cacert="x", **files))
        self.assertIn("privateKey=FILE is required", self.error("6009"))
        self.assertIn("exactly one port", self.error(**files))

    def test_error_is_a_value_error_for_the_config_layer(self):
        self.assertTrue(issubclass(TLSConfigError, ValueError))


class EndpointStringTests(SynchronousTestCase):
    def description(self) -> str:
        p = pki()
        return (f"6009:privateKey={p.server.key_path}:certKey={p.server.cert_path}"
                f":caCerts={p.ca.cert_path}:interface=127.0.0.1:backlog=10")

    def test_tls_prefix_through_server_from_string(self):
        endpoint = server_from_string(reactor, "tls:" + self.description())
        self.assertIsInstance(endpoint, TLSServerEndpoint)
        self.assertTrue(endpoint.requires_client_certificate)

    def test_siptls_prefix_through_twisted_plugins(self):
        # Twisted's own serverFromString finds our plugin under the prefix nothing shadows.
        endpoint = serverFromString(reactor, "siptls:" + self.description())
        self.assertIsInstance(endpoint, TLSServerEndpoint)

    def test_other_endpoints_are_twisteds(self):
        self.assertIsInstance(server_from_string(reactor, "tcp:6001:interface=127.0.0.1"), TCP4ServerEndpoint)

    def test_errors_surface_as_value_errors(self):
        error = self.assertRaises(ValueError, server_from_string, reactor, "tls:6009:privateKey=missing.key")
        self.assertIn("privateKey file 'missing.key' cannot be read", str(error))
        error = self.assertRaises(ValueError, serverFromString, reactor, "siptls:6009:privateKey=missing.key")
        self.assertIn("privateKey file 'missing.key' cannot be read", str(error))

    def test_split_follows_twisted_escaping(self):
        self.assertEqual(split_description(r"tls:6009:privateKey=C\:\\keys\\k.pem:certKey=a=b.pem"),
                         (["tls", "6009"], {"privateKey": r"C:\keys\k.pem", "certKey": "a=b.pem"}))
        self.assertEqual(split_description("tls:6009"), (["tls", "6009"], {}))

    def test_parser_prefixes(self):
        self.assertEqual(TLSEndpointParser().prefix, "tls")
        self.assertEqual(TLSEndpointParser("siptls").prefix, "siptls")


class PeerSubjectTests(SynchronousTestCase):
    def test_plain_transport_has_no_subject(self):
        self.assertIsNone(peer_subject(StringTransport()))

    def test_transport_without_certificate(self):
        class NoCert:
            def getPeerCertificate(self):
                return None

        self.assertIsNone(peer_subject(NoCert()))

    def test_subject_is_rfc4514(self):
        p = pki()

        class WithCert:
            def getPeerCertificate(self):
                return crypto.X509.from_cryptography(p.client.cert)

        self.assertEqual(peer_subject(WithCert()), "CN=sorter1,O=Library")


class ClosingWatcher(WrappingFactory):
    """Wraps a server factory; ``closed`` holds one Deferred per connection, fired when it ends."""

    def __init__(self, wrapped) -> None:
        super().__init__(wrapped)
        self.closed: dict = {}

    def registerProtocol(self, p) -> None:
        super().registerProtocol(p)
        self.closed[p] = Deferred()

    def unregisterProtocol(self, p) -> None:
        super().unregisterProtocol(p)
        self.closed[p].callback(None)


class SIPOverTLSTests(TestCase):
    """The whole door: our endpoint + the raw SIP protocol; the certificate's subject is
    bound to an SC account via ``cert_accounts``, so no 93 is needed."""

    timeout = 20

    @inlineCallbacks
    def test_certificate_subject_logs_the_device_in(self):
        from sipgateway.gateway import Gateway
        from sipgateway.settings import ListenerSettings
        from sipgateway.transports.raw import SIPFactory
        from tests.fakes import FakeACS

        p = pki()
        gateway = Gateway(acs=FakeACS(), reactor=reactor)
        settings = ListenerSettings(name="tls-test", cert_accounts={CLIENT_SUBJECT: "sc1"})
        endpoint = TLSServerEndpoint(reactor, 0, privateKey=p.server.key_path, certKey=p.server.cert_path,
                                     caCerts=p.ca.cert_path, interface="127.0.0.1")
        watcher = ClosingWatcher(SIPFactory(gateway, settings))
        port = yield endpoint.listen(watcher)
        self.addCleanup(port.stopListening)

        client = Client()
        client.connectionMade = lambda: client.transport.write(
            b"2300120240105    101500AOMAIN|AA100001|AC|AD1234|\r")
        tls_factory = TLSMemoryBIOFactory(ClientContext(p.ca, p.client), True,
                                          Factory.forProtocol(lambda: client))
        yield TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(tls_factory)
        yield client.lost
        yield DeferredList(list(watcher.closed.values()))
        self.assertTrue(client.received.startswith(b"24"), client.received)
        self.assertIn(b"|AEAda Lovelace|", client.received)
        self.assertIn(b"|BLY|", client.received)
