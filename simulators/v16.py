"""OCPP 1.6J translation: the station's messages out, the central system's CALLs in."""

from __future__ import annotations

import functools
from datetime import datetime

from simulators import smart
from simulators.protocol import Answer, ProtocolSide, measurand_list
from simulators.records import Conn, Payload, Remote, TxRecord


class V16(ProtocolSide):
    """The station as an OCPP 1.6J charge point."""

    version = "1.6"
    v16 = True
    full_reason = "Other"
    reports_station_status = True

    # ------------------------------------------------------------------ settings

    def meter_interval(self) -> int:
        value = self.config.get_int("MeterValueSampleInterval")
        return value if value > 0 else 60

    def measurands(self, kind: str) -> list[str]:
        key = {"periodic": "MeterValuesSampledData", "end": "StopTxnSampledData"}
        return measurand_list(self.config.get(key.get(kind, "MeterValuesSampledData")))

    def message_attempts(self) -> int:
        return max(1, self.config.get_int("TransactionMessageAttempts"))

    def retry_interval(self) -> float:
        return float(self.config.get_int("TransactionMessageRetryInterval"))

    def heartbeat_interval(self) -> int:
        return self.config.get_int("HeartbeatInterval")

    def smart_enabled(self) -> bool:
        return True

    # ------------------------------------------------------------------ outgoing

    def boot_payload(self) -> Payload:
        return {
            "chargePointVendor": self.vendor,
            "chargePointModel": self.model,
            "chargePointSerialNumber": self.serial[:25],
            "chargeBoxSerialNumber": self.serial[:25],
            "firmwareVersion": self.firmware,
            "meterType": "SimMeter",
        }

    def authorize_payload(self, id_tag: str) -> Payload:
        return {"idTag": id_tag}

    def new_transaction_id(self) -> str | None:
        return None  # StartTransaction.conf gives it

    def wire_status(self, c: Conn) -> str:
        return c.status

    def status_payload(self, c: Conn | None, now: datetime) -> Payload:
        status = self.station.station_status if c is None else c.status
        return {
            "connectorId": 0 if c is None else c.id,
            "errorCode": "NoError",
            "status": status,
            "timestamp": smart.iso(now),
        }

    def sample(
        self, c: Conn, now: datetime, context: str, *, begin: bool = False, end: bool = False
    ) -> Payload:
        """One MeterValue of the connector's meter now."""
        kind = "end" if (begin or end) else "periodic"
        values = []
        for measurand, phase, value, unit in self.physics.readings(c, self.measurands(kind)):
            sv: Payload = {
                "value": f"{value:g}" if unit != "Wh" else f"{value:.1f}",
                "context": context,
                "format": "Raw",
                "measurand": measurand,
                "location": "EV" if measurand == "SoC" else "Outlet",
                "unit": unit,
            }
            if phase:
                sv["phase"] = phase
            values.append(sv)
        return {"timestamp": smart.iso(now), "sampledValue": values}

    def tx_started(self, c: Conn, tx: TxRecord, remote: Remote | None, now: datetime) -> None:
        payload = {
            "connectorId": c.id,
            "idTag": tx.id_tag,
            "meterStart": tx.meter_start_wh,
            "timestamp": smart.iso(now),
        }
        tx.begin_sample = [self.sample(c, now, "Transaction.Begin", begin=True)]
        self.link.enqueue(
            "StartTransaction",
            lambda: payload,
            transactional=True,
            on_result=lambda _req, res: self._on_started(c, tx, res),
        )
        self.station.set_status(c, self.station.status_for_state(c.charging_state), now)

    def _on_started(self, c: Conn, tx: TxRecord, res: Payload) -> None:
        tx.transaction_id = int(res["transactionId"])
        tx.acknowledged = True
        tx.id_tag_status = (res.get("idTagInfo") or {}).get("status")
        self.station.charging.profiles.bind_tx(c.id, str(tx.transaction_id))
        if tx.id_tag_status != "Accepted" and tx.active and c.tx is tx:
            # StopTransactionOnInvalidId=true: the central system refused the id tag.
            self.station.stop_tx(c, "DeAuthorized", self.clock.now())
        self.station.rt.notify()

    def tx_ended(self, c: Conn, tx: TxRecord, reason: str, now: datetime) -> None:
        end_sample = self.sample(c, now, "Transaction.End", end=True)

        def build() -> Payload:
            payload: Payload = {
                "meterStop": tx.meter_stop_wh,
                "timestamp": smart.iso(now),
                "reason": reason,
                "idTag": tx.id_tag,
                "transactionData": [*tx.begin_sample, end_sample],
            }
            # If StartTransaction was never acknowledged there is no id to refer to.
            payload["transactionId"] = (
                tx.transaction_id if tx.transaction_id is not None else -1
            )
            return payload

        def done(req: Payload, _res: Payload) -> None:
            tx.stop_acknowledged = True
            tx.samples_acked += sum(
                len(mv["sampledValue"]) for mv in req.get("transactionData", [])
            )
            tx.meter_messages_acked += 1
            self.station.rt.notify()

        self.link.enqueue("StopTransaction", build, transactional=True, on_result=done)

    def send_meter_values(self, c: Conn, now: datetime, context: str) -> None:
        tx = c.tx
        if tx is None:
            return
        sample = self.sample(c, now, context)

        def build() -> Payload:
            payload: Payload = {"connectorId": c.id, "meterValue": [sample]}
            if tx.transaction_id is not None:
                payload["transactionId"] = tx.transaction_id
            return payload

        def done(_req: Payload, _res: Payload) -> None:
            tx.samples_acked += len(sample["sampledValue"])
            tx.meter_messages_acked += 1
            self.station.rt.notify()

        self.link.enqueue("MeterValues", build, transactional=True, on_result=done)

    def charging_state_changed(self, c: Conn, now: datetime) -> None:
        self.station.set_status(c, self.station.status_for_state(c.charging_state), now)

    def remote_profile(self, c: Conn, data: Payload, now: datetime) -> smart.Profile:
        return smart.profile_from_v16(data, c.id, now)

    # ------------------------------------------------------------------ incoming

    def on_RemoteStartTransaction(self, p: Payload) -> Payload | Answer:  # noqa: N802
        profile = p.get("chargingProfile")
        if profile is not None and profile.get("chargingProfilePurpose") != "TxProfile":
            return {"status": "Rejected"}
        c = self.station.pick_connector(p.get("connectorId"))
        if c is None:
            return {"status": "Rejected"}
        remote = Remote(p["idTag"], profile, None)
        return {"status": "Accepted"}, functools.partial(self.station.remote_start, c, remote)

    def on_RemoteStopTransaction(self, p: Payload) -> Payload | Answer:  # noqa: N802
        c = self.station.find_tx(p["transactionId"])
        if c is None:
            return {"status": "Rejected"}
        return {"status": "Accepted"}, functools.partial(self.station.remote_stop, c)

    def on_Reset(self, p: Payload) -> Answer:  # noqa: N802
        kind = "HardReset" if p["type"] == "Hard" else "SoftReset"
        return {"status": "Accepted"}, functools.partial(self.station.reboot, kind)

    def on_ChangeConfiguration(self, p: Payload) -> Payload:  # noqa: N802
        status = self.config.change(p["key"], p["value"])
        if status == "Accepted":
            if p["key"] == "HeartbeatInterval":
                self.link.hb_wake.set()
            if p["key"] == "MeterValueSampleInterval":
                self.station.reschedule_meters()
        return {"status": status}

    def on_GetConfiguration(self, p: Payload) -> Payload:  # noqa: N802
        return self.config.report(p.get("key"))

    def on_TriggerMessage(self, p: Payload) -> Payload | Answer:  # noqa: N802
        what = p["requestedMessage"]
        cid = p.get("connectorId")
        conns = self.station.conns
        if cid is not None and cid != 0 and cid not in conns:
            return {"status": "Rejected"}
        targets = [conns[cid]] if cid else list(conns.values())

        async def send() -> None:
            now = self.clock.now()
            if what == "BootNotification":
                await self.link.soft_call("BootNotification", self.boot_payload())
            elif what == "Heartbeat":
                await self.link.soft_call("Heartbeat", {})
            elif what == "StatusNotification":
                if not cid:
                    self.station.queue_status(None, now)
                for c in targets:
                    self.station.queue_status(c, now)
            elif what == "MeterValues":
                for c in targets:
                    if c.tx is not None:
                        self.send_meter_values(c, now, "Trigger")
                    else:
                        sample = self.sample(c, now, "Trigger", end=True)
                        self.link.enqueue(
                            "MeterValues",
                            lambda c=c, s=sample: {"connectorId": c.id, "meterValue": [s]},
                            transactional=False, on_result=None,
                        )
            elif what == "FirmwareStatusNotification":
                await self.link.soft_call("FirmwareStatusNotification", {"status": "Idle"})
            elif what == "DiagnosticsStatusNotification":
                await self.link.soft_call("DiagnosticsStatusNotification", {"status": "Idle"})

        return {"status": "Accepted"}, send

    def on_UnlockConnector(self, p: Payload) -> Payload:  # noqa: N802
        c = self.station.conns.get(p["connectorId"])
        if c is None:
            return {"status": "NotSupported"}
        if c.tx is not None:
            self.station.stop_tx(c, "UnlockCommand", self.clock.now())
        return {"status": "Unlocked"}

    def on_ChangeAvailability(self, p: Payload) -> Payload:  # noqa: N802
        status = self.station.change_availability(p["connectorId"], p["type"] == "Operative")
        return {"status": status or "Rejected"}

    def on_SetChargingProfile(self, p: Payload) -> Payload:  # noqa: N802
        now = self.clock.now()
        try:
            profile = smart.profile_from_v16(p["csChargingProfiles"], p["connectorId"], now)
        except smart.ProfileError:
            return {"status": "Rejected"}
        reason = self.charging.set_profile(profile, now)
        if reason == "NotSupported" and self.mode != "reject_profiles":
            return {"status": "NotSupported"}
        return {"status": "Accepted" if reason is None else "Rejected"}

    def on_ClearChargingProfile(self, p: Payload) -> Payload:  # noqa: N802
        purpose = p.get("chargingProfilePurpose")
        cleared = self.charging.clear_profiles(
            profile_id=p.get("id"),
            connector=p.get("connectorId"),
            purpose=smart.PURPOSE_FROM_OCPP[purpose] if purpose else None,
            stack_level=p.get("stackLevel"),
        )
        return {"status": "Accepted" if cleared else "Unknown"}

    def on_GetCompositeSchedule(self, p: Payload) -> Payload:  # noqa: N802
        cid = p["connectorId"]
        if cid != 0 and cid not in self.station.conns:
            return {"status": "Rejected"}
        start, unit, periods = self.charging.composite_json(cid, p)
        return {
            "status": "Accepted",
            "connectorId": cid,
            "scheduleStart": smart.iso(start),
            "chargingSchedule": {
                "duration": int(p["duration"]),
                "startSchedule": smart.iso(start),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods,
            },
        }
