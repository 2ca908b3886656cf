"""Power <-> current conversion: P = PCF x PF x I x V / 1000 (DESIGN section 3, "Units")."""

from __future__ import annotations

import math
from enum import StrEnum


class CurrentType(StrEnum):
    """How a connector draws power (Ampcontrol `currentType`)."""

    DC = "DC"
    AC_PHASE1 = "AC_phase1"
    AC_PHASE3_LN = "AC_phase3_LN"
    AC_PHASE3_LL = "AC_phase3_LL"


SQRT3 = math.sqrt(3.0)


def pcf(current_type: CurrentType) -> float:
    """Phase conversion factor: 1 for DC and single phase, sqrt(3) for L-L, 3 for L-N."""
    if current_type is CurrentType.AC_PHASE3_LL:
        return SQRT3
    if current_type is CurrentType.AC_PHASE3_LN:
        return 3.0
    return 1.0


def is_ac(current_type: CurrentType) -> bool:
    """True for the three AC current types."""
    return current_type is not CurrentType.DC


def amps_to_kw(
    current_a: float, current_type: CurrentType, voltage_v: float, power_factor: float = 1.0
) -> float:
    """Power in kW drawn at `current_a` per phase (per line for L-L, DC current for DC)."""
    return pcf(current_type) * power_factor * current_a * voltage_v / 1000.0


def kw_to_amps(
    power_kw: float, current_type: CurrentType, voltage_v: float, power_factor: float = 1.0
) -> float:
    """Current per phase (or DC current) that draws `power_kw`."""
    denom = pcf(current_type) * power_factor * voltage_v
    if denom <= 0:
        raise ValueError("voltage and power factor must be positive")
    return power_kw * 1000.0 / denom


def amps_to_w(
    current_a: float, current_type: CurrentType, voltage_v: float, power_factor: float = 1.0
) -> float:
    """Like `amps_to_kw` but in watts."""
    return amps_to_kw(current_a, current_type, voltage_v, power_factor) * 1000.0


def w_to_amps(
    power_w: float, current_type: CurrentType, voltage_v: float, power_factor: float = 1.0
) -> float:
    """Like `kw_to_amps` but from watts."""
    return kw_to_amps(power_w / 1000.0, current_type, voltage_v, power_factor)
