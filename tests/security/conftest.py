"""Certificates and token files made per test session: no private key is ever committed."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CALLER_TOKEN = "caller-token-0c7e51f2"
OTHER_CALLER_TOKEN = "other-token-93ab1d04"


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class Pki:
    ca: Pem
    server: Pem
    client: Pem  # CN=billing, signed by ca
    stranger: Pem  # CN=billing too, but signed by a CA the server does not trust

    def channel_credentials(self, client: Pem | None = None) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.cert,
            private_key=client.key if client else None,
            certificate_chain=client.cert if client else None,
        )


def _issue(
    folder: Path,
    name: str,
    common_name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
) -> tuple[Pem, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
        ]
    )
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_file, key_file = folder / f"{name}.crt", folder / f"{name}.key"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    return Pem(cert_pem, key_pem, cert_file, key_file), cert, key


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = _issue(folder, "ca", "messagelog test CA", None)
    server, _, _ = _issue(folder, "server", "localhost", (ca_cert, ca_key), server=True)
    client, _, _ = _issue(folder, "client", "billing", (ca_cert, ca_key))
    _, rogue_cert, rogue_key = _issue(folder, "rogue-ca", "rogue CA", None)
    stranger, _, _ = _issue(folder, "stranger", "billing", (rogue_cert, rogue_key))
    return Pki(ca, server, client, stranger)


def tls_env(pki: Pki) -> dict[str, str]:
    return {
        "MESSAGELOG_TLS_CERT_FILE": str(pki.server.cert_file),
        "MESSAGELOG_TLS_KEY_FILE": str(pki.server.key_file),
    }


def mtls_env(pki: Pki) -> dict[str, str]:
    return {**tls_env(pki), "MESSAGELOG_TLS_CLIENT_CA_FILE": str(pki.ca.cert_file)}


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(
        "# sha256 of the token, then the caller's name\n"
        f"{hashlib.sha256(CALLER_TOKEN.encode()).hexdigest()} billing\n"
        f"sha256:{hashlib.sha256(OTHER_CALLER_TOKEN.encode()).hexdigest()} support-desk\n"
    )
    return path


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)
