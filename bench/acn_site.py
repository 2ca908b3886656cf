"""The Caltech ACN garage as a Loadstar site: 54 single-phase EVSEs wired line to line at
208 V on a three-phase transformer, two 80 A pods (as published with ACN-Sim's site model).

Line currents: an EVSE wired A-B draws I on line A and -I on line B (120 V x sqrt(3) = 208 V
between them). `exact_line_currents` adds them as phasors (what the transformer sees);
`wiring="arithmetic"` plans on the conservative sum of magnitudes.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Iterable, Mapping
from dataclasses import fields

from loadmgmt.model import Connector, Group, Site
from loadmgmt.units import CurrentType

VOLTS = 208.0
PRIMARY_V = 480.0  # line to line (277 V to neutral)
EVSE_A = 32.0
POD_A = 80.0
CC_POD = ["CA-322", "CA-493", "CA-496", "CA-320", "CA-495", "CA-321", "CA-323", "CA-494"]
AV_POD = ["CA-324", "CA-325", "CA-326", "CA-327", "CA-489", "CA-490", "CA-491", "CA-492"]
AB = [f"CA-{n}" for n in (308, 508, 303, 513, 310, 506, 316, 500, 318, 498)] + AV_POD + CC_POD
BC = [f"CA-{n}" for n in (304, 512, 305, 511, 313, 503, 311, 505, 317, 499, 148, 149, 212, 213)]
CA = [f"CA-{n}" for n in (307, 509, 309, 507, 306, 510, 315, 501, 319, 497, 312, 504, 314, 502)]
# Grid phases per line pair, and the angle of the line-to-line voltage (A-B leads by 30°).
PAIRS: dict[str, tuple[tuple[int, int], float]] = {
    "AB": ((1, 2), 30.0), "BC": ((2, 3), -90.0), "CA": ((3, 1), 150.0)}


def pair_of(station: str) -> str:
    """Which two lines an EVSE is wired across."""
    return "AB" if station in AB else "BC" if station in BC else "CA"


def line_limit_a(transformer_kw: float) -> float:
    """Secondary line current a transformer of `transformer_kw` allows (120 V to neutral)."""
    return transformer_kw * 1000.0 / 3 / 120.0


def primary_limit_a(transformer_kw: float) -> float:
    """Primary line current a transformer of `transformer_kw` allows (277 V to neutral)."""
    return transformer_kw * 1000.0 / 3 / (PRIMARY_V / math.sqrt(3))


def site_model(transformer_kw: float, *, wiring: str = "arithmetic",
               objective: str = "load_sharing") -> tuple[Site, tuple[Connector, ...],
                                                         tuple[Group, ...]]:
    """Site (transformer kW and line current), pods as groups, one connector per EVSE."""
    extra: dict[str, object] = {}
    if wiring != "arithmetic":
        if "wiring" not in {f.name for f in fields(Site)}:
            raise SystemExit(f"--wiring {wiring}: this Site has no wiring field yet "
                             "(the phasor constraints are on another branch)")
        # The exact rows can also hold the transformer's primary (277 V to neutral, as in the
        # published site model); arithmetic rows cannot express it (the kW row stands in).
        extra.update(wiring=wiring, transformer="delta_wye",
                     transformer_primary_a=primary_limit_a(transformer_kw),
                     transformer_primary_v=PRIMARY_V, transformer_secondary_v=VOLTS)
    site = Site("caltech", max_power_kw=transformer_kw, max_current_a=line_limit_a(transformer_kw),
                buffer=0.0, floors="zero", objective=objective,  # type: ignore[arg-type]
                min_power_kw=1.0, **extra)  # type: ignore[arg-type]
    groups = (Group("AV-pod", "caltech", max_current_a=POD_A),
              Group("CC-pod", "caltech", max_current_a=POD_A))
    conns = []
    for station in AB + BC + CA:
        parent = "AV-pod" if station in AV_POD else "CC-pod" if station in CC_POD else "caltech"
        conns.append(Connector(f"{station}/1", station, parent, CurrentType.AC_PHASE1, VOLTS,
                               phases=PAIRS[pair_of(station)][0],
                               max_power_kw=EVSE_A * VOLTS / 1000.0, max_current_a=EVSE_A))
    return site, tuple(conns), groups


def exact_line_currents(power_w: Mapping[str, float]) -> tuple[float, float, float]:
    """RMS current on lines A, B, C for each station's power (phasor sums, unity PF)."""
    a, b, c = _line_phasors(power_w)
    return abs(a), abs(b), abs(c)


def _line_phasors(power_w: Mapping[str, float]) -> tuple[complex, complex, complex]:
    pair_current: dict[str, complex] = {}
    for station, w in power_w.items():
        pair = pair_of(station)
        phase = math.radians(PAIRS[pair][1])
        pair_current[pair] = pair_current.get(pair, 0j) + cmath.rect(w / VOLTS, phase)
    ab, bc, ca = (pair_current.get(p, 0j) for p in ("AB", "BC", "CA"))
    return ab - ca, bc - ab, ca - bc


def exact_primary_currents(power_w: Mapping[str, float]) -> tuple[float, float, float]:
    """RMS current on the delta-wye transformer's primary lines (secondary line differences
    times the turns ratio)."""
    a, b, c = _line_phasors(power_w)
    ratio = VOLTS / (math.sqrt(3) * PRIMARY_V)
    return abs(a - b) * ratio, abs(b - c) * ratio, abs(c - a) * ratio


def stations(ids: Iterable[str]) -> set[str]:
    """The station ids known to the model among `ids`."""
    known = set(AB + BC + CA)
    return {s for s in ids if s in known}
