"""The client endpoint for an upstream: TCP for sip2://, TLS over TCP for sip2s://.

sip2s verifies the server: its certificate must chain to a trusted CA (the ``cafile``
CAs when given, else the system's trust store) and name the URL's host (a DNS name or an
IP address in its subjectAltName, checked by service-identity); otherwise the handshake
fails and no SIP2 byte is sent. With ``certfile`` (and ``keyfile``, or the key in
``certfile``) the gateway presents that client certificate (certificates after the first
in ``certfile`` are sent as its chain). TLS 1.2 is the minimum.

``client_endpoint`` loads and checks the files when it is called (at start-up), so a bad
file is a start-up error naming the key and the file, never its content.
"""

from __future__ import annotations

import OpenSSL
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator, IStreamClientEndpoint
from twisted.internet.ssl import (
    Certificate,
    TLSVersion,
    optionsForClientTLS,
    trustRootFromCertificates,
)

from sipgateway.acs.upstream.url import UpstreamConfig, UpstreamConfigError

_TAKES_CRYPTOGRAPHY = tuple(int(part) for part in OpenSSL.__version__.split(".")[:2]) >= (24, 3)


def client_endpoint(reactor, config: UpstreamConfig) -> IStreamClientEndpoint:
    """A reusable endpoint to ``config``'s server (each ``connect`` opens one connection);
    the connection attempt gives up after ``config.timeout`` seconds.  A host name is
    looked up on every connect (HostnameEndpoint: getaddrinfo in the reactor's thread pool),
    so a changed DNS record is followed; an IP address is connected to directly, without a
    thread and the lookup machinery (about 1 ms of CPU per connect, paid on every device
    login in pass-through mode)."""
    if isIPAddress(config.host):
        tcp: IStreamClientEndpoint = TCP4ClientEndpoint(reactor, config.host, config.port, timeout=config.timeout)
    elif isIPv6Address(config.host):
        tcp = TCP6ClientEndpoint(reactor, config.host, config.port, timeout=config.timeout)
    else:
        tcp = HostnameEndpoint(reactor, config.host, config.port, timeout=config.timeout)
    if not config.tls:
        return tcp
    return wrapClientTLS(tls_options(config), tcp)


def tls_options(config: UpstreamConfig) -> IOpenSSLClientConnectionCreator:
    """Client TLS options for ``config`` (sip2s); raises ``UpstreamConfigError``."""
    where = f"upstream {config.server}"
    trust = None
    if config.cafile:
        trust = trustRootFromCertificates([_twisted_cert(c) for c in _certs(where, "cafile", config.cafile)])
    extra: dict = {"raiseMinimumTo": TLSVersion.TLSv1_2}
    if config.certfile:
        leaf, *chain = _certs(where, "certfile", config.certfile)
        key_path = config.keyfile or config.certfile
        key = _key(where, "keyfile" if config.keyfile else "certfile", key_path)
        if _public(key.public_key()) != _public(leaf.public_key()):
            raise UpstreamConfigError(f"{where}: the key in {key_path!r} does not belong to the certificate in "
                                      f"certfile={config.certfile!r}")
        # given as options rather than a PrivateCertificate: pyOpenSSL 24.3+ takes cryptography's
        # objects (and deprecates its own); older releases need its own types
        own = (lambda c: c) if _TAKES_CRYPTOGRAPHY else crypto.X509.from_cryptography
        extra["privateKey"] = key if _TAKES_CRYPTOGRAPHY else crypto.PKey.from_cryptography_key(key)
        extra["certificate"] = own(leaf)
        if chain:
            extra["extraCertChain"] = [own(c) for c in chain]
    try:
        return optionsForClientTLS(config.host, trustRoot=trust, extraCertificateOptions=extra)
    except (SSL.Error, crypto.Error, ValueError, TypeError) as e:
        raise UpstreamConfigError(f"{where}: TLS options cannot be built: {e}") from None


def _read(where: str, key: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UpstreamConfigError(f"{where}: {key}={path!r} cannot be read: {e.strerror or e}") from None


def _certs(where: str, key: str, path: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(_read(where, key, path))
    except ValueError:
        certs = []
    if not certs:
        raise UpstreamConfigError(f"{where}: {key}={path!r} holds no PEM certificate "
                                  "('-----BEGIN CERTIFICATE-----' block)")
    return certs


def _key(where: str, key: str, path: str):
    try:
        return serialization.load_pem_private_key(_read(where, key, path), password=None)
    except TypeError:
        raise UpstreamConfigError(f"{where}: {key}={path!r} is encrypted with a passphrase; give an unencrypted "
                                  "key (protect it with file permissions)") from None
    except ValueError:
        raise UpstreamConfigError(f"{where}: {key}={path!r} holds no PEM private key") from None


def _public(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _twisted_cert(cert: x509.Certificate) -> Certificate:
    return Certificate.loadPEM(cert.public_bytes(serialization.Encoding.PEM))
