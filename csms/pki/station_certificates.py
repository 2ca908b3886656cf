"""Typed helpers for the certificates a charger keeps: InstallCertificate,
GetInstalledCertificateIds and DeleteCertificate, in both versions (1.6 security extension
actions have the same names; its CSMS root is called CentralSystemRootCertificate).

The payload builders are pure; the service functions send through a `csms.typed_calls`
channel: in the server `CommandsChannel` (each call schema-checked and recorded with the
charger's answer), in the CLI the running server's relay.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

from csms.commands import CommandResult
from csms.ocpp.errors import V16
from csms.typed_calls import Channel

Payload = dict[str, Any]

# Version-neutral (2.0.1) names of the roots a charger may install, and their 1.6 names.
ROOTS_V16 = {"CSMSRootCertificate": "CentralSystemRootCertificate",
             "ManufacturerRootCertificate": "ManufacturerRootCertificate"}
ROOTS_V201 = ("CSMSRootCertificate", "ManufacturerRootCertificate", "V2GRootCertificate",
              "MORootCertificate")
# What 2.0.1 GetInstalledCertificateIds may ask for (adds the V2G chain the charger holds).
IDS_V201 = (*ROOTS_V201, "V2GCertificateChain")


def _type_for(version: str, certificate_type: str, allowed: tuple[str, ...]) -> str:
    """`certificate_type` in the charger's version's words; ValueError when it has none."""
    if version == V16:
        v16 = ROOTS_V16.get(certificate_type, certificate_type)
        if v16 not in ROOTS_V16.values():
            raise ValueError(f"OCPP 1.6 has no certificate type {certificate_type!r} "
                             f"(it knows {', '.join(ROOTS_V16)})")
        return v16
    if certificate_type not in allowed:
        raise ValueError(f"OCPP 2.0.1 has no certificate type {certificate_type!r} here "
                         f"(it knows {', '.join(allowed)})")
    return certificate_type


def install_payload(version: str, certificate_type: str, pem: str) -> Payload:
    """InstallCertificate of a PEM root certificate; ValueError when it is not one."""
    try:
        x509.load_pem_x509_certificate(pem.encode("utf-8"))
    except ValueError:
        raise ValueError("certificate: not a PEM X.509 certificate") from None
    return {"certificateType": _type_for(version, certificate_type, ROOTS_V201),
            "certificate": pem}


def get_installed_payload(version: str, certificate_types: list[str] | None) -> Payload:
    """GetInstalledCertificateIds; 1.6 asks for exactly one type, 2.0.1 for any (or all)."""
    if version == V16:
        if not certificate_types or len(certificate_types) != 1:
            raise ValueError("OCPP 1.6 asks for exactly one certificate type at a time")
        return {"certificateType": _type_for(version, certificate_types[0], ())}
    if not certificate_types:
        return {}
    return {"certificateType": [_type_for(version, t, IDS_V201) for t in certificate_types]}


def delete_payload(certificate_hash_data: Payload) -> Payload:
    """DeleteCertificate of the certificate named by `certificate_hash_data`."""
    return {"certificateHashData": dict(certificate_hash_data)}


async def _version(channel: Channel, cp_id: str) -> str:
    """The version `cp_id` speaks; ValueError when it never connected (nothing to send in)."""
    version = await channel.version(cp_id)
    if version is None:
        raise ValueError(f"charge point {cp_id!r} has never connected: its OCPP version is "
                         "unknown")
    return version


async def install_certificate(channel: Channel, cp_id: str, certificate_type: str,
                              pem: str) -> CommandResult:
    """Install a root certificate on `cp_id` (A05 / M05)."""
    payload = install_payload(await _version(channel, cp_id), certificate_type, pem)
    return await channel.send(cp_id, "InstallCertificate", payload)


async def get_installed_certificate_ids(channel: Channel, cp_id: str,
                                        certificate_types: list[str] | None = None
                                        ) -> CommandResult:
    """Ask `cp_id` which certificates it holds (M03); the answer lists their hash data."""
    payload = get_installed_payload(await _version(channel, cp_id), certificate_types)
    return await channel.send(cp_id, "GetInstalledCertificateIds", payload)


async def delete_certificate(channel: Channel, cp_id: str,
                             certificate_hash_data: Payload) -> CommandResult:
    """Delete the certificate `certificate_hash_data` names from `cp_id` (M04)."""
    return await channel.send(cp_id, "DeleteCertificate", delete_payload(certificate_hash_data))
