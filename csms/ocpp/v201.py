"""OCPP 2.0.1 translation: messages in become core calls; decisions become responses."""

from __future__ import annotations

from typing import Any

from csms.clock import iso, parse_iso
from csms.domain import (
    Booted,
    EvChargingNeeds,
    EvChargingSchedule,
    IdTagInfo,
    Metered,
    StatusChanged,
    TransactionEvent201,
)
from csms.ocpp.certificate_messages import (
    chain_hash_data,
    contract_certificate_status,
    get_15118_ev_certificate,
    get_certificate_status,
    sign_certificate,
)
from csms.ocpp.context import Handler, HandlerContext, Payload
from csms.ocpp.errors import CallFailed
from csms.ocpp.profile_fields import profile_fields, schedule_fields
from csms.ocpp.reservation_status import reservation_status_update
from csms.ocpp.samples import samples_v201
from csms.ocpp.station_reports import add_report_part, report_part, security_event
from csms.ocpp.transfer_status import FIRMWARE_STATUS_201, LOG_STATUS, PUBLISH_FIRMWARE_STATUS
from csms.variable_split import exchange_split, message_limits
from loadmgmt.profiles import ChargingProfile

VERSION = "2.0.1"
SUBPROTOCOL = "ocpp2.0.1"

SMART_CHARGING_VARIABLES: list[tuple[str, str | None]] = [
    ("Enabled", None),
    ("Available", None),
    ("RateUnit", None),
    ("PeriodsPerSchedule", None),
    ("ProfileStackLevel", None),
    ("Entries", "ChargingProfiles"),
    ("LimitChangeSignificance", None),
    ("Phases3to1", None),
]


def _id_token_info(info: IdTagInfo) -> Payload:
    out: Payload = {"status": info.status}
    if info.expiry is not None:
        out["cacheExpiryDateTime"] = iso(info.expiry)
    if info.parent_id_tag:
        # The 1.6 parentIdTag: tokens of one group may stop each other's transactions
        # (C01.FR.05); a group token is ours, so of type Central.
        out["groupIdToken"] = {"idToken": info.parent_id_tag, "type": "Central"}
    return out


async def boot_notification(ctx: HandlerContext, p: Payload) -> Payload:
    station = p["chargingStation"]
    booted = Booted(
        cp_id=ctx.cp_id, protocol=SUBPROTOCOL, vendor=station["vendorName"],
        model=station["model"], serial=station.get("serialNumber"),
        firmware=station.get("firmwareVersion"), reason=p.get("reason"),
    )
    status = await ctx.central.boot(booted)
    fingerprint = ctx.central.configuration_due(booted, status)
    if fingerprint is not None:
        ctx.after_reply(lambda: ctx.central.paced(configure(ctx, fingerprint)))
    return {"currentTime": iso(ctx.central.now()),
            "interval": ctx.central.boot_interval(status), "status": status}


async def heartbeat(ctx: HandlerContext, p: Payload) -> Payload:
    return {"currentTime": iso(ctx.central.now())}


async def status_notification(ctx: HandlerContext, p: Payload) -> Payload:
    await ctx.central.status(StatusChanged(
        cp_id=ctx.cp_id, connector_id=p["evseId"], status=p["connectorStatus"],
        timestamp=parse_iso(p["timestamp"]), evse_connector_id=p["connectorId"],
    ))
    return {}


async def authorize(ctx: HandlerContext, p: Payload) -> Payload:
    # A token in a transaction on this station may be presented to stop it: not concurrent.
    info = await ctx.central.authorize(p["idToken"]["idToken"], (ctx.cp_id, None))
    out: Payload = {"idTokenInfo": _id_token_info(info)}
    hash_data = p.get("iso15118CertificateHashData")
    if hash_data or p.get("certificate"):
        # C07: an eMAID with its contract certificate named (by hashes, or the chain itself);
        # a chain not known good does not authorize, whatever the token's own status.
        try:
            hash_data = hash_data or chain_hash_data(p["certificate"])
            status = await contract_certificate_status(ctx, hash_data)
        except ValueError:
            status = "CertChainError"
        out["certificateStatus"] = status
        if status != "Accepted" and info.status == "Accepted":
            out["idTokenInfo"]["status"] = "Invalid"
    return out


async def transaction_event(ctx: HandlerContext, p: Payload) -> Payload:
    tx = p["transactionInfo"]
    evse = p.get("evse") or {}
    token = (p.get("idToken") or {}).get("idToken")
    info = await ctx.central.transaction_event(TransactionEvent201(
        cp_id=ctx.cp_id, event_type=p["eventType"], ocpp_tx_id=tx["transactionId"],
        seq_no=p["seqNo"], timestamp=parse_iso(p["timestamp"]),
        trigger_reason=p["triggerReason"], connector_id=evse.get("id"),
        evse_connector_id=evse.get("connectorId"), id_tag=token or None,
        offline=bool(p.get("offline", False)), charging_state=tx.get("chargingState"),
        stopped_reason=tx.get("stoppedReason"), samples=samples_v201(p.get("meterValue") or []),
        reservation_id=p.get("reservationId"),
    ))
    if p["eventType"] == "Ended" and await ctx.central.status_check_due(
            ctx.cp_id, tx["transactionId"]):
        ctx.after_reply(lambda: check_transaction_status(ctx, tx["transactionId"]))
    answer: Payload = {} if info is None else {"idTokenInfo": _id_token_info(info)}
    # I03: the final cost in the Ended answer; I02.FR.01: the running cost in Updated ones.
    if p["eventType"] != "Started":
        total = await ctx.central.session_cost(ctx.cp_id, tx["transactionId"])
        if total is not None:
            answer["totalCost"] = float(total)
    return answer


async def check_transaction_status(ctx: HandlerContext, transaction_id: str) -> None:
    """Ask the charger whether events of `transaction_id` still wait in its queue (an Ended
    came with seqNos missing) and keep its answer, or why there was none."""
    try:
        answer = await ctx.send("GetTransactionStatus", {"transactionId": transaction_id})
    except CallFailed as exc:
        await ctx.central.transaction_status(ctx.cp_id, transaction_id,
                                             {"error": str(exc), "status": exc.status})
        raise
    await ctx.central.transaction_status(ctx.cp_id, transaction_id, answer)


async def meter_values(ctx: HandlerContext, p: Payload) -> Payload:
    await ctx.central.meter_values(Metered(
        cp_id=ctx.cp_id, connector_id=p["evseId"], samples=samples_v201(p["meterValue"]),
    ))
    return {}


async def notify_report(ctx: HandlerContext, p: Payload) -> Payload:
    # Its variables feed the device model; the parts make up the report asked for.
    await add_report_part(ctx, "NotifyReport", p)
    await ctx.central.report(ctx.cp_id, p.get("reportData") or [])
    return {}


async def notify_ev_charging_needs(ctx: HandlerContext, p: Payload) -> Payload:
    needs = p["chargingNeeds"]
    ac = needs.get("acChargingParameters") or {}
    dc = needs.get("dcChargingParameters") or {}
    departure = needs.get("departureTime")
    await ctx.central.ev_charging_needs(EvChargingNeeds(
        cp_id=ctx.cp_id, connector_id=p["evseId"],
        requested_energy_transfer=needs["requestedEnergyTransfer"],
        departure=None if departure is None else parse_iso(departure),
        energy_amount_wh=ac.get("energyAmount", dc.get("energyAmount")),
        ev_max_power_w=dc.get("evMaxPower"),
        ev_max_current_a=ac.get("evMaxCurrent", dc.get("evMaxCurrent")),
        ev_min_current_a=ac.get("evMinCurrent"),
        raw=p,
    ))
    return {"status": "Accepted"}


async def notify_ev_charging_schedule(ctx: HandlerContext, p: Payload) -> Payload:
    schedule = p["chargingSchedule"]
    status = await ctx.central.ev_charging_schedule(EvChargingSchedule(
        cp_id=ctx.cp_id, connector_id=p["evseId"], time_base=parse_iso(p["timeBase"]),
        unit=schedule["chargingRateUnit"],
        periods=tuple((float(x["startPeriod"]), float(x["limit"]), x.get("numberPhases"))
                      for x in schedule["chargingSchedulePeriod"]),
        duration_s=schedule.get("duration")), p)
    return {"status": status}


def _recorder(kind: str, answer: Payload | None = None) -> Handler:
    """A handler that keeps the notification for diagnostics and answers `answer`."""

    async def handle(ctx: HandlerContext, p: Payload) -> Payload:
        await ctx.central.charger_event(ctx.cp_id, kind, p)
        return dict(answer or {})

    handle.__name__ = f"record_{kind}"
    return handle


HANDLERS: dict[str, Handler] = {
    "BootNotification": boot_notification,
    "Heartbeat": heartbeat,
    "StatusNotification": status_notification,
    "Authorize": authorize,
    "TransactionEvent": transaction_event,
    "MeterValues": meter_values,
    "NotifyReport": notify_report,
    "NotifyEVChargingNeeds": notify_ev_charging_needs,
    "NotifyChargingLimit": _recorder("NotifyChargingLimit"),
    "ReportChargingProfiles": report_part("ReportChargingProfiles"),
    "ClearedChargingLimit": _recorder("ClearedChargingLimit"),
    "NotifyEVChargingSchedule": notify_ev_charging_schedule,
    "FirmwareStatusNotification": FIRMWARE_STATUS_201,
    "LogStatusNotification": LOG_STATUS,
    "SecurityEventNotification": security_event,
    "NotifyEvent": _recorder("NotifyEvent"),
    "NotifyMonitoringReport": report_part("NotifyMonitoringReport"),
    "DataTransfer": _recorder("DataTransfer", {"status": "UnknownVendorId"}),
    "SignCertificate": sign_certificate(VERSION),
    "Get15118EVCertificate": get_15118_ev_certificate,
    "GetCertificateStatus": get_certificate_status,
    "NotifyCustomerInformation": report_part("NotifyCustomerInformation"),
    "NotifyDisplayMessages": report_part("NotifyDisplayMessages"),
    "PublishFirmwareStatusNotification": PUBLISH_FIRMWARE_STATUS,
    "ReservationStatusUpdate": reservation_status_update,
}


def parse_capabilities(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Normalise GetVariables results into the capability record both versions share."""
    raw = {
        r["variable"]["name"]: r.get("attributeValue")
        for r in results
        if r.get("attributeStatus") == "Accepted"
    }
    caps: dict[str, Any] = {"raw": raw}
    if raw.get("RateUnit"):
        caps["rate_units"] = sorted(
            {u.strip() for u in raw["RateUnit"].split(",") if u.strip() in ("A", "W")}
        )
    for key, name in (("ProfileStackLevel", "max_stack_level"),
                      ("PeriodsPerSchedule", "max_periods"),
                      ("Entries", "max_profiles")):
        try:
            caps[name] = int(str(raw[key]))
        except (KeyError, ValueError):
            pass
    # Only a real boolean says it: a charger answering nonsense is not thereby unlimitable.
    enabled = str(raw.get("Enabled", "")).strip().lower()
    if enabled in ("true", "false"):
        caps["smart_charging"] = enabled == "true"
    return caps


async def configure(ctx: HandlerContext, fingerprint: str) -> None:
    """After boot: set TxUpdatedInterval and measurands, read SmartChargingCtrlr variables."""
    cfg = ctx.central.config
    settings = [
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"},
         "attributeValue": str(cfg.meter_sample_interval_s)},
        {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedMeasurands"},
         "attributeValue": ",".join(cfg.meter_measurands)},
    ]
    if cfg.master_pass_group:
        settings.append({"component": {"name": "AuthCtrlr"},
                         "variable": {"name": "MasterPassGroupId"},
                         "attributeValue": cfg.master_pass_group})
    # Split to the station's ItemsPerMessage / BytesPerMessage where its device model says
    # them; asking for them here would cost every boot a round trip, so unknown sends as one.
    store, now = ctx.central.store, ctx.central.now()
    results = await exchange_split(ctx.send, "SetVariables", settings,
                                   await message_limits(store, ctx.cp_id, "SetVariables", now))
    configured = {r["variable"]["name"]: r["attributeStatus"] for r in results}
    get = []
    for name, instance in SMART_CHARGING_VARIABLES:
        variable: dict[str, Any] = {"name": name}
        if instance:
            variable["instance"] = instance
        get.append({"component": {"name": "SmartChargingCtrlr"}, "variable": variable})
    results = await exchange_split(ctx.send, "GetVariables", get,
                                   await message_limits(store, ctx.cp_id, "GetVariables", now))
    caps = parse_capabilities(results)
    caps["configured"] = configured
    caps["configured_for"] = fingerprint
    await ctx.central.save_capabilities(ctx.cp_id, caps)


def profile_payload(profile: ChargingProfile) -> Payload:
    """A version-neutral ChargingProfile as a 2.0.1 `chargingProfile`."""
    out: Payload = {"id": profile.id, **profile_fields(profile),
                    "chargingSchedule": [{"id": profile.id, **schedule_fields(profile)}]}
    if profile.transaction_id is not None and profile.purpose == "TxProfile":
        out["transactionId"] = str(profile.transaction_id)
    return out


def set_charging_profile(connector_id: int, profile: ChargingProfile) -> tuple[str, Payload]:
    """The SetChargingProfile CALL for `profile` on EVSE `connector_id`."""
    return "SetChargingProfile", {"evseId": connector_id,
                                  "chargingProfile": profile_payload(profile)}
