"""`/v2/configurations/` (seed 002) against a real Loadstar: configuration objects at four
levels, the delivery presets they choose (charge point, then group, then site, then customer)
and the profiles a simulated charger then receives; and the OCPP settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.http.app import create_app
from csms.config import ChargerSpec, Config, GroupSpec, SiteSpec
from csms.delivery import CUSTOMER_UUID, Delivery, configuration_uuid
from csms.identity import charge_point_uuid, network_uuid
from csms.service import Loadstar
from simulators.charger import SimCharger
from tests.adapters.catalog_helpers import key
from tests.conftest import make_config

MISSING = "00000000-0000-4000-8000-000000000000"
SEED_CUSTOMER_DEFAULT = {  # the settings of ampcontrol-default-TxProfile, as seed 002 shows them
    "timeZone": "utc", "stackLevel": 2, "numberPhases": False, "chargingRateUnit": None,
    "timestampsFormat": "default", "useTransactionId": True, "limitDeliveryType": "All",
    "chargingProfileKind": "Absolute", "useChargingProfileId": True,
    "chargingProfilePurpose": "TxProfile"}


def site_config(tmp_path: Path) -> Config:
    config = make_config(tmp_path)
    config.load.coalesce_s = 0.05
    config.sites = [SiteSpec(id="site", max_power_kw=50, chargers=["*"],
                             groups=[GroupSpec(id="row-a", max_power_kw=40,
                                               chargers=["A-*"])])]
    config.chargers = [ChargerSpec(match="*", unit="W", max_power_kw=22, max_current_a=32)]
    return config


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Loadstar]:
    service = Loadstar(site_config(tmp_path))
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


@pytest.fixture
async def client(server: Loadstar) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(server))
    async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as client:
        yield client


@pytest.fixture
async def writer(server: Loadstar) -> dict[str, str]:
    return await key(server, "write")


SITE = str(network_uuid("site"))
ROW_A = str(network_uuid("row-a"))


async def test_the_customer_level_lists_the_seed_presets(client: httpx.AsyncClient,
                                                         writer: dict[str, str]) -> None:
    r = await client.get(f"/v2/configurations/?customer={CUSTOMER_UUID}", headers=writer)
    assert r.status_code == 200 and r.json()["total"] == 1
    config = r.json()["data"][0]
    # No level named: the caller's customer.
    assert (await client.get("/v2/configurations/", headers=writer)).json()["data"] == [config]
    assert config["id"] == configuration_uuid("customer", CUSTOMER_UUID)
    assert config["customerId"] == CUSTOMER_UUID and config["created"] is None
    options = config["deliveryOptions"]
    assert sorted(options["presets"]["TxProfile"]) == sorted([
        "ampcontrol-default-TxProfile", "ampcontrol-squential-TxProfile",
        "ampcontrol-sequential-ampere-TxProfile", "ampcontrol-default-TxProfile-number-phases",
        "ampcontrol-sequential-ampere-number-phases-TxProfile"])
    assert len(options["presets"]["TxDefaultProfile"]) == 5
    assert options["presets"]["TxProfile"]["ampcontrol-default-TxProfile"]["settings"] == \
        SEED_CUSTOMER_DEFAULT
    default_tx = options["presets"]["TxDefaultProfile"]["ampcontrol-default-TxDefaultProfile"]
    assert default_tx["settings"]["stackLevel"] == 1
    # Loadstar's default: the number-phases variants (an A limit says on how many phases).
    assert options["TxProfile"] == "ampcontrol-default-TxProfile-number-phases"
    assert options["TxDefaultProfile"] == "ampcontrol-default-TxDefaultProfile-number-phases"
    defaults = [n for p in options["presets"].values() for n, e in p.items() if e["isDefault"]]
    assert sorted(defaults) == sorted([options["TxProfile"], options["TxDefaultProfile"]])
    assert config["integrations"] == {}
    assert config["ampCmsOptions"] == {"feature": "off", "secret": "unregistered",
                                       "targetCmsUrl": None, "defaultNetworkId": None}


async def test_levels_without_presets_show_empty_choices(client: httpx.AsyncClient,
                                                         writer: dict[str, str]) -> None:
    r = await client.get(f"/v2/configurations/?network={SITE}", headers=writer)
    network = r.json()["data"][0]
    assert network["networkId"] == SITE
    assert network["deliveryOptions"] == {"TxProfile": "", "TxDefaultProfile": ""}
    user = (await client.get(f"/v2/configurations/?user={MISSING}", headers=writer)
            ).json()["data"][0]
    assert user["notificationChannels"] == {"smsNotifications": False,
                                            "emailNotifications": False}


async def test_create_patch_delete_a_network_configuration(client: httpx.AsyncClient,
                                                           writer: dict[str, str]) -> None:
    url = f"/v2/configurations/?network={SITE}"
    r = await client.post(url, headers=writer, json={
        "alerts": False, "integrations": {"shelly": {"device_id": "D1"}}, "alertOptions": {}})
    assert r.status_code == 201
    made = r.json()["data"][0]
    assert made["alerts"] is False and made["integrations"] == {"shelly": {"device_id": "D1"}}
    assert made["created"].endswith("+00:00")
    again = await client.post(url, headers=writer, json={"alerts": True})
    assert again.status_code == 409 and again.json()["status"] == "fail"
    r = await client.patch(url, headers=writer, json={
        "idTagPriority": True, "integrations": {"shelly": {"auth_key": "k"}},
        "deliveryOptions": {"TxProfile": "ampcontrol-squential-TxProfile"}})
    patched = r.json()["data"][0]
    assert patched["integrations"] == {"shelly": {"device_id": "D1", "auth_key": "k"}}
    assert patched["deliveryOptions"] == {"TxProfile": "ampcontrol-squential-TxProfile",
                                          "TxDefaultProfile": ""}
    assert patched["idTagPriority"] is True and patched["created"] == made["created"]
    r = await client.patch(url, headers=writer, json={"alertOptions": None})
    assert "alertOptions" not in r.json()["data"][0]  # JSON merge patch: null removes
    r = await client.delete(f"/v2/configurations/?configuration_uuid={made['id']}",
                            headers=writer)
    assert r.status_code == 200 and r.json()["data"][0]["idTagPriority"] is True
    after = (await client.get(url, headers=writer)).json()["data"][0]
    assert "idTagPriority" not in after and after["created"] is None
    r = await client.delete(f"/v2/configurations/?configuration_uuid={made['id']}",
                            headers=writer)
    assert r.status_code == 404 and list(r.json()["data"]) == ["configuration_uuid"]


@pytest.mark.parametrize("query, body, fields", [
    ("network={site}", {"deliveryOptions": {"TxProfile": "nope"}},
     {"body.deliveryOptions.TxProfile"}),
    ("network={site}", {"deliveryOptions": {"TxProfile": "ampcontrol-default-TxDefaultProfile"}},
     {"body.deliveryOptions.TxProfile"}),
    ("network={site}", {"deliveryOptions": {"TxDefaultProfile": 3}},
     {"body.deliveryOptions.TxDefaultProfile"}),
    ("network={site}", {"deliveryOptions": "fast"}, {"body.deliveryOptions"}),
    ("network={site}", {"deliveryOptions": {"presets": {}}}, {"body.deliveryOptions.presets"}),
    ("network={site}", {"alerts": "yes", "idTagPriority": 1},
     {"body.alerts", "body.idTagPriority"}),
    ("customer={customer}", {"deliveryOptions": {"TxProfile": ""}},
     {"body.deliveryOptions.TxProfile"}),
    ("customer={customer}", {"deliveryOptions": {"presets": {"TxProfile": {}}}},
     {"body.deliveryOptions.presets"}),
    ("customer={customer}", {"ampCmsOptions": {"feature": "proxy"}}, {"body.ampCmsOptions"}),
    ("user={missing}", {"deliveryOptions": {"TxProfile": ""}}, {"body.deliveryOptions"}),
    ("network=not-a-uuid", {}, {"network"}),
    ("network={site}&chargepoint={missing}", {}, {"network", "chargepoint"}),
])
async def test_bad_requests_are_a_400_naming_each_field(
        client: httpx.AsyncClient, writer: dict[str, str], query: str, body: Any,
        fields: set[str]) -> None:
    query = query.format(site=SITE, customer=CUSTOMER_UUID, missing=MISSING)
    for method in ("post", "patch"):
        r = await client.request(method.upper(), f"/v2/configurations/?{query}", headers=writer,
                                 json=body)
        assert r.status_code == 400, (method, r.text)
        assert set(r.json()["data"]) == fields, method


async def test_a_body_must_be_an_object(client: httpx.AsyncClient,
                                        writer: dict[str, str]) -> None:
    r = await client.patch(f"/v2/configurations/?network={SITE}", headers=writer, json=[1])
    assert r.status_code == 400 and list(r.json()["data"]) == ["body"]


async def test_what_was_read_may_be_sent_back(client: httpx.AsyncClient,
                                              writer: dict[str, str]) -> None:
    shown = (await client.get("/v2/configurations/", headers=writer)).json()["data"][0]
    body = {k: v for k, v in shown.items() if k not in ("id", "created", "updated",
                                                        "customerId")}
    body["deliveryOptions"]["TxProfile"] = "ampcontrol-default-TxProfile"
    r = await client.patch("/v2/configurations/", headers=writer, json=body)
    assert r.status_code == 200, r.text
    options = r.json()["data"][0]["deliveryOptions"]
    assert options["TxProfile"] == "ampcontrol-default-TxProfile"
    assert options["presets"]["TxProfile"]["ampcontrol-default-TxProfile"]["isDefault"]


async def test_unknown_targets_are_404(client: httpx.AsyncClient,
                                       writer: dict[str, str]) -> None:
    for level in ("customer", "network", "chargepoint"):
        r = await client.get(f"/v2/configurations/?{level}={MISSING}", headers=writer)
        assert r.status_code == 404, level
        assert r.json() == {"status": "fail", "data": {level: f"no {level} {MISSING}"}}
        r = await client.patch(f"/v2/configurations/?{level}={MISSING}", headers=writer,
                               json={})
        assert r.status_code == 404, level


async def test_scopes(client: httpx.AsyncClient, server: Loadstar) -> None:
    reader = await key(server, "read")
    assert (await client.get("/v2/configurations/", headers=reader)).status_code == 200
    assert (await client.patch("/v2/configurations/", headers=reader, json={})
            ).status_code == 403
    assert (await client.get("/v2/configurations/")).status_code == 401
    writer = await key(server, "write")
    assert (await client.get("/v2/configurations/ocpp_settings", headers=reader)
            ).status_code == 200
    for headers, status in ((reader, 403), (writer, 403), (await key(server, "admin"), 200)):
        r = await client.patch("/v2/configurations/ocpp_settings", headers=headers,
                               json={"feature": "cms"})
        assert r.status_code == status


async def test_ocpp_settings_keep_the_secret_hashed(client: httpx.AsyncClient,
                                                    server: Loadstar) -> None:
    admin = await key(server, "admin")
    url = "/v2/configurations/ocpp_settings"
    r = await client.post(url, headers=admin, json={"feature": "proxy"})
    assert r.status_code == 400 and list(r.json()["data"]) == ["body.secret"]
    r = await client.post(url, headers=admin, json={
        "secret": "dummy-s3cr3t", "feature": "proxy", "targetCmsUrl": "wss://cms.example/",
        "defaultNetworkId": SITE})
    assert r.status_code == 201
    settings = r.json()["data"][0]
    assert settings | {"created": None, "updated": None} == {
        "secret": "registered", "feature": "proxy", "targetCmsUrl": "wss://cms.example/",
        "defaultNetworkId": SITE, "created": None, "updated": None}
    assert "dummy-s3cr3t" not in r.text
    stored = await server.store.get_ocpp_settings("customer")
    assert stored is not None and stored.secret_hash and "dummy-s3cr3t" not in stored.secret_hash
    assert (await client.post(url, headers=admin, json={"secret": "x"})).status_code == 409
    r = await client.patch(url, headers=admin, json={"defaultNetworkId": MISSING})
    assert r.status_code == 400 and list(r.json()["data"]) == ["body.defaultNetworkId"]
    r = await client.patch(url, headers=admin, json={"feature": "maybe", "colour": "red"})
    assert r.status_code == 400 and set(r.json()["data"]) == {"body.feature", "body.colour"}
    r = await client.patch(url, headers=admin, json={"secret": None, "feature": "off"})
    assert r.json()["data"][0]["secret"] == "unregistered"
    shown = (await client.get("/v2/configurations/", headers=admin)).json()["data"][0]
    assert shown["ampCmsOptions"] == {"feature": "off", "secret": "unregistered",
                                      "targetCmsUrl": "wss://cms.example/",
                                      "defaultNetworkId": SITE}


async def test_charge_point_ocpp_settings(client: httpx.AsyncClient, server: Loadstar) -> None:
    admin = await key(server, "admin")
    cp = str(charge_point_uuid("A-1"))
    url = f"/v2/configurations/ocpp_settings/charge_points/{cp}"
    assert (await client.get(url, headers=admin)).status_code == 404  # no such charger yet
    await server.store.register_charge_point("A-1")
    r = await client.get(url, headers=admin)
    assert r.json()["data"][0]["secret"] == "unregistered"
    r = await client.post(url, headers=admin, json={"secret": "cp-secret", "feature": "cms"})
    assert r.status_code == 201
    assert r.json()["data"][0] | {"created": None, "updated": None} == {
        "chargePointId": cp, "secret": "registered", "feature": "cms",
        "created": None, "updated": None}
    assert (await client.post(url, headers=admin, json={})).status_code == 409
    r = await client.patch(url, headers=admin, json={"targetCmsUrl": "wss://x"})
    assert r.status_code == 400 and list(r.json()["data"]) == ["body.targetCmsUrl"]
    r = await client.patch(f"/v2/configurations/ocpp_settings/charge_points/{MISSING}",
                           headers=admin, json={"feature": "off"})
    assert r.status_code == 404


# -- resolution and the profiles on the wire ---------------------------------------------------


async def test_presets_resolve_charge_point_then_group_then_site_then_customer(
        server: Loadstar) -> None:
    delivery: Delivery = server.delivery
    await server.store.register_charge_point("A-1")
    await server.store.register_charge_point("B-1")

    def names(cp_id: str) -> tuple[str, str]:
        tx, tx_default = delivery.presets_for(cp_id)
        return tx.name, tx_default.name

    assert names("A-1") == ("ampcontrol-default-TxProfile-number-phases",
                            "ampcontrol-default-TxDefaultProfile-number-phases")
    await delivery.update("customer", CUSTOMER_UUID, {"deliveryOptions": {
        "TxProfile": "ampcontrol-default-TxProfile"}})
    await delivery.update("network", SITE, {"deliveryOptions": {
        "TxDefaultProfile": "ampcontrol-squential-TxDefaultProfile"}})
    await delivery.update("network", ROW_A, {"deliveryOptions": {
        "TxProfile": "ampcontrol-squential-TxProfile", "TxDefaultProfile": ""}})
    await delivery.update("chargepoint", str(charge_point_uuid("A-1")), {"deliveryOptions": {
        "TxDefaultProfile": "ampcontrol-sequential-ampere-TxDefaultProfile"}})
    assert names("A-1") == ("ampcontrol-squential-TxProfile",  # its group's
                            "ampcontrol-sequential-ampere-TxDefaultProfile")  # its own
    assert names("B-1") == ("ampcontrol-default-TxProfile",  # the customer's
                            "ampcontrol-squential-TxDefaultProfile")  # its site's


async def test_presets_survive_a_restart(tmp_path: Path) -> None:
    config = site_config(tmp_path)
    first = Loadstar(config)
    await first.start()
    try:
        await first.delivery.update("network", SITE, {"deliveryOptions": {
            "TxProfile": "ampcontrol-squential-TxProfile"}})
    finally:
        await first.stop()
    second = Loadstar(config)
    await second.start()
    try:
        tx, _ = second.delivery.presets_for("X")
        assert tx.name == "ampcontrol-squential-TxProfile"
    finally:
        await second.stop()


def floor_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    body = payload.get("csChargingProfiles")
    if body is None or body["chargingProfilePurpose"] != "TxDefaultProfile":
        return None
    return body


async def next_floor(server: Loadstar, cp_id: str,
                     ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The newest TxDefaultProfile sent to `cp_id` once one satisfies `ok` (plans awaited)."""
    assert server.planner is not None

    async def wait() -> dict[str, Any]:
        while True:
            for cmd in await server.store.list_commands(cp_id, limit=20):
                body = floor_of(cmd.payload) if cmd.action == "SetChargingProfile" else None
                if body is not None:
                    if ok(body):
                        return body
                    break  # only the newest floor counts
            await server.planner.wait_planned("site")  # type: ignore[union-attr]

    return await asyncio.wait_for(wait(), 20)


def periods(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body["chargingSchedule"]["chargingSchedulePeriod"])


async def test_a_charger_gets_its_floor_as_the_chosen_preset_says(
        server: Loadstar, client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    url = f"ws://127.0.0.1:{server.ocpp_port}/ocpp"
    cp = str(charge_point_uuid("A-7"))
    async with SimCharger("A-7", url) as charger:
        await charger.wait_for(lambda: charger.online, 10)
        # Nothing configured: W (the charger's unit) with numberPhases, stack level 1.
        floor = await next_floor(server, "A-7", lambda b: True)
        assert floor["chargingSchedule"]["chargingRateUnit"] == "W"
        assert "numberPhases" in periods(floor)[0] and floor["stackLevel"] == 1
        # The site chooses amperes without numberPhases: the floor is sent again so.
        ampere = "ampcontrol-sequential-ampere-TxDefaultProfile"
        r = await client.patch(f"/v2/configurations/?network={SITE}", headers=writer,
                               json={"deliveryOptions": {"TxDefaultProfile": ampere}})
        assert r.status_code == 200
        floor = await next_floor(server, "A-7",
                                 lambda b: b["chargingSchedule"]["chargingRateUnit"] == "A")
        assert "numberPhases" not in periods(floor)[0] and floor["stackLevel"] == 1
        # The charge point's own choice beats its site's.
        r = await client.patch(f"/v2/configurations/?chargepoint={cp}", headers=writer, json={
            "deliveryOptions": {"TxDefaultProfile": "ampcontrol-default-TxDefaultProfile"}})
        assert r.status_code == 200
        floor = await next_floor(server, "A-7",
                                 lambda b: b["chargingSchedule"]["chargingRateUnit"] == "W")
        assert "numberPhases" not in periods(floor)[0]
        # Deleting it falls back to the site's choice.
        config_id = r.json()["data"][0]["id"]
        await client.delete(f"/v2/configurations/?configuration_uuid={config_id}",
                            headers=writer)
        await next_floor(server, "A-7",
                         lambda b: b["chargingSchedule"]["chargingRateUnit"] == "A")
