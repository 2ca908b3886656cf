"""The fleet objective end to end: a 2.0.1 car that says when it leaves (NotifyEVChargingNeeds)
is charged first when it leaves first, within the site limit."""

from __future__ import annotations

from pathlib import Path

from csms.config import SiteSpec
from simulators.ev import EV
from simulators.smart import TX
from tests.e2e.test_load_management import (
    EPS_W,
    FLOOR_W,
    VALIDITY_S,
    running_site,
    site_config,
)

SITE_KW = 25.0
NEED_KWH = 15.0


def leaving_in(hours: float) -> EV:
    """A car that needs NEED_KWH and leaves `hours` after it plugs in."""
    return EV(battery_kwh=100.0, soc=0.5, target_soc=0.5 + NEED_KWH / 100.0, max_power_kw=22.0,
              departure_after_s=hours * 3600)


async def test_fleet_plan_charges_the_car_that_leaves_first_first(tmp_path: Path) -> None:
    config = site_config(tmp_path)
    config.sites = [SiteSpec(id="site", max_power_kw=SITE_KW, objective="fleet",
                             chargers=["*"])]
    async with running_site(config) as site:
        early = await site.add("EARLY", "ocpp2.0.1")
        late = await site.add("LATE", "ocpp2.0.1")
        site.start_sampling()
        await site.run_for(30)
        await late.plug_in(1, leaving_in(8))
        await site.run_for(30)
        await early.plug_in(1, leaving_in(1))
        live = site.server.planner.live
        await site.until(lambda: live.chargers["EARLY"].connectors[1].needs is not None, 30)
        needs = live.chargers["EARLY"].connectors[1].needs
        assert needs is not None and needs.energy_amount_wh == NEED_KWH * 1000
        await site.run_for(120)

        # Load sharing would give the early car the rate it needs (~15.5 kW) and the late one the
        # rest. The fleet plan charges the car that leaves first first: it gets everything but
        # the late car's minimum now, and the late car catches up after the early one is done.
        site_w = SITE_KW * 1000 * (1 - config.sites[0].buffer)
        assert early.current_draw_w(1) >= site_w - FLOOR_W - 300
        assert 0 < late.current_draw_w(1) <= FLOOR_W + 1
        t, peak = site.peak_sample()
        assert peak <= SITE_KW * 1000 + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"
        # A fleet plan spans a day, but what goes out lapses like any TxProfile: if Loadstar
        # died, a day-long schedule would outlive it.
        for p in early.profiles.profiles.values():
            if p.purpose == TX:
                assert p.valid_to is not None and p.valid_from is not None
                assert (p.valid_to - p.valid_from).total_seconds() <= VALIDITY_S
                assert p.schedule.duration_s is not None and p.schedule.duration_s <= VALIDITY_S
        plan = (await site.server.store.list_plans("site", limit=1))[0]
        assert plan["solver_status"] in ("optimal", "feasible")
