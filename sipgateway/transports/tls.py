"""TLS door: a server endpoint that can require client certificates from a given CA.

Twisted's own ``ssl:`` endpoint cannot ask for client certificates, so ``tls:`` is ours:

    tls:6009:privateKey=key.pem:certKey=cert.pem[:caCerts=clients-ca.pem]
        [:extraCertChain=chain.pem][:interface=127.0.0.1][:backlog=N]

``backlog`` defaults to the system's somaxconn (see ``transports.backlog``).

TLS 1.2 is the minimum; the cipher list is Twisted's default ``AcceptableCiphers``
(ECDHE key exchange with AES-GCM or ChaCha20-Poly1305; no RC4, 3DES, MD5 or export
suites). With ``caCerts`` every client must present a certificate that chains to one of
those CAs and is within its validity dates, or the handshake fails.

Recent Twisted releases ship a ``tls:`` server parser of their own (a directory of PEM
files served by SNI, no client certificates) that shadows a plugin with the same prefix.
So ``server_from_string`` is ``serverFromString`` with ``tls:`` meaning ours, and the
plugin is also registered as ``siptls:``, which nothing shadows.

``peer_subject(transport)`` gives the verified client certificate's subject as an
RFC 4514 string ("CN=sorter1,O=Library"); the raw SIP protocol logs it and binds the
listener's ``cert_accounts[subject]``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import OpenSSL
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, serverFromString
from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IProtocolNegotiationFactory,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from sipgateway.transports import proxyheader
from sipgateway.transports.backlog import MAX_BACKLOG, default_backlog
from sipgateway.transports.endpointstrings import split_description

log = Logger()

#: attribute names in subjects beyond RFC 4514's own, as ``openssl x509 -subject -nameopt RFC2253``
#: prints them, so that a subject copied from openssl matches (cryptography would print the OID)
SUBJECT_NAMES = {
    NameOID.EMAIL_ADDRESS: "emailAddress", NameOID.SERIAL_NUMBER: "serialNumber", NameOID.TITLE: "title",
    NameOID.STREET_ADDRESS: "street", NameOID.POSTAL_CODE: "postalCode", NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN", NameOID.INITIALS: "initials", NameOID.PSEUDONYM: "pseudonym",
    NameOID.GENERATION_QUALIFIER: "generationQualifier", NameOID.DN_QUALIFIER: "dnQualifier",
    NameOID.BUSINESS_CATEGORY: "businessCategory",
}

MINIMUM_TLS_VERSION = TLSVersion.TLSv1_2
_KEYS = ("privateKey", "certKey", "caCerts", "extraCertChain", "interface", "backlog")
#: pyOpenSSL 24.3+ takes cryptography's certificates and keys for its context (and deprecates
#: its own X509/PKey there); older releases need its own types.
_TAKES_CRYPTOGRAPHY = tuple(int(part) for part in OpenSSL.__version__.split(".")[:2]) >= (24, 3)


class TLSConfigError(ValueError):
    """A ``tls:`` endpoint cannot be built; the message names the key and the file, never its content."""


def _read(key: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError(f"tls endpoint: {key} file {path!r} cannot be read: {e.strerror or e}") from None


def _load_key(path: str):
    data = _read("privateKey", path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise TLSConfigError(
            f"tls endpoint: privateKey file {path!r} is encrypted with a passphrase; the gateway needs an "
            f"unencrypted key (protect it with file permissions: chmod 600)") from None
    except (ValueError, crypto.Error):
        # The library's message could quote the data; say only what is wrong.
        raise TLSConfigError(
            f"tls endpoint: privateKey file {path!r} holds no PEM private key "
            f"('-----BEGIN PRIVATE KEY-----' block)") from None


def _load_certs(key: str, path: str) -> list[x509.Certificate]:
    data = _read(key, path)
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        certs = []
    if not certs:
        raise TLSConfigError(f"tls endpoint: {key} file {path!r} holds no PEM certificate "
                             f"('-----BEGIN CERTIFICATE-----' block)")
    return certs


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def server_options(private_key: str, cert_key: str | None = None, ca_certs: str | None = None,
                   extra_cert_chain: str | None = None) -> CertificateOptions:
    """Load and check the files; return ready ``CertificateOptions`` or raise ``TLSConfigError``.

    ``cert_key`` defaults to ``private_key`` (one PEM file holding both), as Twisted's
    ``ssl:`` does. Certificates after the first in ``cert_key`` are served as chain too."""
    cert_key = cert_key or private_key
    key = _load_key(private_key)
    leaf, *chain = _load_certs("certKey", cert_key)
    if extra_cert_chain:
        chain += _load_certs("extraCertChain", extra_cert_chain)
    if _public_der(key.public_key()) != _public_der(leaf.public_key()):
        raise TLSConfigError(
            f"tls endpoint: privateKey file {private_key!r} does not belong to the certificate in certKey "
            f"file {cert_key!r} (their public keys differ)")
    now = datetime.now(UTC)
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        log.warn("tls endpoint: the server certificate in {path!r} ({subject}) is valid only from {start} to "
                 "{end}; clients will refuse it", path=cert_key, subject=leaf.subject.rfc4514_string(),
                 start=leaf.not_valid_before_utc.isoformat(), end=leaf.not_valid_after_utc.isoformat())
    cas = _load_certs("caCerts", ca_certs) if ca_certs else []
    own = (lambda c: c) if _TAKES_CRYPTOGRAPHY else crypto.X509.from_cryptography
    try:
        options = CertificateOptions(
            privateKey=key if _TAKES_CRYPTOGRAPHY else crypto.PKey.from_cryptography_key(key),
            certificate=own(leaf),
            extraCertChain=[own(c) for c in chain] or None,
            raiseMinimumTo=MINIMUM_TLS_VERSION,
            verify=bool(cas),
            # the trust store takes only pyOpenSSL's X509, in every version
            caCerts=[crypto.X509.from_cryptography(c) for c in cas] or None,
            requireCertificate=bool(cas),
        )
        # built now so that a bad combination stops start-up
        options.getContext().set_alpn_select_callback(_select_alpn)
    except (SSL.Error, crypto.Error, ValueError, TypeError) as e:
        raise TLSConfigError(
            f"tls endpoint: privateKey file {private_key!r} and certKey file {cert_key!r} cannot be used "
            f"together: {_openssl_reason(e)}") from None
    return options


def _openssl_reason(e: Exception) -> str:
    if isinstance(e, SSL.Error) and e.args and isinstance(e.args[0], list) and e.args[0]:
        return "; ".join(str(part[-1]) for part in e.args[0])
    return str(e) or type(e).__name__


class _FailureLog(ProtocolWrapper):
    """Logs why a TLS connection failed (a refused client certificate, an old TLS version),
    which the SIP protocol above would only see as a disconnect."""

    def connectionLost(self, reason: Failure) -> None:
        if reason.check(SSL.Error):
            peer = self.getPeer()
            log.warn("tls port {port}: {host}:{peer_port}: TLS refused or failed: {why}",
                     port=self.factory.port, host=getattr(peer, "host", peer),
                     peer_port=getattr(peer, "port", ""), why=_openssl_reason(reason.value))
        super().connectionLost(reason)


@implementer(IProtocolNegotiationFactory)
class _FailureLogFactory(WrappingFactory):
    protocol = _FailureLog

    def __init__(self, wrapped, port: int) -> None:
        super().__init__(wrapped)
        self.port = port
        self._alpn = _offered_protocols(wrapped)

    def acceptableProtocols(self) -> list[bytes]:  # noqa: N802 - Twisted's name
        """What ALPN may choose: the HTTP door's ``http/1.1``; nothing for the SIP2 doors."""
        return self._alpn


def _offered_protocols(factory, depth: int = 8) -> list[bytes]:
    """The ALPN protocols of the innermost factory that has some (twisted.web's Site), looked
    for through the wrapping factories (limits, logging) around it."""
    for _ in range(depth):
        if factory is None:
            break
        negotiating = IProtocolNegotiationFactory(factory, None)
        if negotiating is not None:
            return list(negotiating.acceptableProtocols())
        factory = getattr(factory, "wrappedFactory", None)
    return []


def _select_alpn(connection: SSL.Connection, offered: list[bytes]):
    """Choose the first of the listener's protocols that the client offered; with none in
    common, carry on without ALPN.  Twisted's own callback answers b"" then, which OpenSSL
    turns into a handshake failure: curl, browsers and most HTTP libraries offer ALPN."""
    tls = connection.get_app_data()
    factory = getattr(tls, "factory", None)
    wrapped = getattr(factory, "wrappedFactory", None)
    ours = wrapped.acceptableProtocols() if isinstance(wrapped, _FailureLogFactory) else []
    for protocol in ours:
        if protocol in offered:
            return protocol
    return SSL.NO_OVERLAPPING_PROTOCOLS


@implementer(IOpenSSLServerConnectionCreator)
class _CurrentOptions:
    """Each new connection gets the endpoint's options as they are then: a reload puts
    new ones there (a renewed certificate) without closing the port."""

    def __init__(self, endpoint: TLSServerEndpoint) -> None:
        self.endpoint = endpoint

    def serverConnectionForTLS(self, protocol):  # noqa: N802 - Twisted's name
        return self.endpoint.options.serverConnectionForTLS(protocol)


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """TCP (v4, or v6 when ``interface`` has a ':') wrapped in TLS with our options.
    ``options`` may be replaced while listening: new connections use the new ones."""

    def __init__(self, reactor, port: int, privateKey: str, certKey: str | None = None,
                 caCerts: str | None = None, extraCertChain: str | None = None, interface: str = "",
                 backlog: int | None = None) -> None:
        self.options = server_options(privateKey, certKey, caCerts, extraCertChain)
        self.requires_client_certificate = bool(caCerts)
        self.port = port
        tcp = TCP6ServerEndpoint if ":" in interface else TCP4ServerEndpoint
        #: the TCP endpoint below the TLS (a PROXY header is read there, see proxyheader.py)
        self.tcp = tcp(reactor, port, backlog=backlog or default_backlog(), interface=interface)

    def wrap(self, factory):
        """The TLS server factory around ``factory`` (what ``listen`` listens with)."""
        return TLSMemoryBIOFactory(_CurrentOptions(self), False, _FailureLogFactory(factory, self.port))

    def listen(self, protocolFactory):
        return self.tcp.listen(self.wrap(protocolFactory))


def _integer(key: str, value: str, low: int, high: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise TLSConfigError(f"tls endpoint: {key}={value!r} is not a whole number") from None
    if not low <= n <= high:
        raise TLSConfigError(f"tls endpoint: {key}={value!r} must be between {low} and {high}")
    return n


def parse_tls_endpoint(reactor, *args: str, **kwargs: str) -> TLSServerEndpoint:
    """Build a ``TLSServerEndpoint`` from the parts of a ``tls:...`` endpoint string."""
    if len(args) != 1:
        raise TLSConfigError(
            "tls endpoint: give exactly one port, e.g. tls:6009:privateKey=key.pem:certKey=cert.pem")
    unknown = sorted(set(kwargs) - set(_KEYS))
    if unknown:
        raise TLSConfigError(f"tls endpoint: unknown option {unknown[0]!r} (known: {', '.join(_KEYS)})")
    if not kwargs.get("privateKey"):
        raise TLSConfigError("tls endpoint: privateKey=FILE is required (the server's PEM private key)")
    return TLSServerEndpoint(
        reactor,
        _integer("port", args[0], 0, 65535),
        privateKey=kwargs["privateKey"],
        certKey=kwargs.get("certKey") or None,
        caCerts=kwargs.get("caCerts") or None,
        extraCertChain=kwargs.get("extraCertChain") or None,
        interface=kwargs.get("interface", ""),
        backlog=_integer("backlog", kwargs["backlog"], 1, MAX_BACKLOG) if kwargs.get("backlog") else None,
    )


@implementer(IPlugin, IStreamServerEndpointStringParser)
class TLSEndpointParser:
    """The ``tls:`` server endpoint string parser (registered in twisted/plugins, also as
    ``siptls:``)."""

    def __init__(self, prefix: str = "tls") -> None:
        self.prefix = prefix

    def parseStreamServer(self, reactor, *args, **kwargs):
        return parse_tls_endpoint(reactor, *args, **kwargs)


def server_from_string(reactor, description: str):
    """``serverFromString``, except that ``tls:`` is our endpoint (see the module docstring)
    and ``haproxy:`` reads the PROXY header before our protocols see the connection
    (proxyheader.py)."""
    inner = proxyheader.unwrapped(description)
    if inner != description:
        return proxyheader.ProxyHeaderEndpoint(reactor, server_from_string(reactor, inner))
    args, kwargs = split_description(description)
    if args and args[0].lower() == "tls":
        return parse_tls_endpoint(reactor, *args[1:], **kwargs)
    return serverFromString(reactor, description)


def peer_subject(transport) -> str | None:
    """The subject of the peer's certificate as an RFC 4514 string, or None (no TLS, no certificate)."""
    get = getattr(transport, "getPeerCertificate", None)
    if get is None:
        return None
    try:
        cert = get()
    except (SSL.Error, AttributeError):  # not handshaken yet / connection already gone
        return None
    if cert is None:
        return None
    if isinstance(cert, crypto.X509):
        cert = cert.to_cryptography()
    return cert.subject.rfc4514_string(SUBJECT_NAMES)
