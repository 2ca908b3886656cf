"""Local authorization lists kept in step with the id tags (2.0.1 D01/D02, C11; 1.6 5.15,
5.9, 5.4), against raw clients of both versions that keep their own list by the rules."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from adapters.http.app import create_app
from csms.config import Config
from csms.service import Loadstar
from csms.store.catalog import IdTagQuery
from tests.adapters.catalog_helpers import key
from tests.e2e.authlist_charger import ListCharger

VERSIONS = ["1.6", "2.0.1"]


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False  # only the local-list calls reach the charger
    return config


async def add_tags(server: Loadstar, *values: str) -> None:
    for value in values:
        await server.id_tags.create({"value": value})


async def tag_uuid(server: Loadstar, value: str) -> str:
    tags, _ = await server.id_tags.list(IdTagQuery(value=value), 1, 0)
    return tags[0].uuid


async def synced(server: Loadstar, charger: ListCharger, version: int) -> None:
    """Wait until the charger holds list `version` and the sync that sent it has ended."""
    await charger.wait_for(lambda: charger.list_version == version)
    await server.local_lists.idle()


@pytest.mark.parametrize("version", VERSIONS)
async def test_d01_a_booted_charger_gets_a_full_list_of_every_id_tag(
        server: Loadstar, url: Callable[[str], str], version: str) -> None:
    await add_tags(server, "TAG-A", "TAG-B", "TAG-C")
    charger = ListCharger(version)
    client = await charger.connect(url("LL1"))
    try:
        await synced(server, charger, 1)
        assert [p["updateType"] for p in charger.sent] == ["Full"]
        assert sorted(charger.entries) == ["TAG-A", "TAG-B", "TAG-C"]
        assert {i["status"] for i in charger.entries.values()} == {"Accepted"}
        record = await server.store.local_list("LL1")
        assert record is not None and record.version == 1 and not record.out_of_date
        assert sorted(record.entries) == ["TAG-A", "TAG-B", "TAG-C"]
        # The version was asked first (D02), and every call is a recorded command.
        assert charger.actions().index("GetLocalListVersion") < \
            charger.actions().index("SendLocalList")
        commands = {c.action for c in await server.store.list_commands("LL1", limit=50)}
        assert {"GetLocalListVersion", "SendLocalList"} <= commands
    finally:
        await client.close()


@pytest.mark.parametrize("version", VERSIONS)
async def test_d01_differential_update_sends_only_changed_tokens(
        server: Loadstar, url: Callable[[str], str], version: str) -> None:
    await add_tags(server, "KEEP", "CHANGE", "DROP")
    charger = ListCharger(version)
    client = await charger.connect(url("LL2"))
    try:
        await synced(server, charger, 1)
        await server.id_tags.update(await tag_uuid(server, "CHANGE"), {"status": "Blocked"})
        await server.id_tags.delete(await tag_uuid(server, "DROP"))
        await server.id_tags.create({"value": "NEW"})
        await charger.wait_for(lambda: sorted(charger.entries) == ["CHANGE", "KEEP", "NEW"]
                               and charger.entries["CHANGE"]["status"] == "Blocked")
        await server.local_lists.idle()
        later = charger.sent[1:]
        assert later and {p["updateType"] for p in later} == {"Differential"}
        changed = [t for p in later for t in charger.tags(p)]
        assert "KEEP" not in changed
        assert set(changed) == {"CHANGE", "DROP", "NEW"}
        removal = next(i for p in later for i in p["localAuthorizationList"]
                       if charger.tags({"localAuthorizationList": [i]}) == ["DROP"])
        assert ("idTagInfo" if charger.v16 else "idTokenInfo") not in removal
        record = await server.store.local_list("LL2")
        assert record is not None and record.version == charger.list_version
        assert not record.out_of_date and sorted(record.entries) == ["CHANGE", "KEEP", "NEW"]
    finally:
        await client.close()


@pytest.mark.parametrize("version", VERSIONS)
async def test_d01_version_mismatch_falls_back_to_a_full_list(
        server: Loadstar, url: Callable[[str], str], version: str) -> None:
    await add_tags(server, "ONE", "TWO")
    charger = ListCharger(version)
    client = await charger.connect(url("LL3"))
    try:
        await synced(server, charger, 1)
        charger.mismatch_next = True
        await add_tags(server, "THREE")
        await charger.wait_for(lambda: "THREE" in charger.entries)
        await server.local_lists.idle()
        assert [p["updateType"] for p in charger.sent] == ["Full", "Differential", "Full"]
        assert sorted(charger.entries) == ["ONE", "THREE", "TWO"]
        record = await server.store.local_list("LL3")
        assert record is not None and record.version == charger.list_version > 1
    finally:
        await client.close()


@pytest.mark.parametrize("version", VERSIONS)
async def test_d02_a_charger_whose_version_differs_from_ours_gets_a_full_list(
        server: Loadstar, url: Callable[[str], str], version: str) -> None:
    await add_tags(server, "X1", "X2")
    charger = ListCharger(version)
    client = await charger.connect(url("LL4"))
    try:
        await synced(server, charger, 1)
        # Someone else (a relay client, a technician) replaced the list meanwhile.
        charger.list_version, charger.entries = 7, {"OTHER": {"status": "Accepted"}}
        result = await server.local_lists.sync("LL4")
        assert result.ok and result.parts == ("Full",) and result.version == 8
        assert sorted(charger.entries) == ["X1", "X2"]
        assert await server.local_lists.get_version("LL4") == 8
    finally:
        await client.close()


@pytest.mark.parametrize("version", VERSIONS)
async def test_d01_a_list_larger_than_one_message_goes_as_full_then_differential_parts(
        server: Loadstar, url: Callable[[str], str], version: str) -> None:
    await add_tags(server, *[f"T{i}" for i in range(5)])
    charger = ListCharger(version, items_per_message=2)
    client = await charger.connect(url("LL5"))
    try:
        await synced(server, charger, 3)
        assert [p["updateType"] for p in charger.sent] == ["Full", "Differential",
                                                           "Differential"]
        assert [len(p["localAuthorizationList"]) for p in charger.sent] == [2, 2, 1]
        assert sorted(charger.entries) == [f"T{i}" for i in range(5)]
        record = await server.store.local_list("LL5")
        assert record is not None and record.version == 3 and len(record.entries) == 5
    finally:
        await client.close()


async def test_d01_bytes_per_message_bounds_every_part(server: Loadstar,
                                                       url: Callable[[str], str]) -> None:
    await add_tags(server, *[f"LONGTAG{i:03d}" for i in range(12)])
    charger = ListCharger("2.0.1", bytes_per_message=400)
    client = await charger.connect(url("LL6"))
    try:
        await charger.wait_for(lambda: len(charger.entries) == 12)
        await server.local_lists.idle()
        assert len(charger.sent) > 1
        sizes = [len(json.dumps(p, separators=(",", ":")).encode())
                 for p in charger.sent]
        assert max(sizes) <= 400
        assert charger.sent[0]["updateType"] == "Full"
    finally:
        await client.close()


@pytest.mark.parametrize("version", VERSIONS)
async def test_d01_a_charger_without_a_local_list_is_not_sent_one(
        server: Loadstar, url: Callable[[str], str], version: str) -> None:
    await add_tags(server, "NOPE")
    charger = ListCharger(version, supported=False)
    client = await charger.connect(url("LL7"))
    try:
        # It is asked what it supports; a manual sync says so without sending a list.
        result = await server.local_lists.sync("LL7")
        assert result.status == "not_supported"
        await add_tags(server, "NOPE2")
        await server.local_lists.idle()
        assert "SendLocalList" not in charger.actions()
    finally:
        await client.close()


async def test_5_15_a_list_longer_than_the_charger_holds_is_cut_to_its_length(
        server: Loadstar, url: Callable[[str], str]) -> None:
    await add_tags(server, "A1", "A2", "A3", "A4")
    charger = ListCharger("1.6", max_length=3)
    client = await charger.connect(url("LL8"))
    try:
        await synced(server, charger, 1)
        assert sorted(charger.entries) == ["A1", "A2", "A3"]
    finally:
        await client.close()


async def test_d01_an_id_tag_change_through_the_rest_view_syncs_connected_chargers(
        server: Loadstar, url: Callable[[str], str]) -> None:
    chargers = [ListCharger("1.6"), ListCharger("2.0.1")]
    clients = [await c.connect(url(f"REST{i}")) for i, c in enumerate(chargers)]
    transport = httpx.ASGITransport(app=create_app(server))
    try:
        headers = await key(server, "write")
        async with httpx.AsyncClient(transport=transport, base_url="http://loadstar") as http:
            r = await http.post("/v2/id_tags/", headers=headers,
                                json={"value": "VIA-REST", "group": "RFID"})
            assert r.status_code == 201, r.text
        for charger in chargers:
            await charger.wait_for(lambda c=charger: "VIA-REST" in c.entries)
        await server.local_lists.idle()
        for i in range(2):
            record = await server.store.local_list(f"REST{i}")
            assert record is not None and not record.out_of_date
            assert "VIA-REST" in record.entries
    finally:
        for client in clients:
            await client.close()


async def test_d01_lists_are_out_of_date_after_a_tag_change_until_synced(
        server: Loadstar, url: Callable[[str], str]) -> None:
    await add_tags(server, "OLD")
    charger = ListCharger("1.6")
    client = await charger.connect(url("LL9"))
    await synced(server, charger, 1)
    await client.close()
    await server.id_tags.create({"value": "WHILE-AWAY"})
    await server.local_lists.idle()
    record = await server.store.local_list("LL9")
    assert record is not None and record.out_of_date
    # Back: the list it holds is ours (same version), so only the new tag goes out.
    client = await charger.connect(url("LL9"))
    try:
        await charger.wait_for(lambda: "WHILE-AWAY" in charger.entries)
        await server.local_lists.idle()
        assert charger.sent[-1]["updateType"] == "Differential"
        assert charger.tags(charger.sent[-1]) == ["WHILE-AWAY"]
        record = await server.store.local_list("LL9")
        assert record is not None and not record.out_of_date
    finally:
        await client.close()


@pytest.mark.parametrize("version", VERSIONS)
async def test_c11_clear_cache_is_sent_and_recorded(server: Loadstar,
                                                    url: Callable[[str], str],
                                                    version: str) -> None:
    charger = ListCharger(version)
    client = await charger.connect(url("CC1"))
    try:
        result = await server.local_lists.clear_cache("CC1")
        assert result.ok and ("ClearCache", {}) in charger.calls
        commands = await server.store.list_commands("CC1", limit=50)
        assert any(c.action == "ClearCache" and c.status == "accepted" for c in commands)
    finally:
        await client.close()
