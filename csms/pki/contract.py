"""The contract-certificate endpoint ISO 15118 EVs reach through us (2.0.1 M01/M02).

Get15118EVCertificate carries an EXI request meant for a contract-certificate pool (a mobility
operator or a PKI like Hubject's); we POST it as JSON to the configured URL
(`{"chargingStationId", "iso15118SchemaVersion", "action", "exiRequest"}`) and answer the
charger with the `exiResponse` (and `status`, Accepted unless it says Failed) it sends back.
"""

from __future__ import annotations

from typing import Any

import httpx

# Get15118EVCertificateResponse.exiResponse's maxLength in the 2.0.1 schema.
MAX_EXI_RESPONSE = 5600


class ContractFailed(Exception):
    """The endpoint gave no usable answer; the message says why."""


async def forward(url: str, cp_id: str, request: dict[str, Any],
                  client: httpx.AsyncClient) -> tuple[str, str]:
    """POST the EV's request to `url`: (status, exiResponse) to answer, or ContractFailed."""
    body = {"chargingStationId": cp_id, "iso15118SchemaVersion": request["iso15118SchemaVersion"],
            "action": request["action"], "exiRequest": request["exiRequest"]}
    try:
        reply = await client.post(url, json=body)
    except httpx.HTTPError as e:
        raise ContractFailed(f"endpoint unreachable: {type(e).__name__}") from None
    if reply.status_code != 200:
        raise ContractFailed(f"endpoint answered HTTP {reply.status_code}")
    try:
        answer = reply.json()
    except ValueError:
        raise ContractFailed("endpoint's answer is not JSON") from None
    exi = answer.get("exiResponse") if isinstance(answer, dict) else None
    if not isinstance(exi, str) or len(exi) > MAX_EXI_RESPONSE:
        raise ContractFailed("endpoint's answer has no usable exiResponse")
    status = "Failed" if answer.get("status") == "Failed" else "Accepted"
    return status, exi
