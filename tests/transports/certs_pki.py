"""A throw-away PKI for the TLS tests, generated in the test (EC P-256 keys: fast).

``make_pki(directory)`` writes PEM files and returns their paths: a CA, a server
certificate (localhost / 127.0.0.1), a client certificate from that CA, one from another
CA, an expired one from the right CA, and an intermediate CA with a server certificate
under it (for extraCertChain)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_SUBJECT = "CN=sorter1,O=Library"


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    key_path: str
    cert_path: str


def _name(cn: str, org: str) -> x509.Name:
    # Most general first, as openssl and X.509 order them; RFC 4514 prints it reversed.
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(directory: str, stem: str, subject: x509.Name, issuer: Issued | None, *, ca: bool = False,
           server: bool = False, expired: bool = False) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    start, end = (now - timedelta(days=30), now - timedelta(days=1)) if expired else (
        now - timedelta(hours=1), now + timedelta(days=30))
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer.cert.subject if issuer else subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start)
               .not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    key_path = os.path.join(directory, f"{stem}.key")
    cert_path = os.path.join(directory, f"{stem}.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return Issued(key, cert, key_path, cert_path)


@dataclass
class PKI:
    directory: str
    ca: Issued
    server: Issued
    client: Issued
    other_ca: Issued
    other_client: Issued
    expired_client: Issued
    intermediate: Issued
    chained_server: Issued


def make_pki(directory: str) -> PKI:
    os.makedirs(directory, exist_ok=True)
    ca = _issue(directory, "ca", _name("Test Library CA", "Library"), None, ca=True)
    other_ca = _issue(directory, "other-ca", _name("Somebody Else CA", "Elsewhere"), None, ca=True)
    intermediate = _issue(directory, "intermediate", _name("Test Library Servers", "Library"), ca, ca=True)
    return PKI(
        directory=directory,
        ca=ca,
        server=_issue(directory, "server", _name("localhost", "Library"), ca, server=True),
        client=_issue(directory, "client", _name("sorter1", "Library"), ca),
        other_ca=other_ca,
        other_client=_issue(directory, "other-client", _name("sorter1", "Library"), other_ca),
        expired_client=_issue(directory, "expired-client", _name("sorter1", "Library"), ca, expired=True),
        intermediate=intermediate,
        chained_server=_issue(directory, "chained-server", _name("localhost", "Library"), intermediate,
                              server=True),
    )
