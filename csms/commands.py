"""Outbound commands: every CALL we send is recorded with its answer, in both versions.

Version-neutral verbs pick the per-version message; `send` takes any action as-is.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import structlog

from csms.clock import Clock
from csms.connection import ChargerConnection, command_status
from csms.ocpp.errors import V16, CallFailed, OcppError
from csms.ocpp.framing import validate
from csms.server import Registry
from csms.store import Store

log = structlog.get_logger("csms.commands")
Payload = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CommandResult:
    """How a command ended: accepted, rejected, failed, or timeout, and the charger's answer."""

    command_id: int
    status: str
    response: Payload | None = None
    error: str | None = None
    code: str | None = None  # the charger's CALLERROR code, when it answered with one

    @property
    def ok(self) -> bool:
        return self.status == "accepted"


class Commands:
    """Sends CALLs to connected chargers and keeps a record of each."""

    def __init__(self, store: Store, registry: Registry, clock: Clock) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock
        self._request_ids = itertools.count(int(clock.now().timestamp()) % 1_000_000)
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drain(self) -> None:
        """Wait until every command under way has its ending recorded (used at shutdown)."""
        await self._idle.wait()

    async def exchange(self, conn: ChargerConnection, action: str,
                       payload: Payload) -> CommandResult:
        """Send on `conn`, recording the command and how it ended."""
        self._in_flight += 1
        self._idle.clear()
        # The record is written while the call travels (it rides with the next group commit),
        # not before it: a command costs the charger's round trip, not that plus a commit.
        record = asyncio.ensure_future(
            self.store.record_command(conn.cp_id, action, payload, self.clock.now()))
        try:
            try:
                answer = await conn.call(action, payload)
            except CallFailed as exc:
                status, response, error = exc.status, {"error": str(exc), **exc.details}, \
                    str(exc)
                code = exc.details.get("code")
            except asyncio.CancelledError:
                # The caller gave up (shutdown); the record must still say how it ended.
                await asyncio.shield(self._finish(record, "failed", {"error": "cancelled"}))
                raise
            else:
                status, response, error, code = command_status(answer), answer, None, None
            command_id = await self._finish(record, status, response)
            return CommandResult(command_id, status, None if error else response, error,
                                 code if isinstance(code, str) else None)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _finish(self, record: asyncio.Future[int], status: str,
                      response: Payload | None) -> int:
        """Record how a command ended, once its own record is written; return its id."""
        command_id = await record
        await self.store.finish_command(command_id, status, response, self.clock.now())
        return command_id

    async def record(self, conn: ChargerConnection, action: str, payload: Payload) -> Payload:
        """Like `exchange`, for handlers: the answer, or CallFailed when there is none."""
        result = await self.exchange(conn, action, payload)
        if result.response is None:
            raise CallFailed(result.status, result.error or "no answer")
        return result.response

    def version_of(self, cp_id: str) -> str | None:
        conn = self.registry.get(cp_id)
        return None if conn is None else conn.version

    async def send(self, cp_id: str, action: str, payload: Payload) -> CommandResult:
        """Send any CALL to a connected charger; offline chargers give a failed result."""
        conn = self.registry.get(cp_id)
        if conn is None:
            command_id = await self.store.record_command(cp_id, action, payload,
                                                         self.clock.now())
            await self.store.finish_command(command_id, "failed", {"error": "offline"},
                                            self.clock.now())
            return CommandResult(command_id, "failed", None, "charge point is not connected")
        try:
            validate(conn.version, action, payload, response=False)
        except OcppError as exc:
            raise ValueError(f"{action} payload is not valid OCPP {conn.version}: "
                             f"{exc.description}") from exc
        return await self.exchange(conn, action, payload)

    def _v16(self, cp_id: str) -> bool:
        version = self.version_of(cp_id)
        return version is None or version == V16

    # -- version-neutral verbs -------------------------------------------------------------

    async def remote_start(self, cp_id: str, id_tag: str,
                           connector_id: int | None = None) -> CommandResult:
        """RemoteStartTransaction (1.6) / RequestStartTransaction (2.0.1)."""
        if self._v16(cp_id):
            p: Payload = {"idTag": id_tag}
            if connector_id is not None:
                p["connectorId"] = connector_id
            return await self.send(cp_id, "RemoteStartTransaction", p)
        p = {"idToken": {"idToken": id_tag, "type": "Central"},
             "remoteStartId": next(self._request_ids)}
        if connector_id is not None:
            p["evseId"] = connector_id
        return await self.send(cp_id, "RequestStartTransaction", p)

    async def remote_stop(self, cp_id: str, transaction_id: str) -> CommandResult:
        """RemoteStopTransaction (1.6) / RequestStopTransaction (2.0.1)."""
        if self._v16(cp_id):
            return await self.send(cp_id, "RemoteStopTransaction",
                                   {"transactionId": int(transaction_id)})
        return await self.send(cp_id, "RequestStopTransaction", {"transactionId": transaction_id})

    async def reset(self, cp_id: str, hard: bool = False) -> CommandResult:
        """Reset: Hard/Soft (1.6), Immediate/OnIdle (2.0.1)."""
        if self._v16(cp_id):
            return await self.send(cp_id, "Reset", {"type": "Hard" if hard else "Soft"})
        return await self.send(cp_id, "Reset", {"type": "Immediate" if hard else "OnIdle"})

    async def change_configuration(self, cp_id: str, key: str, value: str) -> CommandResult:
        """ChangeConfiguration (1.6 only)."""
        return await self.send(cp_id, "ChangeConfiguration", {"key": key, "value": value})

    async def get_configuration(self, cp_id: str, keys: list[str] | None = None) -> CommandResult:
        """GetConfiguration (1.6 only); all keys when `keys` is None."""
        return await self.send(cp_id, "GetConfiguration", {"key": keys} if keys else {})

    async def set_variables(self, cp_id: str,
                            values: list[tuple[str, str, str]]) -> CommandResult:
        """SetVariables (2.0.1 only) from (component, variable, value) triples."""
        return await self.send(cp_id, "SetVariables", {"setVariableData": [
            {"component": {"name": c}, "variable": {"name": v}, "attributeValue": val}
            for c, v, val in values
        ]})

    async def get_variables(self, cp_id: str, names: list[tuple[str, str]]) -> CommandResult:
        """GetVariables (2.0.1 only) for (component, variable) pairs."""
        return await self.send(cp_id, "GetVariables", {"getVariableData": [
            {"component": {"name": c}, "variable": {"name": v}} for c, v in names
        ]})

    async def get_base_report(self, cp_id: str, report: str = "FullInventory") -> CommandResult:
        """GetBaseReport (2.0.1 only); the charger then sends NotifyReport, which is stored."""
        return await self.send(cp_id, "GetBaseReport",
                               {"requestId": next(self._request_ids), "reportBase": report})

    async def trigger_message(self, cp_id: str, message: str,
                              connector_id: int | None = None) -> CommandResult:
        """TriggerMessage, optionally for one connector / EVSE."""
        p: Payload = {"requestedMessage": message}
        if connector_id is not None:
            if self._v16(cp_id):
                p["connectorId"] = connector_id
            else:
                p["evse"] = {"id": connector_id}
        return await self.send(cp_id, "TriggerMessage", p)

    async def unlock_connector(self, cp_id: str, connector_id: int) -> CommandResult:
        """UnlockConnector (2.0.1 unlocks connector 1 of the EVSE)."""
        if self._v16(cp_id):
            return await self.send(cp_id, "UnlockConnector", {"connectorId": connector_id})
        return await self.send(cp_id, "UnlockConnector", {"evseId": connector_id,
                                                          "connectorId": 1})

    async def change_availability(self, cp_id: str, connector_id: int,
                                  operative: bool) -> CommandResult:
        """ChangeAvailability; connector 0 means the whole charger."""
        state = "Operative" if operative else "Inoperative"
        if self._v16(cp_id):
            return await self.send(cp_id, "ChangeAvailability",
                                   {"connectorId": connector_id, "type": state})
        p: Payload = {"operationalStatus": state}
        if connector_id:
            p["evse"] = {"id": connector_id}
        return await self.send(cp_id, "ChangeAvailability", p)

    async def clear_charging_profile(self, cp_id: str, profile_id: int | None = None,
                                     connector_id: int | None = None,
                                     purpose: str | None = None,
                                     stack_level: int | None = None) -> CommandResult:
        """ClearChargingProfile by id, or by connector / purpose / stack level."""
        if self._v16(cp_id):
            p: Payload = {}
            for key, value in (("id", profile_id), ("connectorId", connector_id),
                               ("chargingProfilePurpose", purpose), ("stackLevel", stack_level)):
                if value is not None:
                    p[key] = value
            return await self.send(cp_id, "ClearChargingProfile", p)
        p = {}
        if profile_id is not None:
            p["chargingProfileId"] = profile_id
        criteria = {k: v for k, v in (("evseId", connector_id),
                                      ("chargingProfilePurpose", purpose),
                                      ("stackLevel", stack_level)) if v is not None}
        if criteria:
            p["chargingProfileCriteria"] = criteria
        return await self.send(cp_id, "ClearChargingProfile", p)

    async def get_composite_schedule(self, cp_id: str, connector_id: int, duration_s: int,
                                     unit: str | None = None) -> CommandResult:
        """GetCompositeSchedule for one connector / EVSE over `duration_s`."""
        if self._v16(cp_id):
            p: Payload = {"connectorId": connector_id, "duration": duration_s}
        else:
            p = {"evseId": connector_id, "duration": duration_s}
        if unit is not None:
            p["chargingRateUnit"] = unit
        return await self.send(cp_id, "GetCompositeSchedule", p)

    async def set_charging_profile(self, cp_id: str, connector_id: int,
                                   profile: Payload) -> CommandResult:
        """SetChargingProfile with a profile already in the charger's version's shape."""
        if self._v16(cp_id):
            return await self.send(cp_id, "SetChargingProfile",
                                   {"connectorId": connector_id, "csChargingProfiles": profile})
        return await self.send(cp_id, "SetChargingProfile",
                               {"evseId": connector_id, "chargingProfile": profile})
