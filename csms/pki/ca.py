"""Loadstar's own certificate authority: it signs the certificates of its chargers.

The CA's certificate and key are two PEM files named in config.toml (`[ca] cert`, `key`);
both are made on first start when neither exists, the key file with mode 0600 and never
overwritten. The key never reaches a log. Mutual TLS and per-charger security profiles (a later
issue) build on this CA: it is the root chargers' client certificates chain to.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.pki.csr import V2G, CheckedCsr

log = structlog.get_logger("csms.pki.ca")

# Issued certificates start a little in the past: a charger whose clock runs behind ours
# must not find its new certificate not yet valid.
BACKDATE = timedelta(minutes=5)


class CaError(Exception):
    """The CA's files cannot be used (the message names the file, never the key)."""


@dataclass(frozen=True, slots=True)
class Issued:
    """A certificate our CA signed, and the chain a charger installs (leaf, then our CA)."""

    certificate: x509.Certificate
    chain_pem: str

    @property
    def serial_hex(self) -> str:
        return format(self.certificate.serial_number, "x")


class CertificateAuthority:
    """Signs checked CSRs with the CA's key."""

    def __init__(self, certificate: x509.Certificate,
                 key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
                 issued_validity: timedelta) -> None:
        self.certificate = certificate
        self._key = key
        self.issued_validity = issued_validity

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, checked: CheckedCsr, now: datetime) -> Issued:
        """A certificate for the charger of `checked`, valid from now (at most until the
        CA itself expires), with the key usages its type needs."""
        key = checked.csr.public_key()
        not_after = min(now + self.issued_validity, self.certificate.not_valid_after_utc)
        is_ec = isinstance(key, ec.EllipticCurvePublicKey)
        # A station certificate is the TLS client certificate of security profile 3; a V2G
        # (SECC) certificate is the TLS server certificate an EV talks to.
        usage = ExtendedKeyUsageOID.SERVER_AUTH if checked.certificate_type == V2G \
            else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(checked.csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=not is_ec, data_encipherment=False, key_agreement=is_ec,
                key_cert_sign=False, crl_sign=False, encipher_only=False,
                decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self._key.public_key()), critical=False)
        )
        cert = builder.sign(self._key, hashes.SHA256())
        chain = cert.public_bytes(serialization.Encoding.PEM).decode() + self.certificate_pem
        return Issued(cert, chain)


def create_ca(common_name: str, organization: str, now: datetime, validity: timedelta
              ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new self-signed CA: an EC P-256 key (OCPP's and ISO 15118-2's curve) and its root."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        # Signs leaf certificates only: no intermediate below it.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to a file that must not exist yet, created with `mode`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def load_or_create(cert_path: Path, key_path: Path, *, common_name: str, organization: str,
                   now: datetime, validity: timedelta,
                   issued_validity: timedelta) -> CertificateAuthority:
    """The CA in `cert_path` / `key_path`, made there when neither file exists.

    One file without the other, a file that does not read, or a key that is not the
    certificate's, is a CaError: an operator's CA is never replaced behind their back.
    """
    have_cert, have_key = cert_path.exists(), key_path.exists()
    if not have_cert and not have_key:
        cert, new_key = create_ca(common_name, organization, now, validity)
        try:
            _write_new(key_path, new_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()), 0o600)
            _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        except OSError as e:
            raise CaError(f"cannot create CA files {cert_path} / {key_path}: "
                          f"{e.strerror or e}") from None
        log.info("ca_created", cert=str(cert_path), subject=cert.subject.rfc4514_string(),
                 not_after=cert.not_valid_after_utc.isoformat())
        return CertificateAuthority(cert, new_key, issued_validity)
    if not have_cert or not have_key:
        missing = cert_path if not have_cert else key_path
        raise CaError(f"CA file {missing} is missing (the other one exists)")
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as e:
        raise CaError(f"cannot read CA certificate {cert_path}: {e}") from None
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        # The exception's text could quote the file: say only which file it is.
        raise CaError(f"cannot read CA key {key_path} (an unencrypted PEM key)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CaError(f"CA key {key_path} is neither an EC nor an RSA key")
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, public):
        raise CaError(f"CA key {key_path} is not the key of {cert_path}")
    mode = os.stat(key_path).st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("ca_key_file_readable_by_others", path=str(key_path), mode=oct(mode & 0o777))
    return CertificateAuthority(cert, key, issued_validity)
