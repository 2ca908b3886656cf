"""What Loadstar learns about a charger outlives the process: a charger that ignored our limits
is counted at its maximum from its next car's first second, and a model that refused a unit is
sent the one it took, after a restart too."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from csms.charger_models import REFUSED_AFTER
from csms.service import Loadstar
from simulators.charger import SimCharger
from simulators.smart import TX, TXDEFAULT
from tests.e2e.test_load_management import (
    EPS_W,
    SITE_W,
    Site,
    big_ev,
    running_site,
    site_config,
)


async def restart(site: Site) -> None:
    """Stop the server and start a new one on the same file and port; chargers reconnect."""
    config = site.server.config
    config.ocpp.port = site.server.ocpp_port
    await site.server.stop()
    site.server = Loadstar(config, clock=site.clock)
    await site.server.start()
    for c in site.chargers:
        await c.wait_for(lambda c=c: c.online, timeout=30)


def held_units(charger: SimCharger, purpose: str) -> set[str]:
    return {p.schedule.unit for p in charger.profiles.profiles.values() if p.purpose == purpose}


async def test_a_charger_flagged_for_ignoring_limits_is_counted_at_its_maximum_after_a_restart(
        tmp_path: Path) -> None:
    async with running_site(site_config(tmp_path)) as site:
        _normal, ignoring = await site.four_cars_and_an_idle_ignorer(
            vendor="Careless", model="Box", boot_on_reconnect=True)
        await ignoring.plug_in(1, big_ev(11.0))
        live = site.server.planner.live
        await site.until(lambda: live.chargers["IGN"].connectors[1].ignoring, 120)
        await ignoring.unplug(1)
        await site.run_for(30)

        # A new process, and the charger boots again on the same firmware.
        await restart(site)
        await site.run_for(30)
        live = site.server.planner.live
        assert live.chargers["IGN"].ignores_profiles
        record = await site.server.store.get_charge_point("IGN")
        assert record is not None
        assert record.capabilities["ignores_profiles"] == {"firmware": ignoring.firmware}

        t_again = site.t()
        await ignoring.plug_in(1, big_ev(11.0))
        # Its car draws from the session's start; on a busy machine the start's round trips
        # alone can outlast a simulated minute, so the minute runs from the start.
        conn = ignoring.conns[1]
        await ignoring.wait_for(lambda: conn.tx is not None and conn.tx.acknowledged,
                                timeout=60)
        await site.run_for(60)
        assert ignoring.current_draw_w(1) == 11_000.0
        at, exact = site.exact_peak(after=site.clock.start + timedelta(seconds=t_again - 1))
        assert exact <= SITE_W + EPS_W, f"site drew {exact:.0f} W at {at}"
        t, peak = site.peak_sample(after=t_again)
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"
        # The others share what is left rather than being starved.
        assert sum(c.total_draw_w() for c in site.chargers) > 0.85 * SITE_W


async def test_a_model_that_refuses_amps_is_sent_watts_and_still_is_after_a_restart(
        tmp_path: Path) -> None:
    async with running_site(site_config(tmp_path)) as site:
        # It reports that it takes A and W, and refuses every profile in A.
        watts_only = await site.add("WATT", "ocpp1.6", vendor="Wattco", model="W1",
                                    accepted_units=("W",))
        other = await site.add("N0", "ocpp2.0.1")
        site.start_sampling()
        await watts_only.plug_in(1, big_ev())
        await other.plug_in(1, big_ev())
        # Refused twice (the first plan and one retry later), then sent in W.
        await site.until(lambda: held_units(watts_only, TXDEFAULT) == {"W"}, 400)
        await site.until(lambda: held_units(watts_only, TX) == {"W"}, 120)
        assert held_units(other, TX) == {"A"}, "what one model refuses is its own"
        assert watts_only.composite_limit_w(1) < 22_000

        assert any(e.kind == "rejected" for e in drain(watts_only))
        # The charger holds W before the planner has written what that taught it: wait for
        # the write (a stop may cancel one still in flight).
        for _ in range(60):
            records = await site.server.store.list_model_records()
            answers = records.get("Wattco|W1|1.0.0", {}).get("answers", {})
            if any(shapes.get("W/np/connector", {}).get("accepted") for shapes in answers.values()):
                break
            await site.run_for(1)
        await restart(site)
        records = await site.server.store.list_model_records()
        answers = records["Wattco|W1|1.0.0"]["answers"]
        refusals = sum(shapes.get("A/np/connector", {}).get("rejected", 0)
                       for shapes in answers.values())
        assert refusals >= REFUSED_AFTER
        assert not any(shapes.get("A/np/connector", {}).get("accepted")
                       for shapes in answers.values())
        # The verdict is stored when it changes (W's first acceptance, whichever purpose).
        assert any(shapes.get("W/np/connector", {}).get("accepted")
                   for shapes in answers.values())
        # The new process sends it W from its first profile: nothing is refused any more.
        await other.unplug(1)
        await site.run_for(60)
        assert held_units(watts_only, TX) == {"W"}
        events = drain(watts_only)
        assert any(e.kind == "installed" for e in events)
        assert not [e for e in events if e.kind == "rejected"]
        t, peak = site.peak_sample()
        assert peak <= SITE_W + EPS_W, f"site drew {peak:.0f} W at t={t:.0f} s"


def drain(charger: SimCharger) -> list:
    events = []
    while not charger.profile_events.empty():
        events.append(charger.profile_events.get_nowait())
    return events
