"""Over-limit is never silent, end to end: two chargers that cannot be limited and a grid cut
push the site over; the operator sees the alert through `/v2/alerts/` and `loadstar alerts`,
the site's webhook receives it signed, and it is resolved when the cut ends."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from adapters.http.app import create_app
from csms.identity import charge_point_uuid, network_uuid
from tests.e2e.test_load_management import Site, big_ev, running_site, site_config
from tests.e2e.test_raw_clients import cli_json
from tests.e2e.test_webhooks import SECRET, Receiver, signed


async def api_alerts(site: Site, **params: Any) -> list[dict[str, Any]]:
    """The site's alerts as GET /v2/alerts/ lists them (the last 24 h)."""
    key = await site.server.api_keys.create(("read",), site.clock.now())
    transport = httpx.ASGITransport(app=create_app(site.server))
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        r = await client.get("/v2/alerts/", headers={"Authorization": f"Bearer {key.key}"},
                             params={"network": str(network_uuid("site")), **params})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["data"]
    return found


def overloads(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in alerts if a["name"] == "METER_VALUE_LIMIT_VIOLATION"]


async def alert_posts(receiver: Receiver, count: int) -> list[dict[str, Any]]:
    """The next `count` alert deliveries (plans' optimizations also arrive: skipped), each
    checked to be signed with the site's secret."""
    posts: list[dict[str, Any]] = []
    while len(posts) < count:
        headers, body, _ = await receiver.next()
        assert signed(headers, body)
        doc = json.loads(body)
        if "event" in doc:
            posts.append(doc)
    return posts


async def test_an_over_limit_site_is_an_alert_in_the_api_the_cli_and_the_webhook_until_it_clears(
        tmp_path: Path) -> None:
    config = site_config(tmp_path)
    async with Receiver() as receiver, running_site(config) as site:
        await site.server.webhooks.configure("site", receiver.url, SECRET)
        old = [await site.add(f"OLD{i}", "ocpp1.6", mode="no_smart_charging", firmware="1.0")
               for i in range(2)]
        live = site.server.planner.live
        await site.until(lambda: all(live.chargers[c.cp_id].uncontrollable for c in old), 120)
        # Each charger that cannot be limited is an alert of its own, once.
        raised = await alert_posts(receiver, 2)
        assert {p["data"][0]["charger"] for p in raised} == {
            str(charge_point_uuid(c.cp_id)) for c in old}
        assert all(p["event"] == "alert_raised" and p["data"][0]["name"] == "INCORRECT_SETTINGS"
                   for p in raised)
        chargers = {c["cp_id"]: c for c in await cli_json(config.store.path, tmp_path,
                                                          "chargers")}
        assert chargers["OLD0"]["controllable"] is False
        assert "NotImplemented" in chargers["OLD0"]["controllable_why"]
        for c in old:
            await c.plug_in(1, big_ev())
        await site.run_for(60)
        assert overloads(await api_alerts(site)) == []  # 44 kW on a 50 kW site: within
        # The grid operator cuts the site to 30 kW for ten minutes; the cars go on at 44 kW.
        cut_at = site.clock.now()
        await site.server.planner.set_external_limit("site", 30.0, None,
                                                     end=cut_at + timedelta(minutes=10))
        [over] = await alert_posts(receiver, 1)
        assert over["event"] == "alert_raised"
        assert over["data"][0]["network"] == str(network_uuid("site"))
        [alert] = overloads(await api_alerts(site))
        assert alert["id"] == over["data"][0]["id"]
        assert (alert["status"], alert["urgency"], alert["category"]) == (
            "Triggered", "Very High", "Operations")
        assert alert["details"]["limitW"] == 30_000.0
        assert alert["details"]["overW"] >= 44_000 - 30_000 - 500
        [in_cli] = overloads(await cli_json(config.store.path, tmp_path, "alerts"))
        assert in_cli["id"] == alert["id"] and in_cli["status"] == "Triggered"
        # The cut ends: the first plan within the limit resolves it, and says so.
        [back] = await alert_posts(receiver, 1)
        assert back["event"] == "alert_resolved" and back["data"][0]["id"] == alert["id"]
        [alert] = overloads(await api_alerts(site))
        assert alert["status"] == "Resolved" and alert["end"] is not None
        assert site.clock.now() - cut_at >= timedelta(minutes=10) - timedelta(seconds=30)
        assert overloads(await cli_json(config.store.path, tmp_path, "alerts")) == []
        everything = await cli_json(config.store.path, tmp_path, "alerts", "--all")
        assert [a["status"] for a in overloads(everything)] == ["Resolved"]
