"""Line currents as phasors: the exact currents of a plan on each line, and safe linear rows.

On a line, loads' currents add as phasors. A connector's current on grid line p is its power
times a fixed complex coefficient (A per W) that its wiring implies, with the grid's phase
voltages at 0, -120 and +120 degrees (lines 1, 2, 3):

* line to neutral on p: the angle of p;
* line to line between p and q (AC_phase1 on two phases, as at 208 V sites): the angle of the
  p-q voltage on line p and the opposite on line q (so I_A = I_AB - I_CA: two equal balanced
  line-to-line loads give sqrt(3) I on their shared line, not 2 I);
* three phases (wye or delta, balanced): each line its own angle, whatever the connector's
  rotation (a balanced load draws in phase with each line's voltage).

A mirrored (negative-sequence) site has every angle negated, which changes no magnitude, so the
rows below hold for either rotation. A power factor below 1 makes a current lag by up to
acos(pf); not knowing whether a charger's pf is displacement or distortion, a term's angle is
taken anywhere in [angle - acos(pf), angle], and the rows hold for any angle in it.

Safety with limits, not draws: the plan grants caps, and each car draws anything from 0 to its
cap. So a row must hold for every draw below the grants, not only at them: the currents reach
the zonotope {sum_k x_k w_k : 0 <= x_k <= g_k}, whose extent in direction phi is
sum_k g_k |w_k| max(0, cos(angle_k - phi)). That is why a term never counts negatively
(a balancing load may stop drawing at any time): every row has non-negative coefficients, and
everything that consumes rows (fill, admission, rounding, CP-SAT, floors, lower-before-raise)
stays correct unchanged.

Linearisation: every term of a line lies in a cone (the smallest arc holding every term's
angle interval). Over that arc we put m points on the circle of radius L, at most 360/K
degrees apart, and one row per chord between neighbours: the polygon 0, L e^{j a_0}, ...,
L e^{j a_m} is inside the circle (never over) and reaches at least L cos(pi/K) in every
direction of the cone (exactly L at the chord ends), so the plan's feasible set holds
cos(pi/K) times the exact one. K = 24 (chords of at most 15 degrees): >= 99.14 % of the exact
limit, and a line with line-to-line and line-to-neutral loads (a 60 degree arc at unity pf)
gets 4 rows instead of 1. A cone of 180 degrees or more (only with odd power factors or a
transformer's primary) uses the regular K-gon, facets at L cos(pi/K). A line whose terms all
share one angle interval keeps the arithmetic row (sum of magnitudes <= L): exact there.

A delta-wye transformer (any Dyn vector group): each primary line carries the difference of
two secondary line currents, scaled by the turns ratio, V_s / (sqrt(3) V_p) with both
line-to-line nameplate voltages; the secondary's neutral current does not reach the primary.
The three primary lines are the three pairwise differences, whatever the vector group.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loadmgmt.units import is_ac

if TYPE_CHECKING:
    from loadmgmt.model import Connector
    from loadmgmt.network import Network

FACETS = 24  # K: chords of at most 360/K degrees; rows reach >= cos(pi/K) of the limit
LINES: tuple[str, str, str] = ("L1", "L2", "L3")
PRIMARY_LINES: tuple[str, str, str] = ("P12", "P23", "P31")
_ANGLE = {1: 0.0, 2: -2.0 * math.pi / 3.0, 3: 2.0 * math.pi / 3.0}
_TINY = 1e-12  # coefficients (A per W, ~1e-3) below this are float noise of cos(90 deg)

# A line's term: (connector index, A per W at unity pf as a phasor, lag in radians)
Term = tuple[int, complex, float]


def unit(phase: int) -> complex:
    """The unit phasor of grid phase 1, 2 or 3's line-to-neutral voltage."""
    return cmath.rect(1.0, _ANGLE[phase])


def connector_phasors(c: Connector, grid_voltage_v: float) -> dict[int, complex]:
    """A connector's current on each grid line per watt, as a phasor at unity power factor."""
    per = c.amps_per_w(grid_voltage_v)
    phases = tuple(dict.fromkeys(c.phases))
    if len(phases) == 2:
        p, q = phases
        v = unit(p) - unit(q)
        u = v / abs(v)
        return {p: per[p] * u, q: -per[q] * u}
    return {p: per[p] * unit(p) for p in phases}


def lag(c: Connector) -> float:
    """How far (radians) the connector's current may lag its unity-pf angle: acos(pf)."""
    if not is_ac(c.current_type):
        return 0.0
    return math.acos(max(0.0, min(1.0, c.power_factor)))


def transformer_ratio(primary_v: float, secondary_v: float) -> float:
    """Primary line amps per amp of secondary line-current difference (delta-wye, LL volts)."""
    return secondary_v / (math.sqrt(3.0) * primary_v)


def primary_phasors(lines: Mapping[int, complex], ratio: float) -> dict[str, complex]:
    """A connector's current on each primary line of a delta-wye transformer, per watt."""
    out: dict[str, complex] = {}
    for name, (p, q) in zip(PRIMARY_LINES, ((1, 2), (2, 3), (3, 1)), strict=True):
        w = (lines.get(p, 0j) - lines.get(q, 0j)) * ratio
        if abs(w) > _TINY:
            out[name] = w
    return out


@dataclass(frozen=True, slots=True)
class Facet:
    """One linear row of a line: sum_k g_k coef_k(angle) <= scale * L.

    `angle` None: the arithmetic row (every coefficient is the term's magnitude)."""

    angle: float | None
    scale: float


def _wrap(x: float) -> float:
    """An angle in (-pi, pi]."""
    y = math.remainder(x, 2.0 * math.pi)
    return math.pi if y == -math.pi else y


def coefficient(w: complex, lag_rad: float, facet: Facet) -> float:
    """How much one watt of the term can add along the facet's normal (never negative)."""
    mag = abs(w)
    if facet.angle is None:
        return mag
    d = _wrap(facet.angle - cmath.phase(w))  # the normal, seen from the unity-pf angle
    if -lag_rad <= d <= 0.0:
        best = 1.0
    else:
        best = max(math.cos(d), math.cos(d + lag_rad))
    c = mag * best
    return c if c > _TINY else 0.0


def facets(arcs: Iterable[tuple[complex, float]], k: int = FACETS) -> list[Facet]:
    """The rows that keep a line's current phasor within its limit, for terms with these
    (phasor, lag) pairs: chords over the smallest arc holding them (see the module doc)."""
    shapes = {(cmath.phase(w), lg) for w, lg in arcs if abs(w) > _TINY}
    if not shapes:
        return []
    if len(shapes) == 1:
        return [Facet(None, 1.0)]
    ends = sorted({_wrap(a) for a, lg in shapes} | {_wrap(a - lg) for a, lg in shapes})
    if len(ends) == 1:
        return [Facet(None, 1.0)]
    # The largest gap between neighbouring end angles is what the cone leaves out.
    gaps = [(ends[(j + 1) % len(ends)] - ends[j]) % (2.0 * math.pi) for j in range(len(ends))]
    j = max(range(len(gaps)), key=lambda n: (gaps[n], -n))
    width = 2.0 * math.pi - gaps[j]
    step = 2.0 * math.pi / k
    if width >= math.pi - 1e-9:
        return [Facet(n * step, math.cos(math.pi / k)) for n in range(k)]
    start = ends[(j + 1) % len(ends)]
    m = max(1, math.ceil(width / step - 1e-9))
    chord = width / m
    return [Facet(_wrap(start + (n + 0.5) * chord), math.cos(chord / 2.0)) for n in range(m)]


def facet_rows(terms: Sequence[Term], k: int = FACETS
               ) -> list[tuple[Facet, tuple[tuple[int, float], ...]]]:
    """Each facet of a line with its members (connector index, coefficient per W > 0)."""
    out: list[tuple[Facet, tuple[tuple[int, float], ...]]] = []
    for facet in facets(((w, lg) for _i, w, lg in terms), k):
        cache: dict[tuple[complex, float], float] = {}
        members: list[tuple[int, float]] = []
        for i, w, lg in terms:
            c = cache.get((w, lg))
            if c is None:
                c = cache[(w, lg)] = coefficient(w, lg, facet)
            if c > 0.0:
                members.append((i, c))
        if members:
            out.append((facet, tuple(members)))
    return out


def line_currents(net: Network, consumption_w: Sequence[float], *, lag_fraction: float = 1.0
                  ) -> dict[str, tuple[float, float, float]]:
    """The exact current (A) on lines 1, 2, 3 of every node for these per-connector draws.

    Each connector's current lags by `lag_fraction` times acos(pf) (1: all displacement)."""
    phasors = _drawn(net, consumption_w, lag_fraction)
    out: dict[str, tuple[float, float, float]] = {}
    for node, members in net.node_members.items():
        acc = [0j, 0j, 0j]
        for i in members:
            for p, z in phasors[i].items():
                acc[p - 1] += z
        out[node] = (abs(acc[0]), abs(acc[1]), abs(acc[2]))
    return out


def primary_currents(net: Network, consumption_w: Sequence[float], *,
                     lag_fraction: float = 1.0) -> tuple[float, float, float] | None:
    """The exact primary line currents (A) of the site's delta-wye transformer, if any."""
    site = net.site
    if site.transformer is None:
        return None
    assert site.transformer_primary_v and site.transformer_secondary_v
    ratio = transformer_ratio(site.transformer_primary_v, site.transformer_secondary_v)
    phasors = _drawn(net, consumption_w, lag_fraction)
    acc = [0j, 0j, 0j]
    for i in net.node_members.get(site.id, ()):
        for p, z in phasors[i].items():
            acc[p - 1] += z
    i1, i2, i3 = acc
    return (abs(i1 - i2) * ratio, abs(i2 - i3) * ratio, abs(i3 - i1) * ratio)


def _drawn(net: Network, consumption_w: Sequence[float], lag_fraction: float
           ) -> list[dict[int, complex]]:
    volts = net.site.grid_voltage_v
    out: list[dict[int, complex]] = []
    for c, w in zip(net.connectors, consumption_w, strict=True):
        turn = cmath.rect(1.0, -lag(c) * lag_fraction)
        out.append({p: z * w * turn for p, z in connector_phasors(c, volts).items()})
    return out
