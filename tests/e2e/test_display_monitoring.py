"""Display messages (O01-O05), monitoring (N02-N06), CustomerInformation (N09/N10) and
SetNetworkProfile (B09): typed 2.0.1 helpers against raw stations that answer and send the
report parts, assembled per requestId."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adapters.http.server import HttpServer
from csms.config import Config
from csms.helper_versions import WrongVersion
from csms.network_profile import NetworkProfile, set_network_profile
from csms.service import Loadstar
from tests.adapters.catalog_helpers import key
from tests.e2e.stations import sent, station
from tests.e2e.test_station_ops_cli import cli


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False
    config.ocpp.configure_after_boot = False
    return config


def shown(message_id: int, text: str) -> dict:
    return {"id": message_id, "priority": "NormalCycle",
            "message": {"format": "UTF8", "content": text}}


async def test_o01_set_display_message_sends_the_message_and_o05_clears_it(
        server: Loadstar, url) -> None:
    c = await station(url, "DSP1", "ocpp2.0.1", {
        "SetDisplayMessage": lambda p: {"status": "Accepted"},
        "ClearDisplayMessage": lambda p: {"status": "Unknown" if p["id"] != 5 else "Accepted"}})
    result = await server.display_monitoring.set_display_message(
        "DSP1", 5, "Welcome", priority="InFront", language="en", state="Idle")
    assert result.ok and result.response == {"status": "Accepted"}
    call = await asyncio.wait_for(c.server_calls.get(), 10)
    assert call[2:] == ["SetDisplayMessage", {"message": {
        "id": 5, "priority": "InFront", "state": "Idle",
        "message": {"format": "UTF8", "content": "Welcome", "language": "en"}}}]
    cleared = await server.display_monitoring.clear_display_message("DSP1", 5)
    assert cleared.response == {"status": "Accepted"}
    unknown = await server.display_monitoring.clear_display_message("DSP1", 6)
    assert unknown.response == {"status": "Unknown"}
    await c.close()


async def test_o03_get_display_messages_returns_the_assembled_report(server: Loadstar,
                                                                     url) -> None:
    c = await station(url, "DSP2", "ocpp2.0.1",
                      {"GetDisplayMessages": lambda p: {"status": "Accepted"}})
    asked = asyncio.create_task(server.display_monitoring.display_messages(
        "DSP2", priority="NormalCycle", timeout_s=10))
    call = await asyncio.wait_for(c.server_calls.get(), 10)
    assert call[2] == "GetDisplayMessages"
    request = call[3]
    assert request["priority"] == "NormalCycle" and "id" not in request
    # NotifyDisplayMessages parts carry no seqNo: they are kept in arrival order.
    await c.ok("NotifyDisplayMessages", {"requestId": request["requestId"], "tbc": True,
                                         "messageInfo": [shown(1, "a")]})
    assert not asked.done()
    await c.ok("NotifyDisplayMessages", {"requestId": request["requestId"],
                                         "messageInfo": [shown(2, "b")]})
    report = await asked
    assert report.status == "Accepted" and report.complete
    assert [m["id"] for m in report.items] == [1, 2]
    await c.close()


async def test_o02_unknown_display_messages_need_no_report(server: Loadstar, url) -> None:
    c = await station(url, "DSP3", "ocpp2.0.1",
                      {"GetDisplayMessages": lambda p: {"status": "Unknown"}})
    report = await server.display_monitoring.display_messages("DSP3", ids=[9])
    assert report.status == "Unknown" and report.complete and report.items == []
    call = await asyncio.wait_for(c.server_calls.get(), 10)
    assert call[3]["id"] == [9]
    await c.close()


async def test_n04_n05_n03_n06_monitoring_commands_are_sent_as_asked(server: Loadstar,
                                                                    url) -> None:
    c = await station(url, "MON1", "ocpp2.0.1", {
        "SetVariableMonitoring": lambda p: {"setMonitoringResult": [
            {"id": 3, "status": "Accepted", "type": m["type"], "severity": m["severity"],
             "component": m["component"], "variable": m["variable"]}
            for m in p["setMonitoringData"]]},
        "SetMonitoringLevel": lambda p: {"status": "Accepted"},
        "SetMonitoringBase": lambda p: {"status": "Accepted"},
        "ClearVariableMonitoring": lambda p: {"clearMonitoringResult": [
            {"id": i, "status": "Accepted"} for i in p["id"]]}})
    monitor = {"value": 250.0, "type": "UpperThreshold", "severity": 4,
               "component": {"name": "EVSE", "evse": {"id": 1}},
               "variable": {"name": "Power"}}
    dm = server.display_monitoring
    result = await dm.set_variable_monitoring("MON1", [monitor])
    assert result.response["setMonitoringResult"][0]["id"] == 3
    assert (await dm.set_monitoring_level("MON1", 5)).response == {"status": "Accepted"}
    assert (await dm.set_monitoring_base("MON1", "FactoryDefault")).response == {
        "status": "Accepted"}
    cleared = await dm.clear_variable_monitoring("MON1", [3, 4])
    assert [r["id"] for r in cleared.response["clearMonitoringResult"]] == [3, 4]
    calls = [await asyncio.wait_for(c.server_calls.get(), 10) for _ in range(4)]
    assert [call[2:] for call in calls] == [
        ["SetVariableMonitoring", {"setMonitoringData": [monitor]}],
        ["SetMonitoringLevel", {"severity": 5}],
        ["SetMonitoringBase", {"monitoringBase": "FactoryDefault"}],
        ["ClearVariableMonitoring", {"id": [3, 4]}]]
    await c.close()


async def test_n02_get_monitoring_report_returns_the_assembled_report(server: Loadstar,
                                                                      url) -> None:
    answers = iter([{"status": "Accepted"}, {"status": "EmptyResultSet"}])
    c = await station(url, "MON2", "ocpp2.0.1", {"GetMonitoringReport": lambda p: next(answers)})
    asked = asyncio.create_task(server.display_monitoring.monitoring_report(
        "MON2", criteria=["ThresholdMonitoring"], timeout_s=10))
    request = (await asyncio.wait_for(c.server_calls.get(), 10))[3]
    assert request["monitoringCriteria"] == ["ThresholdMonitoring"]
    monitor = {"component": {"name": "EVSE"}, "variable": {"name": "Power"},
               "variableMonitoring": [{"id": 3, "transaction": False, "value": 250.0,
                                       "type": "UpperThreshold", "severity": 4}]}
    for seq, tbc in ((0, True), (1, False)):
        await c.ok("NotifyMonitoringReport", {
            "requestId": request["requestId"], "seqNo": seq, "tbc": tbc,
            "generatedAt": "2026-01-01T00:00:00Z", "monitor": [monitor]})
    report = await asked
    assert report.status == "Accepted" and report.complete and len(report.items) == 2
    empty = await server.display_monitoring.monitoring_report("MON2")
    assert empty.status == "EmptyResultSet" and empty.complete and empty.items == []
    await c.close()


async def test_n09_customer_information_returns_the_assembled_data(server: Loadstar,
                                                                   url) -> None:
    c = await station(url, "CUS1", "ocpp2.0.1",
                      {"CustomerInformation": lambda p: {"status": "Accepted"}})
    token = {"idToken": "TAG1", "type": "ISO14443"}
    asked = asyncio.create_task(server.display_monitoring.customer_information(
        "CUS1", report=True, clear=False, id_token=token, timeout_s=10))
    request = (await asyncio.wait_for(c.server_calls.get(), 10))[3]
    assert request["idToken"] == token and request["report"] and not request["clear"]
    for seq, tbc, data in ((0, True, "sessions: 3; "), (1, False, "last: 2026-01-01")):
        await c.ok("NotifyCustomerInformation", {
            "requestId": request["requestId"], "seqNo": seq, "tbc": tbc, "data": data,
            "generatedAt": "2026-01-01T00:00:00Z"})
    report = await asked
    assert report.complete and report.items == "sessions: 3; last: 2026-01-01"
    await c.close()


async def test_n10_clearing_customer_information_awaits_no_report(server: Loadstar,
                                                                  url) -> None:
    c = await station(url, "CUS2", "ocpp2.0.1",
                      {"CustomerInformation": lambda p: {"status": "Accepted"}})
    result = await server.display_monitoring.customer_information(
        "CUS2", report=False, clear=True, customer_identifier="cust-7")
    assert result.status == "Accepted" and result.complete
    request = (await asyncio.wait_for(c.server_calls.get(), 10))[3]
    assert request["customerIdentifier"] == "cust-7" and request["clear"]
    with pytest.raises(ValueError, match="names the customer"):
        await server.display_monitoring.customer_information("CUS2", report=True, clear=False)
    await c.close()


async def test_b09_set_network_profile_sends_a_valid_connection_data(server: Loadstar,
                                                                     url) -> None:
    c = await station(url, "NET1", "ocpp2.0.1",
                      {"SetNetworkProfile": lambda p: {"status": "Accepted"}})
    profile = NetworkProfile("wss://csms.example/ocpp", security_profile=3,
                             interface="Wireless0", apn="internet")
    result = await set_network_profile(server.typed_channel, "NET1", 1, profile)
    assert result.ok and result.response == {"status": "Accepted"}
    call = await asyncio.wait_for(c.server_calls.get(), 10)
    assert call[2:] == ["SetNetworkProfile", {"configurationSlot": 1, "connectionData": {
        "ocppVersion": "OCPP20", "ocppTransport": "JSON",
        "ocppCsmsUrl": "wss://csms.example/ocpp", "messageTimeout": 30,
        "securityProfile": 3, "ocppInterface": "Wireless0",
        "apn": {"apn": "internet", "apnAuthentication": "AUTO"}}}]
    with pytest.raises(ValueError, match="needs a wss:// URL"):
        await set_network_profile(server.typed_channel, "NET1", 1,
                                  NetworkProfile("ws://csms.example/ocpp"))
    assert len(await server.store.list_commands("NET1", limit=10)) == 1
    await c.close()


async def test_display_monitoring_and_network_helpers_refuse_a_1_6_charger_before_sending(
        server: Loadstar, url) -> None:
    c = await station(url, "OLD16B", "ocpp1.6", {})
    dm = server.display_monitoring
    for call in (dm.set_display_message("OLD16B", 1, "x"), dm.display_messages("OLD16B"),
                 dm.clear_display_message("OLD16B", 1), dm.set_monitoring_level("OLD16B", 3),
                 dm.monitoring_report("OLD16B"),
                 dm.customer_information("OLD16B", report=True, clear=False,
                                         customer_identifier="x"),
                 set_network_profile(server.typed_channel, "OLD16B", 0,
                                     NetworkProfile("wss://x/ocpp"))):
        with pytest.raises(WrongVersion, match="2.0.1 only"):
            await call
    assert await server.store.list_commands("OLD16B", limit=10) == []
    await c.close()


async def relay_args(server: Loadstar, http: HttpServer) -> list[str]:
    api_key = (await key(server, "read", "write"))["Authorization"].split()[1]
    return ["--url", f"http://127.0.0.1:{http.port}", "--api-key", api_key]


async def test_o01_o03_o05_cli_display_set_list_clear_through_the_relay(
        server: Loadstar, url, http: HttpServer, config: Config, tmp_path: Path) -> None:
    c = await station(url, "CLIDSP", "ocpp2.0.1", {
        "SetDisplayMessage": lambda p: {"status": "Accepted"},
        "GetDisplayMessages": lambda p: {"status": "Unknown"},
        "ClearDisplayMessage": lambda p: {"status": "Unknown"}})
    relay = await relay_args(server, http)
    code, out = await cli(tmp_path, config, "display", "set", "CLIDSP", "4", "Hello",
                          "--priority", "AlwaysFront", *relay)
    assert code == 0 and out["response"] == {"status": "Accepted"}, out
    [call] = await sent(c, "SetDisplayMessage")
    assert call["message"]["message"]["content"] == "Hello"
    assert call["message"]["priority"] == "AlwaysFront"
    code, out = await cli(tmp_path, config, "display", "list", "CLIDSP", "--id", "4", *relay)
    assert code == 0 and out["status"] == "Unknown" and out["items"] == [], out
    code, out = await cli(tmp_path, config, "display", "clear", "CLIDSP", "4", *relay)
    assert code == 1 and out["response"] == {"status": "Unknown"}, out
    await c.close()


async def test_n05_n02_cli_monitoring_level_and_report_through_the_relay(
        server: Loadstar, url, http: HttpServer, config: Config, tmp_path: Path) -> None:
    c = await station(url, "CLIMON", "ocpp2.0.1", {
        "SetMonitoringLevel": lambda p: {"status": "Accepted"},
        "SetVariableMonitoring": lambda p: {"setMonitoringResult": [
            {"status": "Rejected", "type": m["type"], "severity": m["severity"],
             "component": m["component"], "variable": m["variable"]}
            for m in p["setMonitoringData"]]},
        "GetMonitoringReport": lambda p: {"status": "EmptyResultSet"}})
    relay = await relay_args(server, http)
    code, out = await cli(tmp_path, config, "monitoring", "level", "CLIMON", "3", *relay)
    assert code == 0, out
    code, out = await cli(tmp_path, config, "monitoring", "set", "CLIMON", "EVSE@1.Power",
                          "--type", "UpperThreshold", "--value", "7000", "--severity", "4",
                          *relay)
    assert code == 1, out  # the station rejected the monitor
    code, out = await cli(tmp_path, config, "monitoring", "report", "CLIMON",
                          "--variable", "EVSE@1.Power", *relay)
    assert code == 0 and out["status"] == "EmptyResultSet", out
    assert await sent(c, "SetMonitoringLevel") == [{"severity": 3}]
    await c.close()


async def test_n10_b09_cli_customer_information_and_network_profile_through_the_relay(
        server: Loadstar, url, http: HttpServer, config: Config, tmp_path: Path) -> None:
    c = await station(url, "CLICUS", "ocpp2.0.1", {
        "CustomerInformation": lambda p: {"status": "Accepted"},
        "SetNetworkProfile": lambda p: {"status": "Rejected"}})
    relay = await relay_args(server, http)
    code, out = await cli(tmp_path, config, "customer-information", "CLICUS",
                          "--id-token", "TAG9", "--clear", *relay)
    assert code == 0 and out["status"] == "Accepted", out
    [asked] = await sent(c, "CustomerInformation")
    assert asked["idToken"] == {"idToken": "TAG9", "type": "ISO14443"}
    assert asked["clear"] and not asked["report"]
    code, out = await cli(tmp_path, config, "network-profile", "set", "CLICUS",
                          "ws://csms.example/ocpp", "--security-profile", "2", *relay)
    assert code == 2, out  # refused before sending: profile 2 is TLS
    code, out = await cli(tmp_path, config, "network-profile", "set", "CLICUS",
                          "wss://csms.example/ocpp", "--slot", "2", *relay)
    assert code == 1 and out["response"] == {"status": "Rejected"}, out
    [profile] = await sent(c, "SetNetworkProfile")
    assert profile["configurationSlot"] == 2
    assert profile["connectionData"]["ocppCsmsUrl"] == "wss://csms.example/ocpp"
    await c.close()
