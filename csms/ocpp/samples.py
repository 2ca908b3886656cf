"""Meter-value samples of both versions turned into domain Samples, defaults applied.

Only physically possible values become Samples (issue 11, "only plausible input steers the
plan"): a value that is not a finite number (1.6 "1e309", "inf", "nan"; a 2.0.1 value whose
multiplier overflows) is dropped, since SQLite cannot read it back and the planner would count
it as load. A negative import power or current is clamped to 0 (meter noise around an idle
car: "draws nothing" is what it means); a negative energy register is dropped (a register
counts up from its installation: no value of it can be read as true).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import structlog

from csms.clock import parse_iso
from csms.domain import Sample

log = structlog.get_logger("csms.ocpp.samples")
DEFAULT_MEASURAND = "Energy.Active.Import.Register"
# Imports that cannot be negative; a small negative reading is an idle meter's noise.
CLAMPED_AT_ZERO = frozenset({"Power.Active.Import", "Current.Import"})


def _cp_id() -> str | None:
    # The connection binds the charger's id around each message it handles.
    return structlog.contextvars.get_contextvars().get("cp_id")


def plausible_value(measurand: str, value: float) -> float | None:
    """`value` as it may be stored and planned with, or None to drop it (logged)."""
    if not math.isfinite(value):
        log.warning("sample_not_finite", cp_id=_cp_id(), measurand=measurand, value=str(value))
        return None
    if value >= 0:
        return value
    if measurand in CLAMPED_AT_ZERO:
        log.info("sample_negative_clamped", cp_id=_cp_id(), measurand=measurand, value=value)
        return 0.0
    if measurand.endswith(".Register"):
        log.warning("sample_negative_dropped", cp_id=_cp_id(), measurand=measurand, value=value)
        return None
    # Exports, reactive power, power factor, signed offsets: negative can be true.
    return value


def _sample(ts: datetime, sv: dict[str, Any], value: float, unit: str | None) -> Sample:
    return Sample(
        timestamp=ts,
        measurand=sv.get("measurand") or DEFAULT_MEASURAND,
        value=value,
        unit=unit,
        phase=sv.get("phase"),
        context=sv.get("context") or "Sample.Periodic",
        location=sv.get("location") or "Outlet",
    )


def samples_v16(meter_values: list[dict[str, Any]]) -> tuple[Sample, ...]:
    """1.6 MeterValue list (values are strings) into Samples; signed data is skipped, logged;
    implausible values are dropped or clamped (see the module's docstring)."""
    out: list[Sample] = []
    for mv in meter_values:
        ts = parse_iso(mv["timestamp"])
        for sv in mv.get("sampledValue", []):
            measurand = sv.get("measurand") or DEFAULT_MEASURAND
            try:
                read = float(sv["value"])
            except ValueError:
                log.warning("sample_not_numeric", cp_id=_cp_id(), format=sv.get("format"),
                            measurand=sv.get("measurand"))
                continue
            value = plausible_value(measurand, read)
            if value is None:
                continue
            unit = sv.get("unit") or ("Wh" if measurand.startswith("Energy") else None)
            out.append(_sample(ts, sv, value, unit))
    return tuple(out)


def _scaled(value: Any, multiplier: Any) -> float:
    """`value` x 10^`multiplier`; inf (dropped by the caller) when it cannot be a float."""
    try:
        return float(value) * 10.0 ** multiplier
    except OverflowError:  # 10.0**400, or a JSON integer beyond a float
        return math.inf


def samples_v201(meter_values: list[dict[str, Any]]) -> tuple[Sample, ...]:
    """2.0.1 MeterValue list (numeric values, unit with a power-of-ten multiplier) into Samples;
    implausible values are dropped or clamped (see the module's docstring)."""
    out: list[Sample] = []
    for mv in meter_values:
        ts = parse_iso(mv["timestamp"])
        for sv in mv.get("sampledValue", []):
            uom = sv.get("unitOfMeasure") or {}
            measurand = sv.get("measurand") or DEFAULT_MEASURAND
            value = plausible_value(measurand, _scaled(sv["value"], uom.get("multiplier", 0)))
            if value is None:
                continue
            unit = uom.get("unit") or ("Wh" if measurand.startswith("Energy") else None)
            out.append(_sample(ts, sv, value, unit))
    return tuple(out)
