"""The parts of a charging profile that OCPP 1.6 and 2.0.1 spell alike."""

from __future__ import annotations

from typing import Any

from csms.clock import iso
from loadmgmt.profiles import ChargingProfile

Payload = dict[str, Any]


def schedule_fields(profile: ChargingProfile) -> Payload:
    """chargingRateUnit, periods, startSchedule, duration and minChargingRate."""
    s = profile.schedule
    periods = []
    for p in s.periods:
        period: Payload = {"startPeriod": p.start_period, "limit": p.limit}
        if p.number_phases is not None and profile.send_number_phases:
            period["numberPhases"] = p.number_phases
        periods.append(period)
    out: Payload = {"chargingRateUnit": s.unit, "chargingSchedulePeriod": periods}
    if s.start is not None:
        out["startSchedule"] = iso(s.start)
    if s.duration is not None:
        out["duration"] = s.duration
    if s.min_charging_rate is not None:
        out["minChargingRate"] = round(s.min_charging_rate, 1)
    return out


def profile_fields(profile: ChargingProfile) -> Payload:
    """stackLevel, purpose, kind, and validity."""
    out: Payload = {
        "stackLevel": profile.stack_level,
        "chargingProfilePurpose": profile.purpose,
        "chargingProfileKind": profile.kind,
    }
    if profile.valid_from is not None:
        out["validFrom"] = iso(profile.valid_from)
    if profile.valid_to is not None:
        out["validTo"] = iso(profile.valid_to)
    return out
