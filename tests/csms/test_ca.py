"""Loadstar's CA: what it issues chains to it, names the charger, lasts as configured and may
only do what a charger certificate does; CSRs of other chargers or weak keys are refused; its
files are made once, the key 0600, and never replaced."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from csms.config import CaConfig, CertificatesConfig, ConfigError, load_config
from csms.pki.ca import CaError, load_or_create
from csms.pki.csr import V2G, CsrRefused, check_csr
from csms.pki.service import Pki
from csms.service import Loadstar, StartupError
from tests.conftest import make_config

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def csr_pem(common_name: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
            ) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def pki(tmp_path: Path, **ca: object) -> Pki:
    return Pki.open(CaConfig(**ca), CertificatesConfig(), str(tmp_path / "db.sqlite"), NOW)


def test_issued_certificate_chains_to_our_ca_and_names_the_charger(tmp_path: Path) -> None:
    authority = pki(tmp_path, issued_validity_days=30)
    issued = authority.sign(csr_pem("CP-1"), "CP-1", "ChargingStationCertificate", NOW)
    chain = x509.load_pem_x509_certificates(issued.chain_pem.encode())
    leaf, root = chain
    assert root == authority.ca.certificate
    leaf.verify_directly_issued_by(root)  # raises when the signature or issuer do not match
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-1"
    assert leaf.issuer == root.subject
    assert leaf.not_valid_after_utc == NOW + timedelta(days=30)
    assert leaf.not_valid_before_utc <= NOW
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign and not usage.crl_sign
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == \
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_issued_certificate_never_outlives_the_ca(tmp_path: Path) -> None:
    authority = pki(tmp_path, validity_days=10, issued_validity_days=365)
    issued = authority.sign(csr_pem("CP-1"), "CP-1", "ChargingStationCertificate", NOW)
    assert issued.certificate.not_valid_after_utc == authority.ca.certificate.not_valid_after_utc


def test_a_v2g_certificate_is_a_tls_server_certificate_on_p256(tmp_path: Path) -> None:
    authority = pki(tmp_path)
    issued = authority.sign(csr_pem("CP-1"), "CP-1", V2G, NOW)
    assert list(issued.certificate.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    rsa_csr = csr_pem("CP-1", rsa.generate_private_key(65537, 2048))
    with pytest.raises(CsrRefused, match="secp256r1"):
        check_csr(rsa_csr, "CP-1", V2G)
    check_csr(rsa_csr, "CP-1", "ChargingStationCertificate")  # fine for a station


def test_a_csr_with_another_chargers_cn_is_refused() -> None:
    with pytest.raises(CsrRefused, match="not the charge point id"):
        check_csr(csr_pem("CP-2"), "CP-1")


def test_a_csr_that_is_not_one_or_badly_signed_or_weak_is_refused() -> None:
    with pytest.raises(CsrRefused, match="not a PEM"):
        check_csr("-----BEGIN CERTIFICATE REQUEST-----\nxx\n-----END", "CP-1")
    with pytest.raises(CsrRefused, match="at least 2048"):
        check_csr(csr_pem("CP-1", rsa.generate_private_key(65537, 1024)), "CP-1")
    with pytest.raises(CsrRefused, match="unknown certificateType"):
        check_csr(csr_pem("CP-1"), "CP-1", "MORootCertificate")
    # A CSR whose content was changed after signing: its signature no longer holds.
    good = x509.load_pem_x509_csr(csr_pem("CP-1").encode())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CsrRefused, match="signature"):
        check_csr(tampered.decode(), "CP-1")


def test_ca_files_are_made_once_key_0600_and_kept(tmp_path: Path) -> None:
    first = pki(tmp_path)
    cert, key = tmp_path / "db.sqlite.ca.pem", tmp_path / "db.sqlite.ca-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = pki(tmp_path)
    assert again.ca.certificate == first.ca.certificate
    # What the reloaded CA issues chains to the same root.
    issued = again.sign(csr_pem("CP-1"), "CP-1", "ChargingStationCertificate", NOW)
    issued.certificate.verify_directly_issued_by(first.ca.certificate)
    assert cert.read_bytes() == first.ca.certificate.public_bytes(serialization.Encoding.PEM)


def test_configured_ca_files_are_used_and_a_half_pair_is_refused(tmp_path: Path) -> None:
    cert, key = tmp_path / "ca.pem", tmp_path / "ca.key"
    made = pki(tmp_path, cert=str(cert), key=str(key))
    assert cert.exists() and key.exists()
    assert not (tmp_path / "db.sqlite.ca.pem").exists()
    key.unlink()
    with pytest.raises(CaError, match="missing"):
        pki(tmp_path, cert=str(cert), key=str(key))
    assert cert.read_bytes() == made.ca.certificate.public_bytes(serialization.Encoding.PEM)


def test_a_key_that_is_not_the_certificates_is_refused_without_quoting_it(
        tmp_path: Path) -> None:
    pki(tmp_path, cert=str(tmp_path / "a.pem"), key=str(tmp_path / "a.key"))
    pki(tmp_path, cert=str(tmp_path / "b.pem"), key=str(tmp_path / "b.key"))
    with pytest.raises(CaError, match="is not the key of") as caught:
        load_or_create(tmp_path / "a.pem", tmp_path / "b.key", common_name="x",
                       organization="y", now=NOW, validity=timedelta(days=1),
                       issued_validity=timedelta(days=1))
    assert "PRIVATE KEY" not in str(caught.value)


def test_ca_files_in_config_toml_are_relative_to_it_and_come_in_pairs(tmp_path: Path) -> None:
    toml = tmp_path / "config.toml"
    toml.write_text('[ca]\ncert = "pki/ca.pem"\nkey = "pki/ca.key"\n')
    config = load_config(toml)
    assert (config.ca.cert, config.ca.key) == (str(tmp_path / "pki/ca.pem"),
                                               str(tmp_path / "pki/ca.key"))
    toml.write_text('[ca]\nkey = "ca.key"\n')
    with pytest.raises(ConfigError, match="ca.cert: required with key"):
        load_config(toml)


async def test_a_ca_that_cannot_be_used_stops_the_start_with_one_line(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    config.ca.cert, config.ca.key = str(tmp_path / "ca.pem"), str(tmp_path / "ca.key")
    (tmp_path / "ca.pem").write_text("not a certificate")
    service = Loadstar(config)
    with pytest.raises(StartupError, match="missing"):
        await service.start()
    (tmp_path / "ca.key").write_text("not a key either")
    service = Loadstar(config)
    with pytest.raises(StartupError, match="cannot read CA certificate"):
        await service.start()
