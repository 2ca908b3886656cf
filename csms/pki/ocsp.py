"""OCSP look-ups for chargers (2.0.1 M06 GetCertificateStatus, and eMAID checks later).

The charger sends the hashes that name a certificate and the responder's URL; we build the
RFC 6960 request with `cryptography`, POST it with httpx, and hand back the DER response the
responder gave, once it reads as a successful answer about that certificate.
"""

from __future__ import annotations

from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}


class OcspFailed(Exception):
    """No usable answer from the responder; the message says why."""


def ocsp_request(data: dict[str, Any]) -> bytes:
    """The DER OCSP request for 2.0.1 `OCSPRequestDataType` data; OcspFailed if it is unusable."""
    try:
        algorithm = ALGORITHMS[data["hashAlgorithm"]]()
        request = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
            bytes.fromhex(data["issuerNameHash"]), bytes.fromhex(data["issuerKeyHash"]),
            int(data["serialNumber"], 16), algorithm).build()
    except (KeyError, ValueError, TypeError) as e:
        raise OcspFailed(f"the request data do not make an OCSP request: {e}") from None
    return request.public_bytes(serialization.Encoding.DER)


async def query(data: dict[str, Any], client: httpx.AsyncClient) -> bytes:
    """Ask the responder at `data["responderURL"]`; its DER response when successful and about
    the certificate asked for, else OcspFailed."""
    body = ocsp_request(data)
    url = data.get("responderURL", "")
    try:
        reply = await client.post(url, content=body,
                                  headers={"Content-Type": "application/ocsp-request",
                                           "Accept": "application/ocsp-response"})
    except (httpx.HTTPError, ValueError) as e:
        raise OcspFailed(f"responder unreachable: {type(e).__name__}") from None
    if reply.status_code != 200:
        raise OcspFailed(f"responder answered HTTP {reply.status_code}")
    try:
        response = ocsp.load_der_ocsp_response(reply.content)
    except ValueError:
        raise OcspFailed("responder's answer is not an OCSP response") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspFailed(f"responder answered {response.response_status.name}")
    if response.serial_number != int(data["serialNumber"], 16):
        raise OcspFailed("responder answered about another certificate")
    return reply.content


def hash_data(pem: str, issuer_pem: str | None = None,
              algorithm: str = "SHA256") -> dict[str, Any]:
    """CertificateHashData naming the certificate in `pem` (a root is its own issuer)."""
    cert = x509.load_pem_x509_certificate(pem.encode("utf-8"))
    issuer = cert if issuer_pem is None else x509.load_pem_x509_certificate(
        issuer_pem.encode("utf-8"))
    hashers = {"SHA256": hashes.SHA256, "SHA384": hashes.SHA384, "SHA512": hashes.SHA512}
    request = ocsp.OCSPRequestBuilder().add_certificate(
        cert, issuer, hashers[algorithm]()).build()
    return {"hashAlgorithm": algorithm, "issuerNameHash": request.issuer_name_hash.hex(),
            "issuerKeyHash": request.issuer_key_hash.hex(),
            "serialNumber": format(request.serial_number, "x")}
