"""Optimizations and profiles as the HTTP API (seed 002) shows them, read from stored plans.

An optimization is one connector's result, with a session, in one stored plan. Its OCPP
profile comes from the one profile builder (loadmgmt.profiles), in the session's
chargingRateUnit. The profile views resample plans, limits and meter values
(csms.timeseries).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from csms.api_sessions import CONNECTOR_SCAN, ApiProblem
from csms.clock import document_time as _doc_time
from csms.clock import parse_iso
from csms.identity import (
    charge_point_uuid,
    connector_uuid,
    network_uuid,
    plan_uuid,
    session_uuid,
)
from csms.sites import connector_key, split_key
from csms.store.base import ApiSessionRecord, MeterQuery, MeterValueRecord, PlanResultRecord
from csms.timeseries import Point, Segment, add, hold, resample
from loadmgmt.limits import resolve
from loadmgmt.model import Allocation, ConnectorAllocation, Snapshot
from loadmgmt.profiles import DEFAULT_TX_PRESET, Capabilities, ChargingProfile, build_profiles

if TYPE_CHECKING:
    from csms.service import Loadstar

POWER = "Power.Active.Import"
ENERGY = "Energy.Active.Import.Register"
# A meter reading says nothing about the draw longer than this after it.
METER_HOLD_S = 900.0


def opt_name(plan_id: int, key: str) -> uuid.UUID:
    """The optimization's UUID: csms.identity's rule over "cp_id:n"."""
    cp_id, n = split_key(key)
    return plan_uuid(plan_id, f"{cp_id}:{n}")


@dataclass(frozen=True, slots=True)
class Optimization:
    """One connector's result in one plan, as an OCPP profile in the session's unit."""

    id: uuid.UUID
    plan_id: int
    site_id: str
    created: datetime
    cp_id: str
    connector_id: int
    method: str
    unit: str  # "W", "kW" or "A": the session's chargingRateUnit (W on the DC side)
    profile: ChargingProfile  # limits in W or A; kW is W / 1000
    session: ApiSessionRecord | None
    transaction_id: str | None
    active: bool
    w_per_amp: float = 1.0  # the connector's W at 1 A (voltage, phases, power factor)

    def limits(self) -> list[tuple[float, float]]:
        """(startPeriod s, limit in `unit`) of the schedule."""
        scale = 1000.0 if self.unit == "kW" else 1.0
        return [(p.start_period, p.limit / scale) for p in self.profile.schedule.periods]

    def kw_points(self) -> list[tuple[datetime, float]]:
        """The schedule in kW at absolute times (the `profile` object)."""
        start = self.profile.valid_from or self.created
        per_unit = self.w_per_amp if self.profile.schedule.unit == "A" else 1.0
        return [(start + timedelta(seconds=p.start_period), p.limit * per_unit / 1000.0)
                for p in self.profile.schedule.periods]


class Optimizations:
    """Reads optimizations from the stored plans; resolves their UUIDs."""

    def __init__(self, service: Loadstar) -> None:
        self._service = service
        self._names: dict[uuid.UUID, tuple[int, str]] = {}
        self._names_upto = 0

    @property
    def _ids(self) -> Any:
        return self._service.api_sessions.ids

    def _validity_s(self) -> int:
        return int(self._service.config.load.profile_validity_s)

    async def find(self, value: uuid.UUID) -> Optimization:
        """The optimization named `value` (404 when no stored plan has it)."""
        found = self._names.get(value)
        if found is None:
            for plan_id, key in await self._service.store.plan_keys_after(self._names_upto):
                self._names[opt_name(plan_id, key)] = (plan_id, key)
                self._names_upto = max(self._names_upto, plan_id)
            found = self._names.get(value)
        record = None if found is None else await self._service.store.plan_result(*found)
        if record is None:
            raise ApiProblem(404, {"id": "no such optimization"})
        return (await self.build([record]))[0]

    async def keys_of(self, cp_id: str) -> tuple[str, ...]:
        """Allocator keys of every connector `cp_id` may have."""
        numbers = (await self._ids.known_chargers()).get(cp_id, set()) | set(CONNECTOR_SCAN)
        return tuple(connector_key(cp_id, n) for n in sorted(numbers))

    async def page(self, site_ids: tuple[str, ...], keys: tuple[str, ...] | None,
                   latest_only: bool, start: datetime | None, end: datetime | None,
                   limit: int, offset: int, transaction_id: str | None = None
                   ) -> tuple[list[Optimization], int]:
        records, total = await self._service.store.page_plan_results(
            site_ids, keys, latest_only, start, end, limit, offset, transaction_id)
        return await self.build(records), total

    async def build(self, records: Iterable[PlanResultRecord]) -> list[Optimization]:
        """Optimizations from stored results (the session of each looked up once)."""
        store, directory = self._service.store, self._ids.directory
        sessions: dict[tuple[str, str], ApiSessionRecord | None] = {}
        out = []
        for r in records:
            cp_id, n = split_key(r.connector)
            tx = r.result.get("transaction_id")
            tx = None if tx is None else str(tx)
            session = None
            if tx is not None:
                if (cp_id, tx) not in sessions:
                    found = await store.get_session(cp_id, tx)
                    sessions[(cp_id, tx)] = None if found is None else \
                        await store.get_api_session(found.id)
                session = sessions[(cp_id, tx)]
            unit = session.charging_rate_unit if session is not None else "W"
            conn = directory.connector(cp_id, n)
            spec = directory.specs.get(r.site_id)
            profile = self._profile(r, conn, unit, tx)
            method = spec.objective if spec is not None else "load_sharing"
            shown = unit if profile.schedule.unit == "A" or unit != "A" else "W"
            opt = Optimization(
                id=opt_name(r.plan_id, r.connector), plan_id=r.plan_id, site_id=r.site_id,
                created=r.ts, cp_id=cp_id, connector_id=n, method=method, unit=shown,
                profile=profile, session=session, transaction_id=tx, active=r.latest,
                w_per_amp=conn.w_at_amps(1.0))
            out.append(opt)
        return out

    async def of_plan(self, plan: dict[str, Any]) -> list[dict[str, Any]]:
        """The document's optimizations of one stored plan: what its webhook delivers."""
        ts = plan["ts"] if isinstance(plan["ts"], datetime) else parse_iso(plan["ts"])
        records = [PlanResultRecord(plan_id=plan["id"], site_id=plan["site_id"], ts=ts,
                                    connector=key, result=value, latest=True)
                   for key, value in sorted(plan["result"].items())
                   if value.get("active") and not value.get("pinned")]
        return [document(o) for o in await self.build(records)]

    def _profile(self, r: PlanResultRecord, conn: Any, unit: str,
                 tx: str | None) -> ChargingProfile:
        """The TxProfile the plan meant for the connector, built by the one profile builder."""
        site = self._ids.directory.site(r.site_id)
        plan_w = tuple(r.result.get("plan_w") or ())
        ca = ConnectorAllocation(
            connector_id=conn.id, power_w=float(r.result.get("power_w") or 0.0),
            current_a=(0.0, 0.0, 0.0), floor_w=float(r.result.get("floor_w") or 0.0),
            plan_w=plan_w, active=True, pinned=False, transaction_id=tx)
        allocation = Allocation(site_id=r.site_id, connectors=(ca,), status="optimal",
                                solve_time_s=0.0)
        snapshot = Snapshot(site=site, connectors=(conn,))
        caps = Capabilities(preferred_unit="A" if unit == "A" else "W",
                            tx_preset=DEFAULT_TX_PRESET)
        validity = self._validity_s()
        profiles = build_profiles(allocation, snapshot, {conn.charge_point_id: caps}, now=r.ts,
                                  validity_s=validity, include_defaults=False,
                                  plan_validity_s=validity)
        return profiles[0]

    # -- profiles ------------------------------------------------------------------------

    async def planned_series(self, site_id: str, keys: set[str] | None, start: datetime,
                             end: datetime, step_s: int, transaction_id: str | None = None,
                             ) -> list[Point]:
        """kW granted to the selected connectors (None: all) over time, from stored plans;
        0 where no plan grants anything."""
        validity = timedelta(seconds=self._validity_s())
        history = await self._service.store.plan_history(site_id, start, end)
        segments: list[Segment] = []
        for i, (_plan_id, ts, result) in enumerate(history):
            stop = ts + validity
            if i + 1 < len(history):
                stop = min(stop, history[i + 1][1])
            segments.extend(_plan_segments(ts, stop, result, keys, transaction_id))
        points = resample(segments, start, end, step_s)
        return [(t, 0.0 if v is None else v) for t, v in points]

    def optimization_series(self, opt: Optimization, start: datetime, end: datetime,
                            step_s: int) -> list[Point]:
        """One optimization's schedule in kW; 0 outside it."""
        stop = opt.profile.valid_to or (opt.created + timedelta(seconds=self._validity_s()))
        marks = opt.kw_points()
        segments = [(t, marks[i + 1][0] if i + 1 < len(marks) else stop, v)
                    for i, (t, v) in enumerate(marks)]
        points = resample(segments, start, end, step_s)
        return [(t, 0.0 if v is None else v) for t, v in points]

    def capacity_series(self, site_id: str, start: datetime, end: datetime,
                        step_s: int) -> list[Point]:
        """The network's resolved limit in kW over time; its maxCapacity where none applies."""
        planner = self._service.planner
        spec = self._ids.directory.specs[site_id]
        if planner is None:
            return resample([(start, end, spec.max_power_kw)], start, end, step_s)
        limits = planner._snapshots.site_limits(site_id)  # noqa: SLF001 - read-only view
        segments: list[Segment] = []
        at = start
        while at < end:
            r = resolve(limits, at)
            nxt = r.next_boundary if r.next_boundary is not None and r.next_boundary > at \
                else end
            kw = r.value.power_kw if r.value.power_kw is not None else spec.max_power_kw
            segments.append((at, min(nxt, end), kw))
            at = min(nxt, end)
        return resample(segments, start, end, step_s)

    async def meter_power_series(self, query: MeterQuery, start: datetime, end: datetime,
                                 step_s: int) -> list[Point]:
        """kW drawn by the selected connectors: Power.Active.Import, or the energy register's
        slope where a connector reports no power."""
        store = self._service.store
        rows = await store.meter_series(MeterQuery(
            query.connectors, query.cp_ids, query.vehicles,
            start - timedelta(seconds=METER_HOLD_S), end, (POWER, ENERGY)))
        total: list[Point] = resample([], start, end, step_s)
        for samples in _by_connector(rows).values():
            power = _power_points(samples)
            segments = hold(power, METER_HOLD_S, end) if power else _energy_slope(samples)
            total = add(total, resample(segments, start, end, step_s))
        return total

    async def meter_energy_series(self, query: MeterQuery, start: datetime, end: datetime,
                                  step_s: int) -> list[Point]:
        """kWh delivered in each bucket (register increases), where readings exist."""
        rows = await self._service.store.meter_series(MeterQuery(
            query.connectors, query.cp_ids, query.vehicles, start, end, (ENERGY,)))
        n = max(0, -(-int((end - start).total_seconds()) // step_s))
        buckets: list[float | None] = [None] * n
        for samples in _by_connector(rows).values():
            readings = _energy_points(samples)
            for (_, e0), (t1, e1) in zip(readings, readings[1:], strict=False):
                k = int((t1 - start).total_seconds() // step_s)
                if 0 <= k < n:
                    buckets[k] = (buckets[k] or 0.0) + max(0.0, e1 - e0)
            for t, _ in readings[:1]:
                k = int((t - start).total_seconds() // step_s)
                if 0 <= k < n and buckets[k] is None:
                    buckets[k] = 0.0
        return [(start + timedelta(seconds=k * step_s), v) for k, v in enumerate(buckets)]


def _plan_segments(ts: datetime, stop: datetime, result: dict[str, Any], keys: set[str] | None,
                   transaction_id: str | None, slot_s: float = 900.0) -> list[Segment]:
    """What one plan grants the selected connectors in all, kW over [ts, stop): one segment,
    or one per slot of a fleet plan."""
    per_slot: dict[int, float] = {}
    for key, r in result.items():
        if keys is not None and key not in keys or not r.get("active"):
            continue
        if transaction_id is not None and str(r.get("transaction_id")) != transaction_id:
            continue
        plan = r.get("plan_w") or [r.get("power_w") or 0.0]
        for i, w in enumerate(plan):
            per_slot[i] = per_slot.get(i, 0.0) + float(w) / 1000.0
    if not per_slot:
        return []
    if len(per_slot) == 1:
        return [(ts, stop, per_slot[0])]
    out: list[Segment] = []
    for i in sorted(per_slot):
        s = ts + timedelta(seconds=i * slot_s)
        e = min(stop, s + timedelta(seconds=slot_s))
        if e > s:
            out.append((s, e, per_slot[i]))
    return out


def _by_connector(rows: list[MeterValueRecord]) -> dict[tuple[str, int], list[MeterValueRecord]]:
    out: dict[tuple[str, int], list[MeterValueRecord]] = {}
    for r in rows:
        if r.location in (None, "Outlet"):
            out.setdefault((r.cp_id, r.connector_id), []).append(r)
    return out


def _power_points(samples: list[MeterValueRecord]) -> list[tuple[datetime, float]]:
    """kW per reading time: the total, else the sum of the line phases."""
    at: dict[datetime, dict[str | None, float]] = {}
    for s in samples:
        if s.measurand == POWER:
            kw = s.value if s.unit == "kW" else s.value / 1000.0
            at.setdefault(s.timestamp, {})[s.phase] = kw
    out = []
    for t in sorted(at):
        values = at[t]
        total = values[None] if None in values else sum(
            v for k, v in values.items() if k and "-" not in k and k != "N")
        out.append((t, total))
    return out


def _energy_points(samples: list[MeterValueRecord]) -> list[tuple[datetime, float]]:
    """kWh register readings (whole connector), one per time."""
    at = {s.timestamp: (s.value if s.unit == "kWh" else s.value / 1000.0)
          for s in samples if s.measurand == ENERGY and s.phase is None}
    return sorted(at.items())


def _energy_slope(samples: list[MeterValueRecord]) -> list[Segment]:
    readings = _energy_points(samples)
    out: list[Segment] = []
    for (t0, e0), (t1, e1) in zip(readings, readings[1:], strict=False):
        hours = (t1 - t0).total_seconds() / 3600.0
        if hours > 0:
            out.append((t0, t1, max(0.0, e1 - e0) / hours))
    return out




def _number(value: float) -> float:
    return round(value, 3)


def cs_profile(opt: Optimization) -> dict[str, Any]:
    """`csChargingProfiles` as OCPP 1.6 SetChargingProfile carries it."""
    p = opt.profile
    tx = opt.transaction_id
    return {
        "chargingProfileId": p.id,
        "chargingProfileKind": p.kind,
        "chargingProfilePurpose": p.purpose,
        "chargingSchedule": {
            "chargingRateUnit": opt.unit,
            "chargingSchedulePeriod": [{"limit": _number(limit), "startPeriod": float(start)}
                                       for start, limit in opt.limits()],
            "duration": None if p.schedule.duration is None else float(p.schedule.duration),
        },
        "stackLevel": p.stack_level,
        "transactionId": None if tx is None or tx.startswith("api-")
        else (int(tx) if tx.isdigit() else tx),
        "validFrom": _doc_time(p.valid_from),
        "validTo": _doc_time(p.valid_to),
    }


def profile_object(opt: Optimization) -> dict[str, Any]:
    """The compact `profile`: the schedule in kW at absolute times."""
    return {"start": _doc_time(opt.profile.valid_from), "stop": _doc_time(opt.profile.valid_to),
            "unit": "kW",
            "data": [{"time": _doc_time(t), "value": _number(v)} for t, v in opt.kw_points()]}


def document(opt: Optimization) -> dict[str, Any]:
    """The document's optimization object (seed 002 §3.5), for the view and the webhooks."""
    return {
        "id": str(opt.id), "created": _doc_time(opt.created), "updated": _doc_time(opt.created),
        "method": opt.method, "active": opt.active,
        "csChargingProfiles": cs_profile(opt), "profile": profile_object(opt),
        "connectorId": opt.connector_id,
        "connector": str(connector_uuid(opt.cp_id, opt.connector_id)),
        "chargepointId": str(charge_point_uuid(opt.cp_id)),
        "networkId": str(network_uuid(opt.site_id)),
        "chargingSessionId": None if opt.session is None else str(session_uuid(opt.session.id)),
    }
