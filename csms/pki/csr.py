"""Checks of a charger's certificate signing request before our CA signs it.

A CSR is signed only for the charger that sends it: its subject's CN must be the charge point
id (OCPP 2.0.1 part 2, "Certificate Properties"; the 1.6 Security White Paper says the same).
Keys must meet OCPP's minimum (RSA 2048 / EC 256 bits); a V2G (ISO 15118-2 SECC) certificate
must hold a secp256r1 key, the only curve ISO 15118-2 knows.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

STATION = "ChargingStationCertificate"
V2G = "V2GCertificate"
CERTIFICATE_TYPES = (STATION, V2G)
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


class CsrRefused(ValueError):
    """The CSR cannot be signed for this charger; the message says why (no secrets in it)."""


@dataclass(frozen=True, slots=True)
class CheckedCsr:
    """A CSR that may be signed for `cp_id` as a `certificate_type`."""

    csr: x509.CertificateSigningRequest
    cp_id: str
    certificate_type: str

    @property
    def subject(self) -> str:
        return self.csr.subject.rfc4514_string()


def parse_csr(pem: str) -> x509.CertificateSigningRequest:
    """The PEM CSR in `pem` whose self-signature holds; CsrRefused otherwise."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode("utf-8"))
        valid = csr.is_signature_valid
    except (ValueError, TypeError, UnicodeEncodeError):
        raise CsrRefused("not a PEM certificate signing request") from None
    if not valid:
        raise CsrRefused("the CSR's signature does not hold")
    return csr


def check_csr(pem: str, cp_id: str, certificate_type: str = STATION) -> CheckedCsr:
    """`pem` checked as a CSR of charger `cp_id` for a `certificate_type`; CsrRefused if not."""
    if certificate_type not in CERTIFICATE_TYPES:
        raise CsrRefused(f"unknown certificateType {certificate_type!r}")
    csr = parse_csr(pem)
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1:
        raise CsrRefused("the subject must carry exactly one CN")
    if names[0].value != cp_id:
        raise CsrRefused(f"the subject's CN {names[0].value!r} is not the charge point id")
    key = csr.public_key()
    if certificate_type == V2G:
        if not (isinstance(key, ec.EllipticCurvePublicKey)
                and isinstance(key.curve, ec.SECP256R1)):
            raise CsrRefused("a V2GCertificate needs a secp256r1 key (ISO 15118-2)")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRefused(f"an RSA key needs at least {MIN_RSA_BITS} bits")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.key_size < MIN_EC_BITS:
            raise CsrRefused(f"an EC key needs at least {MIN_EC_BITS} bits")
    else:
        raise CsrRefused("only RSA and EC keys are signed")
    return CheckedCsr(csr, cp_id, certificate_type)
