"""A charger's side of local lists and reservations, as the specifications describe it, for
raw clients (tests/raw_client.py): it keeps its own list and version and answers by the rules
(1.6 5.15, 2.0.1 D01: a differential whose version is not above the list's is a
VersionMismatch), so the tests check the CSMS against the charger, not against itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.raw_client import RawClient, default_answer

Payload = dict[str, Any]


class ListCharger:
    """Answers GetConfiguration / GetVariables (its local-list limits), GetLocalListVersion,
    SendLocalList, ClearCache, ReserveNow and CancelReservation; the rest as default_answer."""

    def __init__(self, version: str, *, supported: bool = True,
                 items_per_message: int | None = None, bytes_per_message: int | None = None,
                 max_length: int | None = None, reserve_answer: str = "Accepted") -> None:
        self.v16 = version == "1.6"
        self.subprotocol = "ocpp1.6" if self.v16 else "ocpp2.0.1"
        self.supported = supported
        self.items_per_message = items_per_message
        self.bytes_per_message = bytes_per_message
        self.max_length = max_length
        self.reserve_answer = reserve_answer
        self.list_version = 0
        self.entries: dict[str, Payload] = {}
        self.sent: list[Payload] = []  # every SendLocalList payload, in order
        self.calls: list[tuple[str, Payload]] = []
        self.mismatch_next = False
        self.reservations: dict[int, Payload] = {}
        self._changed = asyncio.Event()

    # -- what it answers -----------------------------------------------------------------------

    def answer(self, action: str, p: Payload) -> Payload | None:
        self.calls.append((action, p))
        self._changed.set()
        handler: Callable[[Payload], Payload | None] | None = getattr(self, f"_{action}", None)
        return handler(p) if handler is not None else default_answer(action, p)

    def _GetConfiguration(self, p: Payload) -> Payload:  # noqa: N802
        profiles = "Core,SmartCharging" + (",LocalAuthListManagement" if self.supported else "")
        values = {"SupportedFeatureProfiles": profiles, "LocalAuthListEnabled": "true",
                  "LocalAuthListMaxLength": self.max_length, "SendLocalListMaxLength":
                  self.items_per_message, "ChargingScheduleAllowedChargingRateUnit": "Current"}
        keys = p.get("key") or list(values)
        return {"configurationKey": [{"key": k, "readonly": True, "value": str(values[k])}
                                     for k in keys if values.get(k) is not None],
                "unknownKey": [k for k in keys if values.get(k) is None]}

    def _GetVariables(self, p: Payload) -> Payload:  # noqa: N802
        values = {"Enabled": "true" if self.supported else "false",
                  "ItemsPerMessage": self.items_per_message,
                  "BytesPerMessage": self.bytes_per_message}
        results = []
        for d in p["getVariableData"]:
            if d["component"]["name"] != "LocalAuthListCtrlr":
                results.extend(default_answer("GetVariables",
                                              {"getVariableData": [d]})["getVariableResult"])
                continue
            value = values.get(d["variable"]["name"])
            results.append({"attributeStatus": "Accepted" if value is not None
                            else "UnknownVariable", "component": d["component"],
                            "variable": d["variable"],
                            **({"attributeValue": str(value)} if value is not None else {})})
        return {"getVariableResult": results}

    def _GetLocalListVersion(self, p: Payload) -> Payload:  # noqa: N802
        return {"listVersion" if self.v16 else "versionNumber": self.list_version}

    def _SendLocalList(self, p: Payload) -> Payload:  # noqa: N802
        self.sent.append(p)
        version = p["listVersion" if self.v16 else "versionNumber"]
        items = p.get("localAuthorizationList") or []
        if not self.supported:
            return {"status": "NotSupported" if self.v16 else "Failed"}
        if self.items_per_message is not None and len(items) > self.items_per_message:
            return {"status": "Failed"}
        if self.bytes_per_message is not None and \
                len(json.dumps(p, separators=(",", ":")).encode()) > self.bytes_per_message:
            return {"status": "Failed"}
        if p["updateType"] == "Differential" and (self.mismatch_next
                                                   or version <= self.list_version):
            self.mismatch_next = False
            return {"status": "VersionMismatch"}
        if p["updateType"] == "Full":
            self.entries = {}
        for item in items:
            tag = item["idTag"] if self.v16 else item["idToken"]["idToken"]
            info = item.get("idTagInfo" if self.v16 else "idTokenInfo")
            if info is None:
                self.entries.pop(tag, None)
            else:
                self.entries[tag] = info
        if self.max_length is not None and len(self.entries) > self.max_length:
            return {"status": "Failed"}
        self.list_version = version
        return {"status": "Accepted"}

    def _ClearCache(self, p: Payload) -> Payload:  # noqa: N802
        return {"status": "Accepted"}

    def _ReserveNow(self, p: Payload) -> Payload:  # noqa: N802
        if self.reserve_answer == "Accepted":
            self.reservations[p["reservationId" if self.v16 else "id"]] = p
        return {"status": self.reserve_answer}

    def _CancelReservation(self, p: Payload) -> Payload:  # noqa: N802
        found = self.reservations.pop(p["reservationId"], None)
        return {"status": "Accepted" if found is not None else "Rejected"}

    # -- what tests await ----------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        """Until `predicate()` holds after some call of the CSMS (no sleeping)."""
        async def until() -> None:
            while not predicate():
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(until(), timeout)

    def actions(self) -> list[str]:
        return [a for a, _ in self.calls]

    def tags(self, payload: Payload) -> list[str]:
        return [i["idTag"] if self.v16 else i["idToken"]["idToken"]
                for i in payload.get("localAuthorizationList") or []]

    async def connect(self, url: str) -> RawClient:
        """Connect and boot (Accepted)."""
        client = await RawClient.connect(url, self.subprotocol, self.answer)
        await client.ok("BootNotification", boot_payload(self.v16))
        return client


def boot_payload(v16: bool) -> Payload:
    if v16:
        return {"chargePointVendor": "Test", "chargePointModel": "List"}
    return {"reason": "PowerUp", "chargingStation": {"vendorName": "Test", "model": "List"}}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
