"""Vehicles (seed 002 "Vehicles"): battery, state of charge, target and departure, which make
a session's energy need when the session names the vehicle.

A vehicle belongs to no network. Every vehicle is kept in memory (a fleet has hundreds, not
millions) so that `needs_of` can be asked on every plan without a query.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from csms.clock import Clock
from csms.store import Store
from csms.store.catalog import VehicleQuery, VehicleRecord

SORTS = ("batteryCapacity", "group", "integrationId", "licensePlate", "make",
         "maxChargingPower", "model", "name", "targetSOC", "VIN", "year")
# Seed 002: "Updates to the departureTime, stateOfCharge and targetStateOfCharge fields can
# trigger reoptimization"; so do the battery and power, which change the same need.
NEED_FIELDS = ("departure_time", "state_of_charge", "target_state_of_charge",
               "battery_capacity_kwh", "max_charging_power_kw")

Replan = Callable[[str], None]
# Told the UUID of a vehicle whose needs changed (or that was deleted), before the re-plan:
# the sessions naming it take its new needs into that plan.
NeedsChanged = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class VehicleNeeds:
    """What a session of this vehicle needs: energy to its target (kWh), when it leaves, and
    the most it draws (kW); None where the vehicle does not say."""

    energy_to_charge_kwh: float | None
    departure: datetime | None
    max_power_kw: float | None


def needs(vehicle: VehicleRecord) -> VehicleNeeds:
    """The energy from its state of charge to its target, with its departure and power."""
    energy = None
    if vehicle.battery_capacity_kwh is not None:
        missing = max(0.0, vehicle.target_state_of_charge - vehicle.state_of_charge)
        energy = vehicle.battery_capacity_kwh * missing / 100.0
    return VehicleNeeds(energy, vehicle.departure_time, vehicle.max_charging_power_kw)


class Vehicles:
    """Create, change and list vehicles; answer `needs_of` from memory."""

    def __init__(self, store: Store, clock: Clock, replan: Replan | None = None) -> None:
        self._store = store
        self._clock = clock
        self._replan = replan or (lambda trigger: None)
        self._known: dict[str, VehicleRecord] = {}
        self.on_needs_changed: list[NeedsChanged] = []

    async def _needs_changed(self, vehicle_uuid: str) -> None:
        for listener in self.on_needs_changed:
            await listener(vehicle_uuid)
        self._replan("vehicle_change")

    async def load(self) -> None:
        """Read every vehicle (once, at start)."""
        self._known = {v.uuid: v for v in await self._store.all_vehicles()}

    def needs_of(self, vehicle_uuid: str | uuid.UUID) -> VehicleNeeds | None:
        """The needs of the vehicle, or None if there is no such vehicle."""
        vehicle = self._known.get(str(vehicle_uuid))
        return None if vehicle is None else needs(vehicle)

    def exists(self, vehicle_uuid: str) -> bool:
        return vehicle_uuid in self._known

    async def get(self, vehicle_uuid: str) -> VehicleRecord | None:
        return self._known.get(vehicle_uuid)

    async def list(self, query: VehicleQuery, limit: int,
                   offset: int) -> tuple[list[VehicleRecord], int]:
        """One page of the matching vehicles (in SQL), and how many match."""
        return await self._store.list_vehicles(query, limit, offset)

    async def create(self, fields: dict[str, Any]) -> VehicleRecord:
        """A new vehicle from `fields` (VehicleRecord names; `name` required)."""
        now = self._clock.now()
        vehicle = VehicleRecord(uuid=str(uuid.uuid4()), created_at=now, updated_at=now,
                                **fields)
        await self._store.save_vehicle(vehicle)
        self._known[vehicle.uuid] = vehicle
        return vehicle

    async def update(self, vehicle_uuid: str, changes: dict[str, Any]) -> VehicleRecord | None:
        """The vehicle with `changes` applied (None: no such vehicle); a changed need
        re-plans, so a session of this vehicle is planned for it at once."""
        old = self._known.get(vehicle_uuid)
        if old is None:
            return None
        vehicle = replace(old, **changes, updated_at=self._clock.now())
        await self._store.save_vehicle(vehicle)
        self._known[vehicle_uuid] = vehicle
        if needs(old) != needs(vehicle):
            await self._needs_changed(vehicle_uuid)
        return vehicle

    async def delete(self, vehicle_uuid: str) -> VehicleRecord | None:
        """Delete the vehicle; it is returned (None if there was none)."""
        old = self._known.get(vehicle_uuid)
        if old is None or not await self._store.delete_vehicle(vehicle_uuid):
            return None
        del self._known[vehicle_uuid]
        await self._needs_changed(vehicle_uuid)
        return old
