"""OCPP 2.0.1 translation: the station's messages out, the central system's CALLs in.

The "connector" numbers of the station are EVSE ids here; each EVSE has one connector (1).
"""

from __future__ import annotations

import functools
import math
import uuid
from datetime import datetime, timedelta
from typing import Any

from simulators import smart
from simulators.protocol import Answer, ProtocolSide, measurand_list
from simulators.records import Conn, Payload, Remote, TxRecord
from simulators.rpc import Reply

#: TransactionEvent (triggerReason, stoppedReason) of a stop, by its 1.6 Reason.
STOP_REASONS = {
    "EVDisconnected": ("EVDeparted", "EVDisconnected"),
    "Remote": ("RemoteStop", "Remote"),
    "DeAuthorized": ("Deauthorized", "DeAuthorized"),
    "HardReset": ("ResetCommand", "ImmediateReset"),
    "SoftReset": ("ResetCommand", "ImmediateReset"),
    "Full": ("ChargingStateChanged", "SOCLimitReached"),
}


class V201(ProtocolSide):
    """The station as an OCPP 2.0.1 charging station."""

    version = "2.0.1"
    v16 = False
    full_reason = "Full"
    reports_station_status = False

    # ------------------------------------------------------------------ settings

    def _dm(self, component: str, variable: str, instance: str | None = None) -> str:
        if instance is None:
            return self.device_model.value(component, variable)
        return self.device_model.value(component, variable, instance=instance)

    def meter_interval(self) -> int:
        value = int(self._dm("SampledDataCtrlr", "TxUpdatedInterval"))
        return value if value > 0 else 60

    def measurands(self, kind: str) -> list[str]:
        name = {
            "periodic": "TxUpdatedMeasurands",
            "begin": "TxStartedMeasurands",
            "end": "TxEndedMeasurands",
        }.get(kind, "TxUpdatedMeasurands")
        return measurand_list(self._dm("SampledDataCtrlr", name))

    def message_attempts(self) -> int:
        return max(1, int(self._dm("OCPPCommCtrlr", "MessageAttempts", "TransactionEvent")))

    def retry_interval(self) -> float:
        return float(self._dm("OCPPCommCtrlr", "MessageAttemptInterval", "TransactionEvent"))

    def heartbeat_interval(self) -> int:
        return int(self._dm("OCPPCommCtrlr", "HeartbeatInterval"))

    def smart_enabled(self) -> bool:
        return self._dm("SmartChargingCtrlr", "Enabled") == "true"

    # ------------------------------------------------------------------ outgoing

    def boot_payload(self) -> Payload:
        return {
            "reason": self.link.boot_reason,
            "chargingStation": {
                "model": self.model,
                "vendorName": self.vendor,
                "serialNumber": self.serial[:25],
                "firmwareVersion": self.firmware,
            },
        }

    def authorize_payload(self, id_tag: str) -> Payload:
        return {"idToken": {"idToken": id_tag, "type": "ISO14443"}}

    def new_transaction_id(self) -> str | None:
        return str(uuid.uuid4())

    def wire_status(self, c: Conn) -> str:
        return self.station.occupancy(c)

    def status_payload(self, c: Conn | None, now: datetime) -> Payload:
        assert c is not None
        return {
            "timestamp": smart.iso(now),
            "connectorStatus": self.station.occupancy(c),
            "evseId": c.id,
            "connectorId": 1,
        }

    def meter_value(
        self, c: Conn, now: datetime, context: str, *, begin: bool = False, end: bool = False
    ) -> Payload:
        """One MeterValue of the EVSE's meter now."""
        kind = "begin" if begin else "end" if end else "periodic"
        values = []
        for measurand, phase, value, unit in self.physics.readings(c, self.measurands(kind)):
            sv: Payload = {
                "value": value,
                "context": context,
                "measurand": measurand,
                "location": "EV" if measurand == "SoC" else "Outlet",
                "unitOfMeasure": {"unit": unit},
            }
            if phase:
                sv["phase"] = phase
            values.append(sv)
        return {"timestamp": smart.iso(now), "sampledValue": values}

    def _tx_event(
        self,
        c: Conn,
        tx: TxRecord,
        event_type: str,
        trigger: str,
        now: datetime,
        *,
        offline: bool,
        meter: Payload | None = None,
        id_token: bool = False,
        stopped_reason: str | None = None,
    ) -> Payload:
        info: Payload = {"transactionId": str(tx.transaction_id), "chargingState": c.charging_state}
        if stopped_reason:
            info["stoppedReason"] = stopped_reason
        if tx.remote_start_id is not None and event_type == "Started":
            info["remoteStartId"] = tx.remote_start_id
        event: Payload = {
            "eventType": event_type,
            "timestamp": smart.iso(now),
            "triggerReason": trigger,
            "seqNo": tx.seq_no,
            "transactionInfo": info,
        }
        tx.seq_no += 1
        if offline:
            event["offline"] = True
        if event_type == "Started":
            event["evse"] = {"id": c.id, "connectorId": 1}
            if c.ev is not None:
                event["numberOfPhasesUsed"] = min(c.phases, c.ev.phases)
        if id_token:
            event["idToken"] = {"idToken": tx.id_tag, "type": "ISO14443"}
        if meter is not None:
            event["meterValue"] = [meter]
        return event

    def _send_tx_event(self, c: Conn, tx: TxRecord, event: Payload) -> None:
        self.link.enqueue(
            "TransactionEvent",
            lambda: event,
            transactional=True,
            on_result=lambda req, res: self._on_tx_event_ack(c, tx, req, res),
        )

    def _on_tx_event_ack(self, c: Conn, tx: TxRecord, req: Payload, res: Payload) -> None:
        samples = sum(len(mv.get("sampledValue", [])) for mv in req.get("meterValue", []))
        if samples:
            tx.samples_acked += samples
            tx.meter_messages_acked += 1
        kind = req["eventType"]
        if kind == "Started":
            tx.acknowledged = True
        if "idTokenInfo" in res:
            tx.id_tag_status = res["idTokenInfo"].get("status")
            if tx.id_tag_status != "Accepted" and tx.active and c.tx is tx:
                self.station.stop_tx(c, "DeAuthorized", self.clock.now())
        if kind == "Ended":
            tx.stop_acknowledged = True
        self.station.rt.notify()

    def tx_started(self, c: Conn, tx: TxRecord, remote: Remote | None, now: datetime) -> None:
        event = self._tx_event(
            c,
            tx,
            "Started",
            "RemoteStart" if remote is not None else "Authorized",
            now,
            offline=not self.link.online,
            meter=self.meter_value(c, now, "Transaction.Begin", begin=True),
            id_token=True,
        )
        self._send_tx_event(c, tx, event)
        self.station.set_status(c, "Occupied", now)
        if c.ev is not None and c.ev.departure_after_s is not None and self.link.online:
            # What the car said at the start, not what it needs when the message leaves.
            needs = self.charging_needs(c, now)
            self.link.enqueue("NotifyEVChargingNeeds", lambda: needs,
                              transactional=False, on_result=None)

    def charging_needs(self, c: Conn, now: datetime) -> Payload:
        """NotifyEVChargingNeeds (2.0.1 K15) for the car on `c`: energy, departure, limits."""
        ev = c.ev
        assert ev is not None and ev.departure_after_s is not None
        phases = min(c.phases, ev.phases)
        max_a = min(c.max_current_a, ev.max_power_kw * 1000.0 / (self.voltage_v * phases))
        return {
            "evseId": c.id,
            "chargingNeeds": {
                "requestedEnergyTransfer": "AC_three_phase" if phases == 3 else "AC_single_phase",
                "departureTime": smart.iso(now + timedelta(seconds=ev.departure_after_s)),
                "acChargingParameters": {
                    "energyAmount": round(ev.energy_needed_wh),
                    "evMinCurrent": int(math.ceil(ev.min_current_a)),
                    "evMaxCurrent": int(max_a),
                    "evMaxVoltage": int(self.voltage_v * (3**0.5 if phases == 3 else 1)),
                },
            },
        }

    def tx_ended(self, c: Conn, tx: TxRecord, reason: str, now: datetime) -> None:
        trigger, stopped = STOP_REASONS.get(reason, ("AbnormalCondition", "Other"))
        c.charging_state = "EVConnected" if c.ev is not None else "Idle"
        event = self._tx_event(
            c,
            tx,
            "Ended",
            trigger,
            now,
            offline=not self.link.online,
            meter=self.meter_value(c, now, "Transaction.End", end=True),
            stopped_reason=stopped,
        )
        self._send_tx_event(c, tx, event)

    def send_meter_values(self, c: Conn, now: datetime, context: str) -> None:
        tx = c.tx
        if tx is None:
            return
        trigger = "Trigger" if context == "Trigger" else "MeterValuePeriodic"
        event = self._tx_event(
            c,
            tx,
            "Updated",
            trigger,
            now,
            offline=not self.link.online,
            meter=self.meter_value(c, now, context),
        )
        self._send_tx_event(c, tx, event)

    def charging_state_changed(self, c: Conn, now: datetime) -> None:
        if c.tx is not None:
            event = self._tx_event(
                c, c.tx, "Updated", "ChargingStateChanged", now, offline=not self.link.online
            )
            self._send_tx_event(c, c.tx, event)

    def remote_profile(self, c: Conn, data: Payload, now: datetime) -> smart.Profile:
        bound = dict(data, transactionId=str(c.tx.transaction_id) if c.tx else None)
        return smart.profile_from_v201(bound, c.id, now)

    # ------------------------------------------------------------------ incoming

    def on_RequestStartTransaction(self, p: Payload) -> Payload | Answer:  # noqa: N802
        profile = p.get("chargingProfile")
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidProfile"}}
        c = self.station.pick_connector(p.get("evseId"))
        if c is None:
            return {"status": "Rejected"}
        remote = Remote(p["idToken"]["idToken"], profile, int(p["remoteStartId"]))
        return {"status": "Accepted"}, functools.partial(self.station.remote_start, c, remote)

    def on_RequestStopTransaction(self, p: Payload) -> Payload | Answer:  # noqa: N802
        c = self.station.find_tx(p["transactionId"])
        if c is None:
            return {"status": "Rejected"}
        return {"status": "Accepted"}, functools.partial(self.station.remote_stop, c)

    def on_Reset(self, p: Payload) -> Payload | Answer:  # noqa: N802
        if p.get("evseId"):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}}
        busy = any(c.tx for c in self.station.conns.values())
        if p["type"] == "OnIdle" and busy:
            self.station.reset_scheduled = "HardReset"
            return {"status": "Scheduled"}
        return {"status": "Accepted"}, functools.partial(self.station.reboot, "HardReset")

    def _items(self, p: Payload, key: str, request: str) -> list[Payload]:
        items = p[key]
        limit = int(self._dm("DeviceDataCtrlr", "ItemsPerMessage", request))
        if len(items) > limit:
            raise Reply("OccurrenceConstraintViolation", f"more than {limit} items")
        return items

    def on_GetVariables(self, p: Payload) -> Payload:  # noqa: N802
        results = []
        for item in self._items(p, "getVariableData", "GetVariables"):
            attr = item.get("attributeType", "Actual")
            status, var = self.device_model.find(item["component"], item["variable"])
            result: Payload = {
                "attributeStatus": status,
                "attributeType": attr,
                "component": item["component"],
                "variable": item["variable"],
            }
            if var is not None:
                if attr != "Actual":
                    result["attributeStatus"] = "NotSupportedAttributeType"
                elif var.mutability == "WriteOnly":
                    result["attributeStatus"] = "Rejected"
                else:
                    result["attributeValue"] = var.actual()[:2500]
            results.append(result)
        return {"getVariableResult": results}

    def on_SetVariables(self, p: Payload) -> Payload:  # noqa: N802
        results = []
        for item in self._items(p, "setVariableData", "SetVariables"):
            attr = item.get("attributeType", "Actual")
            status, var = self.device_model.find(item["component"], item["variable"])
            if var is not None:
                value = str(item["attributeValue"])
                if attr != "Actual":
                    status = "NotSupportedAttributeType"
                elif var.mutability == "ReadOnly" or not var.valid(value):
                    status = "Rejected"
                else:
                    var.value = value.lower() if var.data_type == "boolean" else value
                    self._on_variable_changed(var.component, var.name)
            results.append({
                "attributeStatus": status,
                "attributeType": attr,
                "component": item["component"],
                "variable": item["variable"],
            })
        return {"setVariableResult": results}

    def _on_variable_changed(self, component: str, name: str) -> None:
        if (component, name) == ("OCPPCommCtrlr", "HeartbeatInterval"):
            self.link.hb_wake.set()
        elif (component, name) == ("SampledDataCtrlr", "TxUpdatedInterval"):
            self.station.reschedule_meters()

    def on_GetBaseReport(self, p: Payload) -> Payload | Answer:  # noqa: N802
        base = p["reportBase"]
        if base == "ConfigurationInventory":
            chosen = [v for v in self.device_model if v.mutability != "ReadOnly"]
        elif base == "SummaryInventory":
            chosen = [v for v in self.device_model if v.name in ("AvailabilityState", "Available")]
        else:
            chosen = list(self.device_model)
        if not chosen:
            return {"status": "EmptyResultSet"}
        return {"status": "Accepted"}, functools.partial(self._notify_report, p["requestId"],
                                                          chosen)

    def on_GetReport(self, p: Payload) -> Payload | Answer:  # noqa: N802
        wanted = p.get("componentVariable")
        chosen = list(self.device_model)
        if wanted:
            def match(v: Any) -> bool:
                for cv in wanted:
                    comp, var = cv["component"], cv.get("variable")
                    if comp["name"] != v.component:
                        continue
                    if "evse" in comp and comp["evse"].get("id") != v.evse:
                        continue
                    if var is None or var["name"] == v.name:
                        return True
                return False

            chosen = [v for v in chosen if match(v)]
        if p.get("componentCriteria"):
            # Every component here is Active/Available/Enabled; only "Problem" selects nothing.
            if p["componentCriteria"] == ["Problem"]:
                chosen = []
        if not chosen:
            return {"status": "EmptyResultSet"}
        return {"status": "Accepted"}, functools.partial(self._notify_report, p["requestId"],
                                                          chosen)

    async def _notify_report(self, request_id: int, chosen: list[Any]) -> None:
        per_msg = int(self._dm("DeviceDataCtrlr", "ItemsPerMessage", "GetReport"))
        chunks = [chosen[i:i + per_msg] for i in range(0, len(chosen), per_msg)]
        for seq, chunk in enumerate(chunks):
            payload = {
                "requestId": request_id,
                "generatedAt": smart.iso(self.clock.now()),
                "reportData": [v.report_data() for v in chunk],
                "tbc": seq < len(chunks) - 1,
                "seqNo": seq,
            }
            await self.link.soft_call("NotifyReport", payload)

    def on_TriggerMessage(self, p: Payload) -> Payload | Answer:  # noqa: N802
        what = p["requestedMessage"]
        evse = (p.get("evse") or {}).get("id")
        conns = self.station.conns
        if evse is not None and evse != 0 and evse not in conns:
            return {"status": "Rejected"}
        targets = [conns[evse]] if evse else list(conns.values())
        if what == "BootNotification" and self.link.boot_status == "Accepted":
            # F06.FR.17: no BootNotification trigger once accepted.
            return {"status": "Rejected"}
        if what == "TransactionEvent" and not any(c.tx for c in targets):
            return {"status": "Rejected"}
        supported = {
            "BootNotification", "Heartbeat", "StatusNotification", "MeterValues",
            "TransactionEvent", "FirmwareStatusNotification", "LogStatusNotification",
        }
        if what not in supported:
            return {"status": "NotImplemented"}

        async def send() -> None:
            now = self.clock.now()
            if what == "BootNotification":
                self.link.boot_reason = "Triggered"
                await self.link.soft_call("BootNotification", self.boot_payload())
            elif what == "Heartbeat":
                await self.link.soft_call("Heartbeat", {})
            elif what == "StatusNotification":
                for c in targets:
                    self.station.queue_status(c, now)
            elif what == "MeterValues":
                for c in targets:
                    mv = self.meter_value(c, now, "Trigger")
                    self.link.enqueue("MeterValues",
                                      lambda c=c, mv=mv: {"evseId": c.id, "meterValue": [mv]},
                                      transactional=False, on_result=None)
            elif what == "TransactionEvent":
                for c in targets:
                    if c.tx is not None:
                        self.send_meter_values(c, now, "Trigger")
            elif what == "FirmwareStatusNotification":
                await self.link.soft_call("FirmwareStatusNotification", {"status": "Idle"})
            elif what == "LogStatusNotification":
                await self.link.soft_call("LogStatusNotification", {"status": "Idle"})

        return {"status": "Accepted"}, send

    def on_ChangeAvailability(self, p: Payload) -> Payload:  # noqa: N802
        evse = (p.get("evse") or {}).get("id")
        status = self.station.change_availability(evse,
                                                  p["operationalStatus"] == "Operative")
        if status is None:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        return {"status": status}

    def on_UnlockConnector(self, p: Payload) -> Payload:  # noqa: N802
        c = self.station.conns.get(p["evseId"])
        if c is None or p["connectorId"] != 1:
            return {"status": "UnknownConnector"}
        if c.tx is not None:
            return {"status": "OngoingAuthorizedTransaction"}
        return {"status": "Unlocked"}

    def on_SetChargingProfile(self, p: Payload) -> Payload:  # noqa: N802
        now = self.clock.now()
        try:
            profile = smart.profile_from_v201(p["chargingProfile"], p["evseId"], now)
        except smart.ProfileError as err:
            return {"status": "Rejected", "statusInfo": {"reasonCode": err.reason}}
        reason = self.charging.set_profile(profile, now)
        if reason is None:
            return {"status": "Accepted"}
        return {"status": "Rejected", "statusInfo": {"reasonCode": reason}}

    def on_ClearChargingProfile(self, p: Payload) -> Payload:  # noqa: N802
        crit = p.get("chargingProfileCriteria") or {}
        purpose = crit.get("chargingProfilePurpose")
        cleared = self.charging.clear_profiles(
            profile_id=p.get("chargingProfileId"),
            connector=crit.get("evseId"),
            purpose=smart.PURPOSE_FROM_OCPP[purpose] if purpose else None,
            stack_level=crit.get("stackLevel"),
        )
        return {"status": "Accepted" if cleared else "Unknown"}

    def on_GetCompositeSchedule(self, p: Payload) -> Payload:  # noqa: N802
        evse = p["evseId"]
        if evse != 0 and evse not in self.station.conns:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEVSE"}}
        start, unit, periods = self.charging.composite_json(evse, p)
        return {
            "status": "Accepted",
            "schedule": {
                "evseId": evse,
                "duration": int(p["duration"]),
                "scheduleStart": smart.iso(start),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        }
