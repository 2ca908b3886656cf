"""OCPP 1.6J translation: messages in become core calls; decisions become responses."""

from __future__ import annotations

from typing import Any

from csms.clock import iso, parse_iso
from csms.domain import (
    Booted,
    IdTagInfo,
    Metered,
    StatusChanged,
    TransactionEnded,
    TransactionStarted,
)
from csms.ocpp.certificate_messages import sign_certificate
from csms.ocpp.context import Handler, HandlerContext, Payload
from csms.ocpp.profile_fields import profile_fields, schedule_fields
from csms.ocpp.samples import samples_v16
from csms.ocpp.station_reports import security_event
from csms.ocpp.transfer_status import (
    DIAGNOSTICS_STATUS_16,
    FIRMWARE_STATUS_16,
    LOG_STATUS,
    SIGNED_FIRMWARE_STATUS,
)
from loadmgmt.profiles import ChargingProfile

VERSION = "1.6"
SUBPROTOCOL = "ocpp1.6"

CAPABILITY_KEYS = [
    "ChargingScheduleAllowedChargingRateUnit",
    "ChargeProfileMaxStackLevel",
    "ChargingScheduleMaxPeriods",
    "MaxChargingProfilesInstalled",
    "ConnectorSwitch3to1PhaseSupported",
    "NumberOfConnectors",
    "SupportedFeatureProfiles",
    "MeterValueSampleInterval",
    "MeterValuesSampledData",
]


def _id_tag_info(info: IdTagInfo) -> Payload:
    status = info.status if info.status in ("Accepted", "Blocked", "Expired", "Invalid",
                                             "ConcurrentTx") else "Invalid"
    out: Payload = {"status": status}
    if info.expiry is not None:
        out["expiryDate"] = iso(info.expiry)
    if info.parent_id_tag:
        out["parentIdTag"] = info.parent_id_tag
    return out


async def boot_notification(ctx: HandlerContext, p: Payload) -> Payload:
    booted = Booted(
        cp_id=ctx.cp_id, protocol=SUBPROTOCOL, vendor=p["chargePointVendor"],
        model=p["chargePointModel"],
        serial=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
        firmware=p.get("firmwareVersion"),
    )
    status = await ctx.central.boot(booted)
    fingerprint = ctx.central.configuration_due(booted, status)
    if fingerprint is not None:
        ctx.after_reply(lambda: ctx.central.paced(configure(ctx, fingerprint)))
    return {"status": status, "currentTime": iso(ctx.central.now()),
            "interval": ctx.central.boot_interval(status)}


async def heartbeat(ctx: HandlerContext, p: Payload) -> Payload:
    return {"currentTime": iso(ctx.central.now())}


async def status_notification(ctx: HandlerContext, p: Payload) -> Payload:
    ts = parse_iso(p["timestamp"]) if p.get("timestamp") else ctx.central.now()
    info = " ".join(x for x in (p.get("info"), p.get("vendorErrorCode")) if x) or None
    await ctx.central.status(StatusChanged(
        cp_id=ctx.cp_id, connector_id=p["connectorId"], status=p["status"], timestamp=ts,
        error_code=p.get("errorCode"), info=info,
    ))
    return {}


async def authorize(ctx: HandlerContext, p: Payload) -> Payload:
    # A tag in a transaction on this charger may be presented to stop it: not concurrent.
    return {"idTagInfo": _id_tag_info(await ctx.central.authorize(p["idTag"], (ctx.cp_id, None)))}


async def start_transaction(ctx: HandlerContext, p: Payload) -> Payload:
    decision = await ctx.central.start_transaction(TransactionStarted(
        cp_id=ctx.cp_id, connector_id=p["connectorId"], id_tag=p["idTag"],
        timestamp=parse_iso(p["timestamp"]), meter_start_wh=float(p["meterStart"]),
        reservation_id=p.get("reservationId"),
    ))
    return {"transactionId": decision.transaction_id,
            "idTagInfo": _id_tag_info(decision.id_tag_info)}


async def stop_transaction(ctx: HandlerContext, p: Payload) -> Payload:
    info = await ctx.central.end_transaction(TransactionEnded(
        cp_id=ctx.cp_id, ocpp_tx_id=str(p["transactionId"]), timestamp=parse_iso(p["timestamp"]),
        meter_stop_wh=float(p["meterStop"]), reason=p.get("reason") or "Local",
        id_tag=p.get("idTag"), samples=samples_v16(p.get("transactionData") or []),
    ))
    # 1.6 has no field to tell the cost: it is kept on the session (the REST views show it).
    await ctx.central.session_cost(ctx.cp_id, str(p["transactionId"]))
    return {} if info is None else {"idTagInfo": _id_tag_info(info)}


async def meter_values(ctx: HandlerContext, p: Payload) -> Payload:
    tx = p.get("transactionId")
    await ctx.central.meter_values(Metered(
        cp_id=ctx.cp_id, connector_id=p["connectorId"], samples=samples_v16(p["meterValue"]),
        ocpp_tx_id=None if tx is None else str(tx),
    ))
    return {}


async def data_transfer(ctx: HandlerContext, p: Payload) -> Payload:
    # No vendor extensions are implemented; the spec's answer for that is UnknownVendorId.
    await ctx.central.charger_event(ctx.cp_id, "DataTransfer", p)
    return {"status": "UnknownVendorId"}


HANDLERS: dict[str, Handler] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "Authorize": authorize,
    "StartTransaction": start_transaction,
    "StopTransaction": stop_transaction,
    "MeterValues": meter_values,
    "DataTransfer": data_transfer,
    "FirmwareStatusNotification": FIRMWARE_STATUS_16,
    "DiagnosticsStatusNotification": DIAGNOSTICS_STATUS_16,
    # Security White Paper extension (ordinary CALLs with these action names).
    "SignCertificate": sign_certificate(VERSION),
    "SecurityEventNotification": security_event,
    "LogStatusNotification": LOG_STATUS,
    "SignedFirmwareStatusNotification": SIGNED_FIRMWARE_STATUS,
}


def parse_capabilities(keys: list[dict[str, Any]]) -> dict[str, Any]:
    """Normalise GetConfiguration keys into the capability record both versions share."""
    raw = {k["key"]: k.get("value") for k in keys}
    caps: dict[str, Any] = {"raw": raw}
    units = raw.get("ChargingScheduleAllowedChargingRateUnit")
    if units:
        caps["rate_units"] = sorted(
            {"A" if u.strip() == "Current" else "W" for u in units.split(",")
             if u.strip() in ("Current", "Power")}
        )
    for key, name in (("ChargeProfileMaxStackLevel", "max_stack_level"),
                      ("ChargingScheduleMaxPeriods", "max_periods"),
                      ("MaxChargingProfilesInstalled", "max_profiles"),
                      ("NumberOfConnectors", "connectors")):
        if raw.get(key) not in (None, ""):
            try:
                caps[name] = int(str(raw[key]))
            except ValueError:
                pass
    if raw.get("SupportedFeatureProfiles"):
        caps["smart_charging"] = "SmartCharging" in raw["SupportedFeatureProfiles"]
    return caps


async def configure(ctx: HandlerContext, fingerprint: str) -> None:
    """After boot: set the meter-value interval and measurands, read smart-charging limits."""
    cfg = ctx.central.config
    wanted = {
        "MeterValueSampleInterval": str(cfg.meter_sample_interval_s),
        "MeterValuesSampledData": ",".join(cfg.meter_measurands),
    }
    results = {}
    for key, value in wanted.items():
        answer = await ctx.send("ChangeConfiguration", {"key": key, "value": value})
        results[key] = answer.get("status")
    answer = await ctx.send("GetConfiguration", {"key": CAPABILITY_KEYS})
    caps = parse_capabilities(answer.get("configurationKey") or [])
    caps["configured"] = results
    caps["unknown_keys"] = answer.get("unknownKey") or []
    caps["configured_for"] = fingerprint
    await ctx.central.save_capabilities(ctx.cp_id, caps)


def profile_payload(profile: ChargingProfile) -> Payload:
    """A version-neutral ChargingProfile as 1.6 `csChargingProfiles`."""
    out: Payload = {"chargingProfileId": profile.id, **profile_fields(profile),
                    "chargingSchedule": schedule_fields(profile)}
    if profile.transaction_id is not None and profile.purpose == "TxProfile":
        out["transactionId"] = int(profile.transaction_id)
    return out


def set_charging_profile(connector_id: int, profile: ChargingProfile) -> tuple[str, Payload]:
    """The SetChargingProfile CALL for `profile` on `connector_id`."""
    return "SetChargingProfile", {"connectorId": connector_id,
                                  "csChargingProfiles": profile_payload(profile)}
