"""What the certificate messages of chargers need, in one place: our CA, the OCSP client and
the contract-certificate endpoint, built from `[ca]` and `[certificates]` at start-up."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from csms.config import CaConfig, CertificatesConfig
from csms.pki import contract, ocsp
from csms.pki.ca import CertificateAuthority, Issued, create_ca, load_or_create
from csms.pki.csr import check_csr

CA_CERT_SUFFIX = ".ca.pem"
CA_KEY_SUFFIX = ".ca-key.pem"


def ca_paths(ca: CaConfig, db_path: str) -> tuple[Path, Path] | None:
    """The CA's certificate and key files: as configured, else beside the database; None for
    an in-memory database with none configured (the CA then lives as long as the process)."""
    if ca.cert:
        return Path(ca.cert), Path(ca.key)
    if db_path in ("", ":memory:") or db_path.startswith("file::memory:"):
        return None
    return Path(db_path + CA_CERT_SUFFIX), Path(db_path + CA_KEY_SUFFIX)


class Pki:
    """Signs chargers' CSRs, asks OCSP responders, forwards EV contract-certificate requests."""

    def __init__(self, ca: CertificateAuthority, settings: CertificatesConfig) -> None:
        self.ca = ca
        self.settings = settings

    @classmethod
    def open(cls, ca: CaConfig, settings: CertificatesConfig, db_path: str,
             now: datetime) -> Pki:
        """Load the CA named by `ca` (made on first start); CaError when it cannot be used."""
        validity = timedelta(days=ca.validity_days)
        issued = timedelta(days=ca.issued_validity_days)
        paths = ca_paths(ca, db_path)
        if paths is None:
            cert, key = create_ca(ca.common_name, ca.organization, now, validity)
            return cls(CertificateAuthority(cert, key, issued), settings)
        return cls(load_or_create(*paths, common_name=ca.common_name,
                                  organization=ca.organization, now=now, validity=validity,
                                  issued_validity=issued), settings)

    def sign(self, csr_pem: str, cp_id: str, certificate_type: str, now: datetime) -> Issued:
        """A certificate for `cp_id` from its CSR; CsrRefused when the CSR is not its own."""
        return self.ca.issue(check_csr(csr_pem, cp_id, certificate_type), now)

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.settings.http_timeout_s)

    async def certificate_status(self, request_data: dict[str, Any]) -> bytes:
        """The DER OCSP response for a GetCertificateStatus; OcspFailed when there is none."""
        async with self._client() as client:
            return await ocsp.query(request_data, client)

    async def ev_certificate(self, cp_id: str, request: dict[str, Any]) -> tuple[str, str]:
        """(status, exiResponse) from the contract-certificate endpoint; ContractFailed when
        there is none configured or it gives no usable answer."""
        url = self.settings.contract_certificate_url
        if not url:
            raise contract.ContractFailed("no contract-certificate endpoint is configured")
        async with self._client() as client:
            return await contract.forward(url, cp_id, request, client)
