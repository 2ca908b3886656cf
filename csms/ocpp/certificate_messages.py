"""Station-initiated certificate messages of both versions, answered with Loadstar's PKI.

SignCertificate (2.0.1 A02/A03, 1.6 security extension) is answered Accepted when our CA will
sign the CSR for this charger, and the certificate follows as CertificateSigned once the answer
is on the wire (the charger's answer to it is recorded as a command); GetCertificateStatus
(M06) is asked of the OCSP responder the charger names; Get15118EVCertificate (M01/M02) goes to
the contract-certificate endpoint. Each request is stored as a charger event first.
"""

from __future__ import annotations

import base64
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp

from csms.ocpp.context import Handler, HandlerContext, Payload
from csms.ocpp.station_reports import required
from csms.pki.ca import Issued
from csms.pki.contract import ContractFailed
from csms.pki.csr import STATION, CsrRefused, parse_csr
from csms.pki.ocsp import OcspFailed, hash_data

log = structlog.get_logger("csms.ocpp.certificate_messages")

V201 = "2.0.1"
# StatusInfoType's maxLengths (reasonCode 20).
MAX_INFO = 512
# GetCertificateStatusResponse.ocspResult's maxLength (base64 of the DER response).
MAX_OCSP_RESULT = 5500


def csr_subject(pem: str) -> str | None:
    """The subject of a PEM CSR whose signature holds, else None."""
    try:
        return parse_csr(pem).subject.rfc4514_string()
    except CsrRefused:
        return None


def _status_info(reason_code: str, why: str) -> Payload:
    return {"reasonCode": reason_code, "additionalInfo": why[:MAX_INFO]}


def sign_certificate(version: str) -> Handler:
    """SignCertificate: keep the CSR; Accepted and a CertificateSigned after the answer when
    our CA signs it for this charger, else Rejected (2.0.1: reasonCode InvalidCSR)."""

    async def handle(ctx: HandlerContext, p: Payload) -> Payload:
        csr = required(p, "csr", str)
        # 1.6 knows station certificates only; 2.0.1's certificateType defaults to that too.
        certificate_type = p.get("certificateType", STATION) if version == V201 else STATION
        subject = csr_subject(csr)
        pki = ctx.central.pki
        issued: Issued | None = None
        why = None
        if pki is None:
            why = "no certificate authority"
        else:
            try:
                issued = pki.sign(csr, ctx.cp_id, certificate_type, ctx.central.now())
            except CsrRefused as e:
                why = str(e)
        status = "Rejected" if issued is None else "Accepted"
        stored: dict[str, Any] = {**p, "subject": subject, "valid": subject is not None,
                                  "status": status}
        if issued is not None:
            stored["serial"] = issued.serial_hex
        else:
            stored["reason"] = why
        await ctx.central.charger_event(ctx.cp_id, "SignCertificate", stored)
        if issued is None:
            log.warning("csr_refused", cp_id=ctx.cp_id, subject=subject, reason=why,
                        certificate_type=certificate_type)
            answer: Payload = {"status": "Rejected"}
            if version == V201:
                answer["statusInfo"] = _status_info(
                    "InvalidCSR" if pki is not None else "NoCA", why or "")
            return answer
        log.info("csr_signed", cp_id=ctx.cp_id, subject=subject, serial=issued.serial_hex,
                 certificate_type=certificate_type)
        ctx.after_reply(lambda: send_certificate_signed(ctx, version, certificate_type, issued))
        return {"status": "Accepted"}

    handle.__name__ = "sign_certificate"
    return handle


async def send_certificate_signed(ctx: HandlerContext, version: str, certificate_type: str,
                                  issued: Issued) -> None:
    """CertificateSigned with the new chain (A02.FR.06); the charger's answer is recorded
    with the command, and logged."""
    payload: Payload = {"certificateChain": issued.chain_pem}
    if version == V201:
        payload["certificateType"] = certificate_type
    answer = await ctx.send("CertificateSigned", payload)
    log.info("certificate_signed_answered", cp_id=ctx.cp_id, serial=issued.serial_hex,
             status=answer.get("status"))


async def get_certificate_status(ctx: HandlerContext, p: Payload) -> Payload:
    """GetCertificateStatus (M06): Accepted with the responder's DER answer (base64), or
    Failed when the responder cannot be reached or gives no usable answer."""
    data = required(p, "ocspRequestData", dict)
    await ctx.central.charger_event(ctx.cp_id, "GetCertificateStatus", p)
    pki = ctx.central.pki
    try:
        if pki is None:
            raise OcspFailed("no OCSP client")
        der = await pki.certificate_status(data)
        result = base64.b64encode(der).decode("ascii")
        if len(result) > MAX_OCSP_RESULT:
            raise OcspFailed("the OCSP response is longer than ocspResult allows")
    except OcspFailed as e:
        log.warning("ocsp_failed", cp_id=ctx.cp_id, responder=data.get("responderURL"),
                    reason=str(e))
        return {"status": "Failed", "statusInfo": _status_info("OCSPFailed", str(e))}
    log.info("ocsp_answered", cp_id=ctx.cp_id, responder=data.get("responderURL"))
    return {"status": "Accepted", "ocspResult": result}


async def get_15118_ev_certificate(ctx: HandlerContext, p: Payload) -> Payload:
    """Get15118EVCertificate (M01/M02): the contract-certificate endpoint's exiResponse, or
    Failed (empty exiResponse) when none is configured or it gives no usable answer."""
    for field in ("iso15118SchemaVersion", "action", "exiRequest"):
        required(p, field, str)
    await ctx.central.charger_event(ctx.cp_id, "Get15118EVCertificate", p)
    pki = ctx.central.pki
    if pki is None or not pki.settings.contract_certificate_url:
        log.info("ev_certificate_unavailable", cp_id=ctx.cp_id, action=p["action"])
        return {"status": "Failed", "exiResponse": "", "statusInfo": _status_info(
            "NoEndpoint", "no contract-certificate endpoint is configured")}
    try:
        status, exi = await pki.ev_certificate(ctx.cp_id, p)
    except ContractFailed as e:
        log.warning("ev_certificate_failed", cp_id=ctx.cp_id, action=p["action"], reason=str(e))
        return {"status": "Failed", "exiResponse": "",
                "statusInfo": _status_info("EndpointFailed", str(e))}
    log.info("ev_certificate_forwarded", cp_id=ctx.cp_id, action=p["action"], status=status)
    return {"status": status, "exiResponse": exi}


def chain_hash_data(pem_chain: str) -> list[Payload]:
    """OCSP request data for each certificate of a PEM chain (leaf first) but its last: the
    hashes naming it under the next one, and the OCSP URL it names (none: no responderURL,
    so it cannot be checked). ValueError when the text is not a chain of certificates."""
    certs = x509.load_pem_x509_certificates(pem_chain.encode("utf-8"))
    out: list[Payload] = []
    for cert, issuer in zip(certs, certs[1:], strict=False):
        data = hash_data(cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                         issuer.public_bytes(serialization.Encoding.PEM).decode("ascii"))
        try:
            access = cert.extensions.get_extension_for_class(
                x509.AuthorityInformationAccess).value
            urls = [d.access_location.value for d in access
                    if d.access_method == x509.oid.AuthorityInformationAccessOID.OCSP]
        except x509.ExtensionNotFound:
            urls = []
        out.append({**data, "responderURL": urls[0]} if urls else data)
    if not out:
        raise ValueError("a contract certificate chain needs the certificate and its issuer")
    return out


async def contract_certificate_status(ctx: HandlerContext, hash_data: list[Payload]) -> str:
    """C07: what the OCSP responders named in an eMAID's certificate hash data say of its
    contract certificate chain. Accepted only when each certificate is known good; a chain
    whose status cannot be had (no responder answers) is not accepted (CertChainError)."""
    pki = ctx.central.pki
    for data in hash_data:
        try:
            if pki is None:
                raise OcspFailed("no OCSP client")
            der = await pki.certificate_status(data)
        except OcspFailed as e:
            log.warning("contract_ocsp_failed", cp_id=ctx.cp_id,
                        responder=data.get("responderURL"), reason=str(e))
            return "CertChainError"
        status = ocsp.load_der_ocsp_response(der).certificate_status
        if status is not ocsp.OCSPCertStatus.GOOD:
            log.warning("contract_certificate_not_good", cp_id=ctx.cp_id, status=status.name,
                        serial=data.get("serialNumber"))
            return "CertificateRevoked" if status is ocsp.OCSPCertStatus.REVOKED \
                else "NoCertificateAvailable"
    return "Accepted"
