"""The station's physics: what each EV draws under the profiles held, integrated over time.

Energy is integrated exactly between the instants where something changes (a schedule
boundary, an EV filling up) and at most every `MAX_STEP_S` (taper), never on a fixed tick.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from simulators import smart
from simulators.clock import Clock
from simulators.records import Conn

#: Longest simulated step of the physics integration (taper accuracy); see `advance`.
MAX_STEP_S = 30.0
#: How far ahead the engine looks for schedule boundaries before sleeping.
HORIZON_S = 3600.0


class Physics:
    """The connectors' draw and energy registers, advanced to `now` on demand."""

    def __init__(
        self,
        conns: dict[int, Conn],
        clock: Clock,
        profiles: smart.ProfileStore,
        *,
        mode: str,
        voltage_v: float,
        record_draw: bool,
    ) -> None:
        self.conns = conns
        self.clock = clock
        self.profiles = profiles
        self.mode = mode
        self.voltage_v = voltage_v
        self.record_draw = record_draw
        self.t_advanced: datetime | None = None
        #: Set whenever something changes what the engine should do or when it should wake.
        self.wake = asyncio.Event()

    def composite_limit_w(self, connector: int, at: datetime | None = None) -> float:
        """The limit (W) the profiles put on `connector` at `at` (station cap not shared out)."""
        at = at or self.clock.now()
        c = self.conns[connector]
        phases = c.phases_in_use
        tx_id, tx_start = c.tx_key()
        limit = c.max_current_a * self.voltage_v * phases
        for lim in self.profiles.connector_limits(
            c.id, at, tx_id=tx_id, tx_start=tx_start or at
        ):
            limit = min(limit, smart.to_watts(lim, phases, self.voltage_v))
        station = self.profiles.station_limit(at)
        if station is not None:
            limit = min(limit, smart.to_watts(station, phases, self.voltage_v))
        return limit

    def log_power(self, c: Conn, at: datetime, watts: float) -> None:
        """Record a change of the connector's draw (if draws are recorded)."""
        if not self.record_draw:
            return
        if c.draw_log and abs(c.draw_log[-1][1] - watts) < 1e-6:
            return
        if c.draw_log and c.draw_log[-1][0] == at:
            c.draw_log[-1] = (at, watts)
        else:
            c.draw_log.append((at, watts))

    def draws_at(self, at: datetime) -> dict[int, float]:
        """What each connector draws at `at` given the profiles, EVs and station cap."""
        demand: dict[int, float] = {}
        apply = self.mode != "ignore_profiles"
        for c in self.conns.values():
            if c.tx is None or c.ev is None:
                continue
            phases = min(c.phases, c.ev.phases)
            limit = c.max_current_a * self.voltage_v * phases
            if apply:
                tx_id, tx_start = c.tx_key()
                for lim in self.profiles.connector_limits(
                    c.id, at, tx_id=tx_id, tx_start=tx_start
                ):
                    limit = min(limit, smart.to_watts(lim, phases, self.voltage_v))
            demand[c.id] = c.ev.draw_w(limit, self.voltage_v)
        station = self.profiles.station_limit(at) if apply else None
        if station is None or not demand:
            return demand
        ids = [i for i, d in demand.items() if d > 0]
        while ids:
            per_unit = [
                self.voltage_v * min(self.conns[i].phases, self.conns[i].ev.phases)  # type: ignore[union-attr]
                if station.unit == "A"
                else 1.0
                for i in ids
            ]
            # In A the cap is a per-phase current, shared by the currents of the connectors.
            shares = smart.water_fill([demand[i] / u for i, u in zip(ids, per_unit, strict=True)],
                                      station.value)
            granted = {i: s * u for i, s, u in zip(ids, shares, per_unit, strict=True)}
            too_low = [
                i
                for i in ids
                if self.conns[i].ev.draw_w(granted[i], self.voltage_v) <= 0  # type: ignore[union-attr]
            ]
            if not too_low:
                demand.update(granted)
                break
            # An EV offered less than its minimum current pauses; its share goes to the others.
            for i in too_low:
                demand[i] = 0.0
            ids = [i for i in ids if i not in too_low]
        return demand

    def tx_starts(self) -> dict[int, datetime | None]:
        """When each connector's transaction started (None: no transaction)."""
        return {c.id: c.tx.started_at if c.tx else None for c in self.conns.values()}

    def advance(self, now: datetime) -> None:
        """Integrate every EV from the last instant up to `now`.

        Segments end at schedule boundaries, at most every MAX_STEP_S (taper) and when an EV
        fills up, so energy is exact at limit changes rather than tick-quantised.
        """
        t = self.t_advanced
        if t is None:
            self.t_advanced = now
            return
        if now <= t:
            return
        marks = (
            self.profiles.boundaries(t, now, self.tx_starts())
            if self.mode != "ignore_profiles"
            else []
        )
        idx = 0
        while t < now:
            while idx < len(marks) and marks[idx] <= t:
                idx += 1
            seg_end = now
            if idx < len(marks):
                seg_end = min(seg_end, marks[idx])
            seg_end = min(seg_end, t + timedelta(seconds=MAX_STEP_S))
            draws = self.draws_at(t)
            for cid, p in draws.items():
                ev = self.conns[cid].ev
                to_full = ev.seconds_to_full(p) if ev is not None else None
                if to_full is not None:
                    seg_end = min(seg_end, t + timedelta(seconds=max(to_full, 0.001)))
            dt = (seg_end - t).total_seconds()
            for cid, p in draws.items():
                c = self.conns[cid]
                self.log_power(c, t, p)
                c.power_w = p
                if p > 0 and c.ev is not None:
                    wh = c.ev.add_energy(p * dt / 3600.0)
                    c.meter_wh += wh
                    if c.tx is not None:
                        c.tx.energy_wh += wh
            t = seg_end
        self.t_advanced = now
        self.refresh_draws(now)

    def refresh_draws(self, now: datetime) -> None:
        """Set every connector's draw to what it is at `now` (after a change of limits)."""
        draws = self.draws_at(now)
        for c in self.conns.values():
            p = draws.get(c.id, 0.0)
            c.power_w = p
            self.log_power(c, now, p)

    def next_wake(self, now: datetime) -> float:
        """Simulated seconds until the next meter tick, full EV or schedule boundary."""
        until = now + timedelta(seconds=HORIZON_S)
        wake = until
        for c in self.conns.values():
            if c.next_meter_at is not None:
                wake = min(wake, c.next_meter_at)
            if c.ev is not None and c.power_w > 0:
                to_full = c.ev.seconds_to_full(c.power_w)
                if to_full is not None:
                    wake = min(wake, now + timedelta(seconds=to_full))
        if self.mode != "ignore_profiles":
            marks = self.profiles.boundaries(now, wake, self.tx_starts())
            if marks:
                wake = min(wake, marks[0])
        return max(0.0, (wake - now).total_seconds())

    def readings(self, c: Conn, measurands: list[str]) -> list[tuple[str, str | None, float, str]]:
        """(measurand, phase, value, unit) of the meter right now."""
        phases = c.phases_in_use
        out: list[tuple[str, str | None, float, str]] = []
        for m in measurands:
            if m == "Energy.Active.Import.Register":
                out.append((m, None, round(c.meter_wh, 1), "Wh"))
            elif m == "Power.Active.Import":
                out.append((m, None, round(c.power_w, 1), "W"))
            elif m == "Power.Offered":
                offered = self.composite_limit_w(c.id) if c.tx else 0.0
                out.append((m, None, round(offered, 1), "W"))
            elif m == "Current.Import":
                per_phase = c.power_w / (self.voltage_v * phases) if c.power_w else 0.0
                for i, ph in enumerate(("L1", "L2", "L3")):
                    out.append((m, ph, round(per_phase if i < phases else 0.0, 2), "A"))
            elif m == "Current.Offered":
                offered = self.composite_limit_w(c.id) / (self.voltage_v * phases) if c.tx else 0
                out.append((m, None, round(offered, 1), "A"))
            elif m == "Voltage":
                for ph in ("L1-N", "L2-N", "L3-N"):
                    out.append((m, ph, self.voltage_v, "V"))
            elif m == "SoC" and c.ev is not None:
                out.append((m, None, round(c.ev.soc * 100.0, 1), "Percent"))
        return out
