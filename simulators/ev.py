"""An electric vehicle behind a simulated charger.

The EV takes whatever the charger offers up to its own acceptance, which is its maximum power
until `taper_start_soc` and then falls linearly towards `taper_floor` x max at 100 % (the CV
phase of a Li-ion pack). Like a real AC vehicle (IEC 61851-1) it pauses when the offered
current per phase drops below `min_current_a`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Longest step used when integrating through the taper; the acceptance changes with SoC,
#: so a coarse step would overstate the energy near full.
MAX_INTEGRATION_STEP_S = 30.0


@dataclass
class EV:
    """Battery and on-board charger of one vehicle. `soc` and `target_soc` are fractions 0..1."""

    battery_kwh: float = 60.0
    soc: float = 0.2
    max_power_kw: float = 11.0
    phases: int = 3
    target_soc: float = 1.0
    taper_start_soc: float = 0.8
    taper_floor: float = 0.05
    min_current_a: float = 6.0
    name: str = "EV"
    # An ISO 15118 car tells the charger when it leaves (seconds after plug-in); an OCPP 2.0.1
    # charger passes that on in NotifyEVChargingNeeds with the energy it needs.
    departure_after_s: float | None = None

    def __post_init__(self) -> None:
        if self.phases not in (1, 2, 3):
            raise ValueError("phases must be 1, 2 or 3")
        if not 0.0 <= self.soc <= 1.0 or not 0.0 < self.target_soc <= 1.0:
            raise ValueError("soc and target_soc are fractions in 0..1")
        if self.battery_kwh <= 0 or self.max_power_kw <= 0:
            raise ValueError("battery_kwh and max_power_kw must be positive")

    @property
    def full(self) -> bool:
        """True once the vehicle has reached its target state of charge."""
        return self.soc >= self.target_soc - 1e-9

    @property
    def energy_needed_wh(self) -> float:
        """Energy still needed to reach the target SoC."""
        return max(0.0, (self.target_soc - self.soc) * self.battery_kwh * 1000.0)

    def acceptance_w(self) -> float:
        """Power the vehicle would take right now if offered without limit."""
        if self.full:
            return 0.0
        max_w = self.max_power_kw * 1000.0
        if self.soc <= self.taper_start_soc:
            return max_w
        span = 1.0 - self.taper_start_soc
        factor = (1.0 - self.soc) / span if span > 0 else 0.0
        return max_w * max(self.taper_floor, min(1.0, factor))

    def draw_w(self, offered_w: float, voltage_v: float = 230.0) -> float:
        """Power drawn when the charger offers `offered_w` (W) at `voltage_v` phase voltage."""
        if self.full or offered_w <= 0:
            return 0.0
        # IEC 61851-1: a PWM duty cycle below 6 A tells the car to pause, not to trickle.
        if offered_w < self.min_current_a * voltage_v * self.phases - 1e-6:
            return 0.0
        return min(self.acceptance_w(), offered_w)

    def add_energy(self, wh: float) -> float:
        """Store `wh` in the battery (clipped at the target); return what was actually stored."""
        stored = min(max(0.0, wh), self.energy_needed_wh)
        self.soc = min(1.0, self.soc + stored / (self.battery_kwh * 1000.0))
        if self.energy_needed_wh < 1e-6:
            self.soc = max(self.soc, self.target_soc)
        return stored

    def seconds_to_full(self, power_w: float) -> float | None:
        """Lower bound on the time to full at `power_w` (taper only makes it longer)."""
        if power_w <= 0:
            return None
        return self.energy_needed_wh / power_w * 3600.0

    def charge(self, offered_w: float, seconds: float, voltage_v: float = 230.0) -> float:
        """Charge for `seconds` at an offered power; return the energy taken (Wh).

        Integrates through the taper in short steps; used by tests and simple callers (the
        charger integrates itself so that several connectors can share a station limit).
        """
        energy = 0.0
        remaining = max(0.0, seconds)
        while remaining > 1e-9 and not self.full:
            power = self.draw_w(offered_w, voltage_v)
            if power <= 0:
                break
            step = min(remaining, MAX_INTEGRATION_STEP_S)
            to_full = self.seconds_to_full(power)
            if to_full is not None and to_full < step:
                step = max(to_full, 1e-6)
            energy += self.add_energy(power * step / 3600.0)
            remaining -= step
        return energy
