"""Charging sessions and meter values as the HTTP API (seed 002) sees them.

An OCPP transaction is a session; a POST for its connector enriches it (energy, departure,
priority, vehicle), which the planner's Demand takes over. A POST for a connector with no
transaction creates an API session: a charger another CSMS runs, planned like a session of
ours but never sent anything. Meter values posted here are stored and folded in like OCPP
MeterValues. Errors are `ApiProblem`s naming the offending field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from csms.domain import Metered, Sample
from csms.identity import charge_point_uuid, connector_uuid, network_uuid, session_uuid
from csms.live import ApiDemand, LiveState
from csms.sites import SiteDirectory
from csms.store.base import ApiSessionRecord, MeterQuery, MeterValueRecord, SessionQuery

if TYPE_CHECKING:
    from csms.service import Loadstar

# Connector numbers tried when a connector UUID is looked up on a charger that has not told us
# its connectors (a charger another CSMS runs).
CONNECTOR_SCAN = range(1, 9)
DETAIL_FIELDS = ("charging_rate_unit", "energy_to_charge_kwh", "departure", "priority",
                 "vehicle_id", "max_power_kw", "payment_info", "remote_stop", "start_soc")


log = structlog.get_logger("csms.api_sessions")


class ApiProblem(Exception):
    """A request the API must refuse: `status` (400, 404, 409) and a message per field."""

    def __init__(self, status: int, data: dict[str, str]) -> None:
        super().__init__(status, data)
        self.status, self.data = status, data


def not_found(field: str, what: str) -> ApiProblem:
    return ApiProblem(404, {field: f"no such {what}"})


@dataclass(frozen=True, slots=True)
class SessionFields:
    """What a POST or PATCH says about a session (None: not given)."""

    charging_rate_unit: str | None = None
    energy_to_charge_kwh: float | None = None
    departure: datetime | None = None
    priority: int | None = None
    vehicle_id: str | None = None
    max_power_kw: float | None = None
    payment_info: str | None = None
    remote_stop: bool | None = None
    start_soc: float | None = None

    def given(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in DETAIL_FIELDS if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True)
class NewSession:
    """A POST /v2/charging_sessions/ body, resolved to a connector of ours."""

    cp_id: str
    connector_id: int
    fields: SessionFields
    id_tag: str | None = None
    meter_start_kwh: float | None = None
    started_at: datetime | None = None
    transaction_id: int | None = None


class Ids:
    """The UUIDs of the views mapped back to Loadstar's ids (csms.identity is the rule).

    Charge points and connectors are found among the chargers the planner and the store know;
    sessions and optimizations by names cached as rows appear. One place to swap later.
    """

    def __init__(self, service: Loadstar) -> None:
        self._service = service
        self._sessions: dict[uuid.UUID, int] = {}
        self._sessions_upto = 0
        self._known: dict[str, set[int]] | None = None
        self._known_stamp: tuple[int, int, int] = (0, 0, 0)
        self._on: dict[str, list[str]] = {}
        self._on_directory: SiteDirectory | None = None
        self._by_name: dict[uuid.UUID, str | tuple[str, int]] = {}
        self._names_of: dict[str, set[int]] | None = None

    @property
    def directory(self) -> SiteDirectory:
        planner = self._service.planner
        return planner.directory if planner is not None else self._service.sites

    async def known_chargers(self) -> dict[str, set[int]]:
        """Every charger the planner or the store knows, with the connectors it has shown.

        Derived from memory and kept until a charger or connector appears: lists ask it on
        every request, and rebuilding it per request cost as much as the request."""
        planner = self._service.planner
        live = {} if planner is None else planner.live.chargers
        store = self._service.store
        stamp = (store.chargers_changed, len(live),
                 sum(len(cp.connectors) for cp in live.values()))
        if self._known is None or self._known_stamp != stamp:
            out: dict[str, set[int]] = {cp_id: set(cp.connectors) for cp_id, cp in live.items()}
            for cp_id, numbers in store.charger_connectors().items():
                out.setdefault(cp_id, set()).update(numbers)
            self._known, self._known_stamp, self._on = out, stamp, {}
        return self._known

    async def charge_point(self, value: uuid.UUID) -> str | None:
        """The OCPP id of the charge point named `value`."""
        return (await self._names()).get(value)

    async def connector(self, value: uuid.UUID) -> tuple[str, int] | None:
        """(OCPP id, connector number) of the connector named `value`."""
        found = (await self._names()).get(value)
        return found if isinstance(found, tuple) else None

    async def _names(self) -> dict[uuid.UUID, str | tuple[str, int]]:
        """UUID -> charge point id or (charge point id, connector), rebuilt with the chargers."""
        known = await self.known_chargers()
        if self._names_of is not known:
            names: dict[uuid.UUID, str | tuple[str, int]] = {}
            for cp_id, numbers in known.items():
                names[charge_point_uuid(cp_id)] = cp_id
                for n in numbers | set(CONNECTOR_SCAN):
                    names[connector_uuid(cp_id, n)] = (cp_id, n)
            self._by_name, self._names_of = names, known
        return self._by_name

    def network(self, value: uuid.UUID) -> str | None:
        """The site (network) named `value`."""
        return next((s for s in self.directory.specs if network_uuid(s) == value), None)

    async def chargers_on(self, site_id: str) -> list[str]:
        """The chargers placed in `site_id` (kept per site until a charger appears or the
        directory changes)."""
        known, directory = await self.known_chargers(), self.directory
        if self._on_directory is not directory:
            self._on, self._on_directory = {}, directory
        found = self._on.get(site_id)
        if found is None:
            found = self._on[site_id] = sorted(
                cp for cp in known if directory.placement(cp).site_id == site_id)
        return list(found)

    async def session(self, value: uuid.UUID) -> int | None:
        """The session row named `value` (names of new rows are computed once, then kept)."""
        found = self._sessions.get(value)
        if found is None:
            top = await self._service.store.max_session_id()
            for row in range(self._sessions_upto + 1, top + 1):
                self._sessions[session_uuid(row)] = row
            self._sessions_upto = max(self._sessions_upto, top)
            found = self._sessions.get(value)
        return found


class ApiSessions:
    """Sessions seen and steered through the HTTP API, one per running Loadstar."""

    def __init__(self, service: Loadstar) -> None:
        self._service = service
        self.ids = Ids(service)
        # A vehicle's new needs reach the sessions naming it before its re-plan.
        service.vehicles.on_needs_changed.append(self.vehicle_changed)

    @property
    def _live(self) -> LiveState | None:
        planner = self._service.planner
        return None if planner is None else planner.live

    def now(self) -> datetime:
        return self._service.clock.now()

    async def restore(self) -> None:
        """Put what the API said about open sessions back into the planner (at start)."""
        for record in await self._service.store.open_session_details():
            self._to_planner(record)

    # -- the planner ---------------------------------------------------------------------

    def _to_planner(self, record: ApiSessionRecord, *, replan: bool = True) -> None:
        """Make the planner's view of the record's connector match it, and re-plan."""
        live, planner = self._live, self._service.planner
        if live is None or planner is None:
            return
        c = live.charger(record.cp_id).connector(record.connector_id)
        external = record.source == "api"
        if record.stopped_at is not None:
            if c.api is not None and c.api.session_id == record.id:
                c.api = None
                if external:
                    c.tx_id = None
                    c.measured_w = None
        elif external or c.tx_id == record.ocpp_tx_id:
            if external:
                c.tx_id = record.ocpp_tx_id
            demand = self._demand(record, external)
            # An OCPP session the API says nothing the planner reads about has no overrides.
            c.api = demand if demand != ApiDemand(record.id) else None
        if replan:
            planner.request(self.ids.directory.placement(record.cp_id).site_id, "api_session")

    def _demand(self, record: ApiSessionRecord, external: bool) -> ApiDemand:
        """What the planner takes from the session: its own energy, departure and maximum,
        each it leaves out taken from the vehicle it names (seed 002 step 11)."""
        energy, departure, max_kw = (record.energy_to_charge_kwh, record.departure,
                                     record.max_power_kw)
        needs = (None if record.vehicle_id is None
                 else self._service.vehicles.needs_of(record.vehicle_id))
        if needs is not None:
            energy = needs.energy_to_charge_kwh if energy is None else energy
            departure = needs.departure if departure is None else departure
            max_kw = needs.max_power_kw if max_kw is None else max_kw
        return ApiDemand(record.id, external=external, priority=record.priority,
                         energy_to_charge_kwh=energy, departure=departure,
                         vehicle_max_kw=max_kw)

    async def vehicle_changed(self, vehicle_uuid: str) -> None:
        """Give the open sessions naming the vehicle its new needs (the vehicle's change
        re-plans every site right after)."""
        query = SessionQuery(now=self.now(), vehicles=(vehicle_uuid,), active=True)
        offset = 0
        while True:
            records, total = await self.page(query, 1000, offset)
            for record in records:
                self._to_planner(record, replan=False)
            offset += len(records)
            if not records or offset >= total:
                return

    def _check_vehicle(self, fields: SessionFields) -> None:
        if fields.vehicle_id is not None and not self._service.vehicles.exists(fields.vehicle_id):
            raise not_found("body.vehicleId", "vehicle")

    def site_of(self, cp_id: str) -> str:
        return self.ids.directory.placement(cp_id).site_id

    def _connected(self, cp_id: str) -> bool:
        return self._service.registry.get(cp_id) is not None

    # -- sessions ------------------------------------------------------------------------

    async def get(self, value: uuid.UUID) -> ApiSessionRecord:
        row = await self.ids.session(value)
        record = None if row is None else await self._service.store.get_api_session(row)
        if record is None:
            raise not_found("charging_session_uuid", "charging session")
        return record

    async def page(self, query: SessionQuery, limit: int,
                   offset: int) -> tuple[list[ApiSessionRecord], int]:
        return await self._service.store.page_api_sessions(query, limit, offset)

    async def start(self, new: NewSession) -> tuple[ApiSessionRecord, bool]:
        """Enrich the transaction running on the connector, or open an API session there.

        Returns the session and whether it was created.
        """
        self._check_vehicle(new.fields)
        store, now = self._service.store, self.now()
        running = await store.open_session_on(new.cp_id, new.connector_id)
        if running is not None and running.source == "api":
            raise ApiProblem(409, {"connectorId": "an API session is open on this connector:"
                                   " PATCH or DELETE it"})
        if running is not None:
            if new.transaction_id is not None and str(new.transaction_id) != running.ocpp_tx_id:
                raise ApiProblem(409, {"transactionId": "the connector runs transaction "
                                       f"{running.ocpp_tx_id}"})
            await store.save_session_details(running.id, new.fields.given(), now)
            record = await self._reload(running.id)
            self._to_planner(record)
            return record, False
        if self._connected(new.cp_id):
            raise ApiProblem(409, {"connectorId": "no transaction runs on this connector; its"
                                   " charger is connected to Loadstar, so its sessions start"
                                   " with its transactions"})
        if not await store.is_known(new.cp_id):
            raise not_found("chargePointId", "charge point")
        fields = {"priority": 3, **new.fields.given()}
        tx = None if new.transaction_id is None else str(new.transaction_id)
        try:
            row = await store.start_api_session(
                new.cp_id, new.connector_id, tx, new.id_tag, new.started_at or now,
                None if new.meter_start_kwh is None else new.meter_start_kwh * 1000.0,
                fields, now)
        except Exception as e:  # the unique (charge point, transaction id) pair
            if "UNIQUE" in str(e):
                raise ApiProblem(409, {"transactionId": "this charge point had a session with"
                                       " this transaction id"}) from e
            raise
        record = await self._reload(row)
        self._to_planner(record)
        return record, True

    async def _reload(self, row: int) -> ApiSessionRecord:
        record = await self._service.store.get_api_session(row)
        assert record is not None  # written just now by the one writer
        return record

    async def update(self, record: ApiSessionRecord, fields: SessionFields,
                     meter_stop_kwh: float | None, stopped_at: datetime | None
                     ) -> ApiSessionRecord:
        """PATCH: change what the API says; meterStop or ocppTransactionStop closes it."""
        self._check_vehicle(fields)
        store, now = self._service.store, self.now()
        closes = meter_stop_kwh is not None or stopped_at is not None
        if closes and record.source != "api":
            raise ApiProblem(409, {"meterStop" if meter_stop_kwh is not None
                                   else "ocppTransactionStop":
                                   "an OCPP session closes when its charger ends the"
                                   " transaction; Loadstar never fakes a stop"})
        if closes and record.stopped_at is not None:
            raise ApiProblem(409, {"meterStop" if meter_stop_kwh is not None
                                   else "ocppTransactionStop": "the session is closed"})
        given = fields.given()
        if given:
            await store.save_session_details(record.id, given, now)
        if closes:
            await store.end_api_session(
                record.id, stopped_at or now,
                None if meter_stop_kwh is None else meter_stop_kwh * 1000.0, "api_patch", now)
        updated = await self._reload(record.id)
        if updated.stopped_at is None or closes:
            self._to_planner(updated)
        return updated

    async def delete(self, record: ApiSessionRecord,
                     transaction_id: str | None = None) -> ApiSessionRecord:
        """End an API session; for an OCPP session, forget what the API said about it (the
        charger's transaction runs on: Loadstar never fakes a stop)."""
        if transaction_id is not None and transaction_id != record.ocpp_tx_id:
            raise not_found("transaction_id", "transaction of this charging session")
        store, now = self._service.store, self.now()
        if record.source == "api":
            if record.stopped_at is None:
                await store.end_api_session(record.id, now, None, "api_delete", now)
            updated = await self._reload(record.id)
        else:
            # The transaction itself is untouched; only what the API said goes.
            await store.forget_session_details(record.id)
            updated = await self._reload(record.id)
        self._to_planner(updated)
        return updated

    async def webhook_gone(self, site_id: str, connectors: list[tuple[str, int]]) -> None:
        """Seed 002: a webhook that answers 404 ends the sessions of those optimizations (as
        DELETE does: an API session closes, an OCPP one loses what the API said about it)."""
        for cp_id, connector_id in connectors:
            record = await self._service.store.open_session_on(cp_id, connector_id)
            if record is not None:
                await self.delete(record)
                log.info("session_ended_by_webhook", site_id=site_id, cp_id=cp_id,
                         connector_id=connector_id, source=record.source)

    def effective_priority(self, record: ApiSessionRecord) -> int:
        """The priority the planner uses: the session's, else its connector's."""
        if record.priority is not None:
            return record.priority
        return self.ids.directory.connector(record.cp_id, record.connector_id).priority

    # -- meter values --------------------------------------------------------------------

    async def add_meter_values(self, cp_id: str, connector_id: int, samples: tuple[Sample, ...],
                               transaction_id: str | None) -> None:
        """Store samples as an OCPP MeterValues would be, and fold them into the planner:
        re-planned unless the network turned optimizeWithMeterValue off."""
        store = self._service.store
        if transaction_id is None:
            running = await store.open_session_on(cp_id, connector_id)
            transaction_id = None if running is None else running.ocpp_tx_id
        event = Metered(cp_id, connector_id, samples, transaction_id)
        await store.add_meter_values(event)
        if self.optimize_with_meter_values(self.site_of(cp_id)):
            self._service.bus.publish(event)
        elif self._live is not None:
            self._live.apply(event)

    async def connector_of_vehicle(self, vehicle_id: str) -> tuple[str, int]:
        """The connector of the vehicle's open session (400 when it has none)."""
        running = await self._service.store.open_session_of_vehicle(vehicle_id)
        if running is None:
            raise ApiProblem(400, {"body.vehicleId": "no open charging session with this"
                                   " vehicle"})
        return running.cp_id, running.connector_id

    async def meter_page(self, query: MeterQuery, limit: int,
                         offset: int) -> tuple[list[MeterValueRecord], int]:
        return await self._service.store.page_meter_values(query, limit, offset)

    def optimize_with_meter_values(self, site_id: str) -> bool:
        """The network's optimizeWithMeterValue (default true)."""
        spec = self.ids.directory.specs.get(site_id)
        return bool(getattr(spec, "optimize_with_meter_value", True))

