"""Meter-value samples of both versions turned into domain Samples, defaults applied."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from csms.clock import parse_iso
from csms.domain import Sample

log = structlog.get_logger("csms.ocpp.samples")
DEFAULT_MEASURAND = "Energy.Active.Import.Register"


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
    """1.6 MeterValue list (values are strings) into Samples; signed data is skipped, logged."""
    out: list[Sample] = []
    for mv in meter_values:
        ts = parse_iso(mv["timestamp"])
        for sv in mv.get("sampledValue", []):
            try:
                value = float(sv["value"])
            except ValueError:
                log.warning("sample_not_numeric", format=sv.get("format"),
                            measurand=sv.get("measurand"))
                continue
            measurand = sv.get("measurand") or DEFAULT_MEASURAND
            unit = sv.get("unit") or ("Wh" if measurand.startswith("Energy") else None)
            out.append(_sample(ts, sv, value, unit))
    return tuple(out)


def samples_v201(meter_values: list[dict[str, Any]]) -> tuple[Sample, ...]:
    """2.0.1 MeterValue list (numeric values, unit with a power-of-ten multiplier) into Samples."""
    out: list[Sample] = []
    for mv in meter_values:
        ts = parse_iso(mv["timestamp"])
        for sv in mv.get("sampledValue", []):
            uom = sv.get("unitOfMeasure") or {}
            multiplier = uom.get("multiplier", 0)
            measurand = sv.get("measurand") or DEFAULT_MEASURAND
            unit = uom.get("unit") or ("Wh" if measurand.startswith("Energy") else None)
            out.append(_sample(ts, sv, float(sv["value"]) * 10.0**multiplier, unit))
    return tuple(out)
