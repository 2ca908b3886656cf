"""GetVariables / SetVariables (2.0.1 B06, B05) split to the station's DeviceDataCtrlr
ItemsPerMessage and BytesPerMessage, results merged in request order; the CSMS's own post-boot
configuration is split the same way."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from csms.config import Config
from csms.service import Loadstar
from tests.e2e.stations import sent, station
from tests.raw_client import RawClient


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False
    config.ocpp.configure_after_boot = False
    return config


def reversed_results(p: dict[str, Any]) -> dict[str, Any]:
    """Answers GetVariables with each variable's name as its value, in reverse order (a
    station need not answer in request order)."""
    return {"getVariableResult": [
        {"attributeStatus": "Accepted", "component": d["component"], "variable": d["variable"],
         "attributeValue": d["variable"]["name"]} for d in reversed(p["getVariableData"])]}


def set_results(p: dict[str, Any]) -> dict[str, Any]:
    return {"setVariableResult": [
        {"attributeStatus": "Accepted", "component": d["component"], "variable": d["variable"]}
        for d in p["setVariableData"]]}


async def report_limits(c: RawClient, **values: str) -> None:
    """NotifyReport of DeviceDataCtrlr: `ItemsPerMessage_GetVariables="2"` and the like."""
    data = []
    for key, value in values.items():
        name, instance = key.split("_")
        data.append({"component": {"name": "DeviceDataCtrlr"},
                     "variable": {"name": name, "instance": instance},
                     "variableAttribute": [{"type": "Actual", "value": value,
                                            "mutability": "ReadOnly"}]})
    await c.ok("NotifyReport", {"requestId": 1, "generatedAt": "2026-12-01T00:00:00Z",
                                "seqNo": 0, "reportData": data})


NAMES = [("OCPPCommCtrlr", f"Var{i}") for i in range(5)]


async def test_b06_get_variables_are_split_by_items_per_message(server: Loadstar,
                                                                url) -> None:
    c = await station(url, "SPLIT", "ocpp2.0.1", {"GetVariables": reversed_results})
    await report_limits(c, ItemsPerMessage_GetVariables="2", ItemsPerMessage_SetVariables="1",
                        BytesPerMessage_GetVariables="4000")
    results = await server.variables.get("SPLIT", NAMES)
    calls = await sent(c, "GetVariables")
    assert [len(p["getVariableData"]) for p in calls] == [2, 2, 1]
    assert [r["attributeValue"] for r in results] == [v for _, v in NAMES]
    await c.close()


async def test_b05_set_variables_are_split_by_items_per_message(server: Loadstar,
                                                                url) -> None:
    c = await station(url, "SETSPLIT", "ocpp2.0.1", {"SetVariables": set_results})
    await report_limits(c, ItemsPerMessage_GetVariables="2", ItemsPerMessage_SetVariables="1")
    results = await server.variables.set("SETSPLIT", [
        ("OCPPCommCtrlr", "HeartbeatInterval", "60"), ("AuthCtrlr", "Enabled", "true"),
        ("SampledDataCtrlr@1", "TxUpdatedInterval", "30")])
    calls = await sent(c, "SetVariables")
    assert [len(p["setVariableData"]) for p in calls] == [1, 1, 1]
    assert calls[2]["setVariableData"][0]["component"] == {"name": "SampledDataCtrlr",
                                                           "evse": {"id": 1}}
    assert [r["variable"]["name"] for r in results] == ["HeartbeatInterval", "Enabled",
                                                        "TxUpdatedInterval"]
    await c.close()


async def test_b06_each_get_variables_message_stays_within_bytes_per_message(
        server: Loadstar, url) -> None:
    c = await station(url, "BYTES", "ocpp2.0.1", {"GetVariables": reversed_results})
    await report_limits(c, BytesPerMessage_GetVariables="300",
                        ItemsPerMessage_GetVariables="50")
    names = [("OCPPCommCtrlr", f"AVariableWithAFairlyLongName{i}") for i in range(8)]
    results = await server.variables.get("BYTES", names)
    frames = []
    while not c.server_calls.empty():
        frames.append(c.server_calls.get_nowait())
    frames = [f for f in frames if f[2] == "GetVariables"]
    assert len(frames) > 1
    # The message id is the server's; count it as the longest one OCPP allows (36).
    assert all(len(json.dumps([2, "x" * 36, f[2], f[3]], separators=(",", ":"))) <= 300
               for f in frames)
    assert [r["attributeValue"] for r in results] == [v for _, v in names]
    await c.close()


async def test_b06_unknown_limits_are_asked_once_then_kept(server: Loadstar, url) -> None:
    def answer(p: dict[str, Any]) -> dict[str, Any]:
        data = p["getVariableData"]
        if data[0]["component"]["name"] == "DeviceDataCtrlr":
            return {"getVariableResult": [
                {"attributeStatus": "Accepted", "component": d["component"],
                 "variable": d["variable"],
                 "attributeValue": "3" if d["variable"]["name"] == "ItemsPerMessage"
                 else "65000"} for d in data]}
        return reversed_results(p)

    c = await station(url, "ASK", "ocpp2.0.1", {"GetVariables": answer})
    await server.variables.get("ASK", NAMES)
    await server.variables.get("ASK", NAMES[:4])
    calls = await sent(c, "GetVariables")
    asked = [p for p in calls if p["getVariableData"][0]["component"]["name"]
             == "DeviceDataCtrlr"]
    assert len(asked) == 1
    assert [len(p["getVariableData"]) for p in calls if p not in asked] == [3, 2, 3, 1]
    await c.close()


async def test_b06_a_station_that_knows_no_limits_gets_one_message(server: Loadstar,
                                                                   url) -> None:
    def answer(p: dict[str, Any]) -> dict[str, Any]:
        data = p["getVariableData"]
        if data[0]["component"]["name"] == "DeviceDataCtrlr":
            return {"getVariableResult": [
                {"attributeStatus": "UnknownVariable", "component": d["component"],
                 "variable": d["variable"]} for d in data]}
        return reversed_results(p)

    c = await station(url, "ONE", "ocpp2.0.1", {"GetVariables": answer})
    results = await server.variables.get("ONE", NAMES)
    await server.variables.get("ONE", NAMES)
    # Asked once (4 variables), then each request as one message.
    assert [len(p["getVariableData"]) for p in await sent(c, "GetVariables")] == [4, 5, 5]
    assert [r["attributeValue"] for r in results] == [v for _, v in NAMES]
    await c.close()


async def test_b05_post_boot_configuration_is_split_by_the_reported_items_per_message(
        server: Loadstar, url) -> None:
    server.config.ocpp.configure_after_boot = True
    c = await station(url, "CONF", "ocpp2.0.1", {})
    await report_limits(c, ItemsPerMessage_GetVariables="3", ItemsPerMessage_SetVariables="1")
    await c.close()
    # The next boot, on new firmware, is configured again, now within the reported limits.
    c = await RawClient.connect(url("CONF"), "ocpp2.0.1")
    await c.ok("BootNotification", {"reason": "FirmwareUpdate", "chargingStation": {
        "vendorName": "Acme", "model": "X2", "firmwareVersion": "2.0"}})
    actions = []
    while len([a for a in actions if a[0] == "GetVariables"]) < 3:
        call = await asyncio.wait_for(c.server_calls.get(), 10)
        actions.append((call[2], len(call[3].get("setVariableData")
                                     or call[3].get("getVariableData") or [])))
    assert actions == [("SetVariables", 1), ("SetVariables", 1), ("GetVariables", 3),
                       ("GetVariables", 3), ("GetVariables", 2)]
    await c.close()
