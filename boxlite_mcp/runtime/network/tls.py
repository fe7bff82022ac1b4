"""TLS for secret substitution: a per-box CA, leaf certificates, the upstream check.

To put a secret into an HTTPS request the proxy must read the request, so for the
hosts a box's secrets are for it terminates TLS itself, with a certificate for
that host signed by a CA made for this box alone (the box trusts it through
``SSL_CERT_FILE`` and friends; no other box or program does), and opens its own
TLS connection to the real host, verified against the host's trust store plus
the operator's ``--net-ca-file``.

Certificates are made with ``cryptography`` (the one added dependency): the
standard library's ``ssl`` can use certificates but not create them, and no
program for it (openssl) can be assumed on a bare machine. Keys are EC P-256,
made in memory; a leaf's key and chain touch disk only for the moment
``SSLContext.load_cert_chain`` (which reads files) needs them, in a private
directory on the host that no box sees.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


class BoxCA:
    """One box's certificate authority and the leaf contexts it has issued."""

    def __init__(self, label: str, key_dir: Path) -> None:
        #: Where a leaf's key is written for the moment it is loaded (no box sees it).
        self.key_dir = key_dir
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"boxlite-mcp box {label} CA"))
            .issuer_name(_name(f"boxlite-mcp box {label} CA"))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self._contexts: dict[str, ssl.SSLContext] = {}

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def server_context(self, host: str) -> ssl.SSLContext:
        """A server-side context presenting a certificate for ``host`` (cached)."""
        host = host.lower()
        context = self._contexts.get(host)
        if context is None:
            context = self._issue(host)
            self._contexts[host] = context
        return context

    def _issue(self, host: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        try:
            san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            san = x509.DNSName(host)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(host[:64]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.SubjectAlternativeName([san]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_alpn_protocols(["http/1.1"])
        with tempfile.TemporaryDirectory(prefix="tls-", dir=self.key_dir) as tmp:
            path = Path(tmp) / f"{secrets.token_hex(4)}.pem"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(
                    key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    )
                )
                f.write(cert.public_bytes(serialization.Encoding.PEM))
            context.load_cert_chain(path)
        return context


def upstream_context(ca_file: str | None = None) -> ssl.SSLContext:
    """How the proxy verifies real servers: the host's trust store plus ``ca_file``."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(ca_file)
    context.set_alpn_protocols(["http/1.1"])
    return context


def system_bundle() -> bytes:
    """The host's CA bundle (what a box's programs trust besides the box's CA)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (
        paths.cafile,
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ):
        if candidate and os.path.isfile(candidate):
            with open(candidate, "rb") as f:
                return f.read()
    return b""
