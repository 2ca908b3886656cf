"""A site declared with `wiring = "phasor"`, end to end: the real server plans three 208 V
line-to-line chargers (one on each pair of lines) on the exact line currents, and the cars'
actual draw, as phasors, never takes a line over its limit."""

from __future__ import annotations

import cmath
import math
from pathlib import Path

from csms.config import ChargerSpec, SiteSpec
from tests.e2e.test_load_management import big_ev, running_site, site_config

LIMIT_A = 40.0
BUFFER = 0.02
VOLTS = 208.0
PAIRS = {"AB": (1, 2), "BC": (2, 3), "CA": (3, 1)}
_ANGLE = {1: 0.0, 2: -2 * math.pi / 3, 3: 2 * math.pi / 3}


def line_amps(draws: dict[str, float]) -> list[float]:
    """Each line's current for these draws (W) of the chargers named by their pair."""
    acc = [0j, 0j, 0j]
    for cp_id, w in draws.items():
        p, q = PAIRS[cp_id[:2]]
        v = cmath.rect(1, _ANGLE[p]) - cmath.rect(1, _ANGLE[q])
        i = w / VOLTS * v / abs(v)  # in phase with the p-q voltage, + on p, - on q
        acc[p - 1] += i
        acc[q - 1] -= i
    return [abs(z) for z in acc]


async def test_line_to_line_chargers_on_a_phasor_site_share_the_exact_line_limit(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    config.sites = [SiteSpec(id="site", max_power_kw=100.0, max_current_a=LIMIT_A,
                             buffer=BUFFER, wiring="phasor", chargers=["*"])]
    config.chargers = [ChargerSpec(match=f"{pair}*", current_type="AC_phase1", voltage_v=VOLTS,
                                   phases=list(phases), max_power_kw=19.2, max_current_a=80.0)
                       for pair, phases in PAIRS.items()]
    limit = LIMIT_A * (1 - BUFFER)
    # Adding magnitudes, two chargers share each line: 3 x limit/2 x 208 V at most.
    arithmetic_w = 3 * limit / 2 * VOLTS
    exact_w = math.sqrt(3) * limit * VOLTS
    async with running_site(config) as site:
        chargers = [await site.add(f"{pair}1", "ocpp2.0.1", voltage_v=VOLTS, phases=1,
                                   max_power_kw=19.2) for pair in PAIRS]
        await site.run_for(30)
        for c in chargers:
            await c.plug_in(1, big_ev(19.2))
        await site.until(lambda: site.total_w() > 1.05 * arithmetic_w, 600)
        await site.run_for(60)
        assert site.total_w() <= exact_w + 1.0
        # Every instant any connector's draw changed: the lines as phasors stay within.
        logs = {c.cp_id: c.draw_log(1) for c in chargers}
        instants = sorted({at for log in logs.values() for at, _ in log})
        for at in instants:
            draws = {cp: next((w for when, w in reversed(log) if when <= at), 0.0)
                     for cp, log in logs.items()}
            assert max(line_amps(draws)) <= limit + 0.01, (at, draws)
