"""Smart charging as the station applies it: installing and clearing profiles, composites.

The profile rules themselves (validity, stacking, composite periods) are in
`simulators.smart`; this is the station's side of them: what it refuses, what it reports as
profile events, and its physics advanced to the instant a limit changes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from simulators import smart
from simulators.clock import Clock
from simulators.physics import Physics
from simulators.records import Conn, Payload, ProfileEvent


class SmartCharging:
    """The profiles one station holds, changed as the central system asks."""

    def __init__(
        self,
        *,
        cp_id: str,
        version: str,
        clock: Clock,
        conns: dict[int, Conn],
        profiles: smart.ProfileStore,
        physics: Physics,
        mode: str,
        voltage_v: float,
        max_stack_level: int,
        max_periods: int,
        max_profiles: int,
        accepted_units: tuple[str, ...],
        smart_enabled: Callable[[], bool],
        emit: Callable[[ProfileEvent], None],
    ) -> None:
        self.cp_id = cp_id
        self.version = version
        self.v16 = version == "1.6"
        self.clock = clock
        self.conns = conns
        self.profiles = profiles
        self.physics = physics
        self.mode = mode
        self.voltage_v = voltage_v
        self.max_stack_level = max_stack_level
        self.max_periods = max_periods
        self.max_profiles = max_profiles
        self.accepted_units = accepted_units
        self.smart_enabled = smart_enabled
        self.emit = emit

    def profile_event(self, kind: str, p: smart.Profile, now: datetime, reason: str = "") -> None:
        """Report an installed, cleared or rejected profile."""
        purpose_names = smart.PURPOSE_TO_V16 if self.v16 else smart.PURPOSE_TO_V201
        self.emit(ProfileEvent(
            kind=kind,
            cp_id=self.cp_id,
            connector=p.connector,
            profile_id=p.id,
            purpose=purpose_names.get(p.purpose, p.purpose),
            stack_level=p.stack_level,
            at=now,
            reason=reason or None,
        ))

    def set_profile(self, profile: smart.Profile, now: datetime) -> str | None:
        """Validate and install; return None if accepted or the reasonCode of the refusal."""
        try:
            if self.mode == "reject_profiles" or not self.smart_enabled():
                raise smart.ProfileError("NotSupported", "profiles refused by this charger")
            smart.validate_profile(
                profile,
                version=self.version,
                max_stack_level=self.max_stack_level,
                max_periods=self.max_periods,
                allowed_units=self.accepted_units,
            )
            if profile.connector != 0 and profile.connector not in self.conns:
                raise smart.ProfileError("UnknownEVSE", f"no connector {profile.connector}")
            if profile.purpose == smart.TX:
                c = self.conns[profile.connector]
                if c.tx is None:
                    raise smart.ProfileError("TxNotFound", "no transaction on connector")
                current = c.tx.transaction_id
                if profile.transaction_id is None and not self.v16:
                    raise smart.ProfileError("TxNotFound", "TxProfile without transactionId")
                if profile.transaction_id is not None and (
                    current is None or str(current) != profile.transaction_id
                ):
                    raise smart.ProfileError("TxNotFound", "transactionId does not match")
            if (
                not self.v16
                and profile.purpose == smart.TXDEFAULT
                and any(
                    p.purpose == smart.TXDEFAULT
                    and p.id != profile.id
                    and p.stack_level == profile.stack_level
                    and (p.connector == 0) != (profile.connector == 0)
                    for p in self.profiles.profiles.values()
                )
            ):
                # K01.FR.52/53: the same stack level on EVSE 0 and on one EVSE is ambiguous.
                raise smart.ProfileError("DuplicateProfile", "TxDefaultProfile on 0 and EVSE")
            self.physics.advance(now)  # the old limits hold up to this instant
            replaced = self.profiles.install(profile, version=self.version)
            if len(self.profiles) > self.max_profiles:
                del self.profiles.profiles[profile.id]
                for old in replaced:
                    self.profiles.profiles[old.id] = old
                raise smart.ProfileError("InvalidProfile", "too many profiles installed")
        except smart.ProfileError as err:
            self.profile_event("rejected", profile, now, err.reason)
            return err.reason
        for old in replaced:
            if old.id != profile.id:
                self.profile_event("cleared", old, now, "replaced")
        self.profile_event("installed", profile, now)
        self.physics.refresh_draws(now)
        self.physics.wake.set()
        return None

    def clear_profiles(
        self,
        *,
        profile_id: int | None,
        connector: int | None,
        purpose: str | None,
        stack_level: int | None,
    ) -> bool:
        """Clear the profiles that match every criterion given; True if any was."""
        now = self.clock.now()
        self.physics.advance(now)
        removed = self.profiles.clear(
            profile_id=profile_id, connector=connector, purpose=purpose, stack_level=stack_level
        )
        for p in removed:
            self.profile_event("cleared", p, now)
        if removed:
            self.physics.refresh_draws(now)
            self.physics.wake.set()
        return bool(removed)

    def tx_ended(self, connector: int, now: datetime) -> None:
        """A TxProfile lives only as long as its transaction (1.6 3.13.4, 2.0.1 K01.FR.05)."""
        for p in self.profiles.clear(connector=connector, purpose=smart.TX):
            self.profile_event("cleared", p, now)

    def composite(
        self, connector: int, duration: int, unit: str | None
    ) -> tuple[datetime, str, list[smart.Period]]:
        """The composite schedule of `connector` (0: the station) from now for `duration` s."""
        now = self.clock.now()
        start = now.replace(microsecond=0)
        c = self.conns.get(connector)
        tx_id, tx_start = c.tx_key() if c is not None else (None, None)
        rel_start = tx_start or start
        if unit is None:
            lim = None
            if c is not None:
                found = self.profiles.connector_limits(
                    connector, start, tx_id=tx_id, tx_start=rel_start
                )
                lim = found[-1] if found else None
            lim = lim or self.profiles.station_limit(start)
            unit = lim.unit if lim is not None else "A"
        phases = (
            min(c.phases, c.ev.phases) if c is not None and c.ev is not None
            else (c.phases if c is not None else max(x.phases for x in self.conns.values()))
        )

        def evaluate(at: datetime) -> tuple[float, int | None]:
            if c is None:
                watts = sum(
                    x.max_current_a * self.voltage_v * x.phases for x in self.conns.values()
                )
            else:
                watts = c.max_current_a * self.voltage_v * phases
                for lim in self.profiles.connector_limits(
                    connector, at, tx_id=tx_id, tx_start=rel_start
                ):
                    watts = min(watts, smart.to_watts(lim, phases, self.voltage_v))
            station = self.profiles.station_limit(at)
            if station is not None:
                watts = min(watts, smart.to_watts(station, phases, self.voltage_v))
            value = smart.from_watts(watts, unit, phases, self.voltage_v)
            return round(value, 1), (phases if unit == "A" else None)

        tx_starts = self.physics.tx_starts()
        if c is not None and tx_starts.get(c.id) is None:
            tx_starts[c.id] = rel_start
        marks = self.profiles.boundaries(start, start + timedelta(seconds=duration), tx_starts)
        return start, unit, smart.composite_periods(evaluate, start, duration, marks)

    def composite_json(self, connector: int, p: Payload) -> tuple[datetime, str, list[Payload]]:
        """`composite` for a GetCompositeSchedule request: periods as OCPP JSON."""
        start, unit, periods = self.composite(connector, int(p["duration"]),
                                              p.get("chargingRateUnit"))
        return start, unit, [period_json(x) for x in periods]


def period_json(period: smart.Period) -> Payload:
    """A ChargingSchedulePeriod as OCPP JSON (the same in 1.6 and 2.0.1)."""
    out: Payload = {"startPeriod": period.start_s, "limit": period.limit}
    if period.number_phases is not None:
        out["numberPhases"] = period.number_phases
    return out
