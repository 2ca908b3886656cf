"""Admission control end to end: chargers that cannot be limited are kept from starting a car
while it would put the site over its limit, and counted at the most they were seen to draw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from csms.clock import parse_iso
from csms.config import ChargerSpec, SiteSpec
from csms.store.base import AlertQuery, AlertRecord
from simulators.charger import SimCharger
from tests.e2e.test_load_management import (
    EPS_W,
    Site,
    big_ev,
    profile_calls,
    protocol,
    running_site,
    site_config,
)
from tests.e2e.test_raw_clients import cli_json

SITE_KW = 60.0


async def learned_uncontrollable(site: Site, chargers: list[SimCharger]) -> None:
    live = site.server.planner.live  # type: ignore[union-attr]
    await site.until(lambda: all(live.chargers[c.cp_id].uncontrollable for c in chargers), 120)


def closed(site: Site) -> set[str]:
    live = site.server.planner.live  # type: ignore[union-attr]
    return {f"{cp_id}/{n}" for cp_id, cp in live.chargers.items()
            for n, c in cp.connectors.items() if c.closed}


async def test_site_never_over_60_kw_as_cars_come_to_four_smart_and_four_unlimitable_chargers(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    config.sites = [SiteSpec(id="site", max_power_kw=SITE_KW, chargers=["*"])]
    async with running_site(config) as site:
        smart = [await site.add(f"SMART{i}", protocol(i)) for i in range(4)]
        old = [await site.add(f"OLD{i}", protocol(i), mode="no_smart_charging")
               for i in range(3)]
        # One whose hardware gives 11 kW whatever its 22 kW rating says.
        old.append(await site.add("OLD3", "ocpp2.0.1", mode="no_smart_charging",
                                  delivers_kw=11.0))
        site.start_sampling()
        await learned_uncontrollable(site, old)
        # Four idle 22 kW connectors nobody can limit cannot all start a car within 58.8 kW
        # (60 less the 2 % buffer): two stay open, two are made unavailable before any car.
        await site.until(lambda: len(closed(site)) == 2, 120)
        assert closed(site) == {"OLD2/1", "OLD3/1"}
        for s, o in zip(smart, old, strict=True):
            await s.plug_in(1, big_ev())
            await site.run_for(60)
            await o.plug_in(1, big_ev())
            await site.run_for(60)
        await site.run_for(300)
        at, peak = site.exact_peak()
        assert peak <= SITE_KW * 1000.0 + EPS_W, f"site drew {peak:.0f} W at {at}"
        # The two open ones charge at full power, the smart ones share what is left.
        assert old[0].total_draw_w() > 21_000.0 and old[1].total_draw_w() > 21_000.0
        assert old[2].total_draw_w() == 0.0 and old[3].total_draw_w() == 0.0
        # 14.8 kW left for them: three cars at 6 A or more, the fourth paused (6 A is the
        # least an AC car takes).
        assert 12_000.0 < sum(s.total_draw_w() for s in smart) <= 14_800.0 + EPS_W
        for o in old:  # never a profile after it said it cannot take one
            assert await profile_calls(site, o.cp_id) <= 1, o.cp_id
        # A car leaves: its connector may take the next car, the closed ones stay closed.
        await old[0].unplug(1)
        await site.run_for(60)
        assert closed(site) == {"OLD2/1", "OLD3/1"}
        # The grid operator cuts the site to 40 kW for ten minutes: the car charging on OLD1
        # goes on (never cut by surprise), but OLD0's next car would not fit beside it.
        planner = site.server.planner
        assert planner is not None
        cut_at = site.clock.now()
        await planner.set_external_limit("site", 40.0, None, end=cut_at + timedelta(minutes=10))
        await site.until(lambda: "OLD0/1" in closed(site), 120)
        assert old[1].total_draw_w() > 21_000.0
        # The cut ends: room comes back, and OLD0 is available again.
        await site.until(lambda: closed(site) == {"OLD2/1", "OLD3/1"}, 900)
        assert site.clock.now() >= cut_at + timedelta(minutes=10)


async def test_a_22_kw_connector_that_gave_11_kw_counts_at_11_kw_next_time(
        tmp_path: Path) -> None:
    # 57 kW less 2 %: 55.86 kW. Two 22 kW connectors and one counted at its 22 kW rating do not
    # fit (66 kW); counted at the 11 kW it was seen to give, they do (55 kW).
    config = site_config(tmp_path)
    config.sites = [SiteSpec(id="site", max_power_kw=57.0, chargers=["*"])]
    async with running_site(config) as site:
        weak = await site.add("WEAK", "ocpp1.6", mode="no_smart_charging", delivers_kw=11.0)
        await learned_uncontrollable(site, [weak])
        await weak.plug_in(1, big_ev())
        c = site.server.planner.live.chargers["WEAK"].connector(1)  # type: ignore[union-attr]
        await site.until(lambda: (c.measured_w or 0.0) > 10_000.0, 120)
        await site.run_for(60)
        await weak.unplug(1)
        assert c.max_seen_w is not None and 10_000.0 < c.max_seen_w <= 11_100.0
        others = [await site.add(f"OLD{i}", "ocpp1.6", mode="no_smart_charging")
                  for i in range(2)]
        await learned_uncontrollable(site, others)
        await site.run_for(120)
        assert closed(site) == set()
        # And the learned maximum is kept across a restart of the server (stored with the
        # charger): the plan counts it the same after the restart.
        record = await site.server.store.get_charge_point("WEAK")
        assert record is not None
        assert 10_000.0 < record.capabilities["max_seen_w"]["1"] <= 11_100.0


async def test_alert_only_leaves_unlimitable_connectors_open(tmp_path: Path) -> None:
    config = site_config(tmp_path)
    config.sites = [SiteSpec(id="site", max_power_kw=SITE_KW, chargers=["*"],
                             uncontrollable="alert_only")]
    with capture_logs() as logs:
        async with running_site(config) as site:
            old = [await site.add(f"OLD{i}", protocol(i), mode="no_smart_charging")
                   for i in range(4)]
            await learned_uncontrollable(site, old)
            await site.run_for(120)
            assert closed(site) == set()
            # Four connectors nobody can limit could draw 88 kW at once: the operator is told.
            assert site.server.planner.unlimitable["site"] == (  # type: ignore[union-attr]
                88_000.0, 60_000.0)
            # And the CLI shows it from the store, beside the site's limit.
            shown = await cli_json(str(config.store.path), tmp_path, "sites")
            assert [(r["site"], r["unlimitable_kw"]) for r in shown] == [("site", 88.0)]
    flagged = [e for e in logs if e["event"] == "site_unlimitable_can_exceed_limit"]
    assert flagged and flagged[-1]["worst_case_w"] == 88_000.0
    assert all(e["log_level"] == "warning" for e in flagged)


async def test_a_charger_that_reports_no_smart_charging_is_never_sent_a_profile(
        tmp_path: Path) -> None:
    async with running_site(site_config(tmp_path)) as site:
        old = [await site.add("OLD16", "ocpp1.6", reports_smart_charging=False),
               await site.add("OLD201", "ocpp2.0.1", reports_smart_charging=False)]
        # Learned from what they report (they would accept a profile if sent one): at most
        # a floor sent before their report was read, and nothing after it.
        await learned_uncontrollable(site, old)
        live = site.server.planner.live  # type: ignore[union-attr]
        assert all("reports" in (live.chargers[c.cp_id].uncontrollable or "") for c in old)
        before = [await profile_calls(site, c.cp_id) for c in old]
        assert max(before) <= 1
        for c in old:
            await c.plug_in(1, big_ev())
        await site.run_for(300)
        assert [await profile_calls(site, c.cp_id) for c in old] == before


async def test_the_operator_can_say_a_charger_cannot_be_limited(tmp_path: Path) -> None:
    config = site_config(tmp_path)
    config.chargers = [ChargerSpec(match="OLD*", max_power_kw=22, max_current_a=32,
                                   controllable=False),
                       ChargerSpec(match="*", max_power_kw=22, max_current_a=32)]
    async with running_site(config) as site:
        old = await site.add("OLD1", "ocpp1.6")
        await learned_uncontrollable(site, [old])
        before = await profile_calls(site, "OLD1")
        await old.plug_in(1, big_ev())
        await site.run_for(300)
        assert before <= 1 and await profile_calls(site, "OLD1") == before


async def open_overload_alerts(site: Site) -> list[AlertRecord]:
    now = site.clock.now()
    found, _ = await site.server.alerts.list(AlertQuery(
        start=now - timedelta(days=1), end=now + timedelta(days=1), site_ids=("site",),
        names=("METER_VALUE_LIMIT_VIOLATION",)))
    return [a for a in found if a.end is None]


async def test_alert_only_raises_the_overload_within_one_plan_and_clears_it(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    config.sites = [SiteSpec(id="site", max_power_kw=SITE_KW, chargers=["*"],
                             uncontrollable="alert_only")]
    async with running_site(config) as site:
        smart = [await site.add(f"SMART{i}", protocol(i)) for i in range(4)]
        old = [await site.add(f"OLD{i}", protocol(i), mode="no_smart_charging")
               for i in range(4)]
        await learned_uncontrollable(site, old)
        # Cars one by one on all eight: the third unlimitable one takes the site over 60 kW.
        for s, o in zip(smart, old, strict=True):
            await s.plug_in(1, big_ev())
            await site.run_for(60)
            await o.plug_in(1, big_ev())
            await site.run_for(60)
        plans = await site.planned_after(site.clock.start)
        over = [p for p in plans if (p["inputs"].get("overloaded") or {}).get("site")]
        assert over, "66 kW and more of unlimitable cars on a 60 kW site must be over"
        first_over = over[0]
        # Raised by the time the next plan came (the planner tells the alerts of each plan).
        next_plans = [p for p in plans if p["id"] > first_over["id"]]
        assert next_plans
        alerts = await open_overload_alerts(site)
        assert len(alerts) == 1 and alerts[0].node_id == "site"
        assert alerts[0].start <= parse_iso(next_plans[0]["ts"])
        # Two unlimitable cars leave: 44 kW fits, and the alert is resolved.
        for o in old[2:]:
            await o.unplug(1)
        await site.until(lambda: site.server.planner is not None and not
                         site.server.planner._overloaded.get("site"), 300)  # noqa: SLF001
        await site.server.alerts.settled()
        assert await open_overload_alerts(site) == []


async def test_the_operator_can_have_a_charger_that_said_not_implemented_asked_again(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    async with running_site(config) as site:
        old = await site.add("OLD1", "ocpp1.6", mode="no_smart_charging")
        await learned_uncontrollable(site, [old])
        await site.run_for(120)
        first = await profile_calls(site, "OLD1")
    # After a restart the verdict stands (no profile)...
    async with running_site(config, start=datetime(2026, 11, 23, 9, 0, tzinfo=UTC)) as site:
        old = await site.add("OLD1", "ocpp1.6", mode="no_smart_charging")
        await site.run_for(120)
        assert await profile_calls(site, "OLD1") == first
    # ...unless the operator says it can be limited: it is asked once more, and its second
    # NotImplemented stands.
    config.chargers = [ChargerSpec(match="*", max_power_kw=22, max_current_a=32,
                                   controllable=True)]
    async with running_site(config, start=datetime(2026, 11, 23, 10, 0, tzinfo=UTC)) as site:
        old = await site.add("OLD1", "ocpp1.6", mode="no_smart_charging")
        await site.run_for(120)
        asked = await profile_calls(site, "OLD1")
        assert asked > first
        await learned_uncontrollable(site, [old])
        await old.plug_in(1, big_ev())
        await site.run_for(300)
        assert await profile_calls(site, "OLD1") == asked
