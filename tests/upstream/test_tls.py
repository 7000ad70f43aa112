"""sip2s:// over real loopback sockets: the server's certificate must chain to ``cafile`` (or
the system's trust store) and name the URL's host; ``certfile``/``keyfile`` present a
client certificate; bad files are start-up errors naming the key."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sipgateway.acs.upstream.connection import open_connection
from sipgateway.acs.upstream.endpoints import client_endpoint, tls_options
from sipgateway.acs.upstream.errors import Unavailable
from sipgateway.acs.upstream.pool import gateway_login
from sipgateway.acs.upstream.url import UpstreamConfigError, parse_url
from sipgateway.transports.tls import TLSServerEndpoint
from tests.transports.certs_pki import Issued
from tests.transports.test_tls import pki
from tests.upstream.fakes import FakeUpstream
from tests.upstream.helpers import CHECKIN_FIELDS, CHECKIN_FIXED

_OTHER_NAME: Issued | None = None


def other_name_server() -> Issued:
    """A server certificate from the test CA that names only sip.example.org."""
    global _OTHER_NAME
    if _OTHER_NAME is None:
        p = pki()
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sip.example.org")]))
                .issuer_name(p.ca.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("sip.example.org")]), critical=False)
                .sign(p.ca.key, hashes.SHA256()))
        key_path = os.path.join(p.directory, "other-name.key")
        cert_path = os.path.join(p.directory, "other-name.pem")
        with open(key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        _OTHER_NAME = Issued(key, cert, key_path, cert_path)
    return _OTHER_NAME


class TLSUpstreamTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def serve(self, server: Issued | None = None, client_ca: bool = False):
        p = pki()
        server = server or p.server
        self.fake = FakeUpstream(clock=reactor)
        endpoint = TLSServerEndpoint(reactor, 0, privateKey=server.key_path, certKey=server.cert_path,
                                     caCerts=p.ca.cert_path if client_ca else None, interface="127.0.0.1")
        port = yield endpoint.listen(self.fake)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    @inlineCallbacks
    def login(self, url: str):
        """Connect and log in; returns the connection or the failure; waits for the server's side to close
        when it failed."""
        config = parse_url(url)
        d = open_connection(client_endpoint(reactor, config), settings=config.wire(), clock=reactor,
                            server=config.server, timeout=config.timeout, login=gateway_login(config), tls=True)
        try:
            conn = yield d
        except Unavailable as e:
            yield DeferredList([c.lost for c in self.fake.connections])
            return e
        return conn

    @inlineCallbacks
    def close(self, conn):
        conn.close()
        yield conn.closed
        yield DeferredList([c.lost for c in self.fake.connections])

    @inlineCallbacks
    def test_verified_server_and_a_request(self):
        port = yield self.serve()
        conn = yield self.login(f"sip2s://127.0.0.1:{port}?login=gw&password=secret&cafile={pki().ca.cert_path}")
        reply = yield conn.request("09", CHECKIN_FIXED, CHECKIN_FIELDS)
        self.assertEqual(reply.code, "10")
        self.assertEqual(self.fake.codes(), ["93", "09"])
        yield self.close(conn)

    @inlineCallbacks
    def test_certificate_for_another_name_is_refused_before_any_sip2(self):
        port = yield self.serve(other_name_server())
        error = yield self.login(f"sip2s://127.0.0.1:{port}?login=gw&password=secret&cafile={pki().ca.cert_path}")
        self.assertIsInstance(error, Unavailable)
        self.assertIn("TLS failed", str(error))
        self.assertEqual(self.fake.received, [])

    @inlineCallbacks
    def test_without_cafile_the_system_trust_store_does_not_know_the_test_ca(self):
        port = yield self.serve()
        error = yield self.login(f"sip2s://127.0.0.1:{port}?login=gw&password=secret")
        self.assertIsInstance(error, Unavailable)
        self.assertIn("TLS failed", str(error))
        self.assertEqual(self.fake.received, [])

    @inlineCallbacks
    def test_client_certificate(self):
        p = pki()
        port = yield self.serve(client_ca=True)
        base = f"sip2s://127.0.0.1:{port}?login=gw&password=secret&cafile={p.ca.cert_path}"
        error = yield self.login(base)
        self.assertIsInstance(error, Unavailable)
        self.assertEqual(self.fake.received, [])
        conn = yield self.login(f"{base}&certfile={p.client.cert_path}&keyfile={p.client.key_path}")
        self.assertEqual(self.fake.codes(), ["93"])
        yield self.close(conn)


class TLSConfigTests(SynchronousTestCase):
    def test_files_are_checked_at_start_up(self):
        p = pki()
        combined = os.path.join(p.directory, "client-combined.pem")
        with open(combined, "wb") as f:
            f.write(open(p.client.cert_path, "rb").read() + open(p.client.key_path, "rb").read())
        tls_options(parse_url(f"sip2s://h:1?certfile={combined}"))  # the key in the certificate file
        cases = {
            f"sip2s://h:1?cafile={p.client.key_path}": "cafile=",
            f"sip2s://h:1?certfile={p.client.key_path}": "holds no PEM certificate",
            f"sip2s://h:1?certfile={p.client.cert_path}": "holds no PEM private key",
            f"sip2s://h:1?certfile={p.client.cert_path}&keyfile={p.server.key_path}": "does not belong to",
        }
        for url, expected in cases.items():
            e = self.assertRaises(UpstreamConfigError, tls_options, parse_url(url))
            self.assertIn(expected, str(e))
            for secret_line in open(p.client.key_path).read().splitlines()[1:-1]:
                self.assertNotIn(secret_line, str(e))
