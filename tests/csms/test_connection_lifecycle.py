"""A charger's connection from boot to shutdown: configuration, replacement, one CALL at a
time, timeouts, late replies, and the online flag across a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from csms.config import Config
from csms.domain import Booted, ConnectionChanged
from csms.service import Loadstar
from csms.store import SqliteStore
from csms.store.base import CommandRecord
from tests.conftest import make_config
from tests.raw_client import RawClient, default_answer


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     within_s: float = 5.0) -> None:
    """Wait until `check()` holds (work the server does after its answer has no event)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def running(config: Config) -> AsyncIterator[Loadstar]:
    service = Loadstar(config)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def ws_url(service: Loadstar, cp_id: str) -> str:
    return f"ws://127.0.0.1:{service.ocpp_port}/ocpp/{cp_id}"


async def commands_of(service: Loadstar, cp_id: str) -> list[CommandRecord]:
    """The charger's commands, oldest first."""
    return list(reversed(await service.store.list_commands(cp_id)))


def result(unique_id: str, payload: dict[str, Any]) -> str:
    return json.dumps([3, unique_id, payload])


# -- post-boot configuration -----------------------------------------------------------------


async def test_after_a_1_6_boot_the_charger_is_configured_and_its_capabilities_stored(
        server: Loadstar, url: Callable[[str], str]) -> None:
    c = await RawClient.connect(url("CFG16"), "ocpp1.6")
    try:
        await c.ok("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X1"})
        calls = [await c.server_calls.get() for _ in range(3)]
        assert [(m[2], m[3].get("key")) for m in calls[:2]] == [
            ("ChangeConfiguration", "MeterValueSampleInterval"),
            ("ChangeConfiguration", "MeterValuesSampledData"),
        ]
        assert calls[0][3]["value"] == str(server.config.ocpp.meter_sample_interval_s)
        assert calls[1][3]["value"].split(",") == server.config.ocpp.meter_measurands
        assert calls[2][2] == "GetConfiguration"
        assert "ChargingScheduleAllowedChargingRateUnit" in calls[2][3]["key"]

        async def capabilities_stored() -> bool:
            cp = await server.store.get_charge_point("CFG16")
            return cp is not None and "rate_units" in cp.capabilities

        await eventually(capabilities_stored, "capabilities saved")
        cp = await server.store.get_charge_point("CFG16")
        assert cp is not None
        assert cp.capabilities["rate_units"] == ["A", "W"]
        assert cp.capabilities["max_stack_level"] == 8
        commands = await commands_of(server, "CFG16")
        assert [(k.action, k.status) for k in commands] == [
            ("ChangeConfiguration", "accepted"), ("ChangeConfiguration", "accepted"),
            ("GetConfiguration", "accepted")]
        assert commands[2].response is not None and commands[2].response["configurationKey"]
    finally:
        await c.close()


async def test_after_a_2_0_1_boot_the_station_is_configured_and_its_capabilities_stored(
        server: Loadstar, url: Callable[[str], str]) -> None:
    c = await RawClient.connect(url("CFG201"), "ocpp2.0.1")
    try:
        await c.ok("BootNotification", {"reason": "PowerUp",
                                        "chargingStation": {"model": "Y2", "vendorName": "Acme"}})
        set_vars, get_vars = await c.server_calls.get(), await c.server_calls.get()
        assert set_vars[2] == "SetVariables"
        assert {"component": {"name": "SampledDataCtrlr"},
                "variable": {"name": "TxUpdatedInterval"},
                "attributeValue": str(server.config.ocpp.meter_sample_interval_s)} \
            in set_vars[3]["setVariableData"]
        assert get_vars[2] == "GetVariables"
        asked = {(d["component"]["name"], d["variable"]["name"])
                 for d in get_vars[3]["getVariableData"]}
        assert {("SmartChargingCtrlr", "RateUnit"),
                ("SmartChargingCtrlr", "ProfileStackLevel")} <= asked

        async def capabilities_stored() -> bool:
            cp = await server.store.get_charge_point("CFG201")
            return cp is not None and "rate_units" in cp.capabilities

        await eventually(capabilities_stored, "capabilities saved")
        cp = await server.store.get_charge_point("CFG201")
        assert cp is not None
        assert cp.capabilities["rate_units"] == ["A", "W"]
        assert cp.capabilities["max_stack_level"] == 3
        assert [(k.action, k.status) for k in await commands_of(server, "CFG201")] == [
            ("SetVariables", "accepted"), ("GetVariables", "accepted")]
    finally:
        await c.close()


async def test_a_rejected_boot_is_not_followed_by_configuration(tmp_path: Path) -> None:
    config = make_config(tmp_path, allow_unknown_chargers=False)
    async with running(config) as service:
        c = await RawClient.connect(ws_url(service, "STRANGER"), "ocpp1.6")
        try:
            boot = await c.ok("BootNotification", {"chargePointVendor": "Acme",
                                                   "chargePointModel": "X1"})
            assert boot["status"] == "Rejected"
            # Frames are answered in order: a configuration CALL would already be queued. The
            # Heartbeat of a Rejected charger is refused (B03.FR.07), still in order.
            assert (await c.call("Heartbeat", {}))[2] == "SecurityError"
            assert c.server_calls.empty()
            assert await service.store.list_commands("STRANGER") == []
        finally:
            await c.close()


# -- reconnects ------------------------------------------------------------------------------


async def test_a_reconnect_with_the_same_id_replaces_the_old_connection(
        server: Loadstar, url: Callable[[str], str]) -> None:
    events = server.bus.subscribe()
    await server.store.register_charge_point("TWICE")
    old = await RawClient.connect(url("TWICE"), "ocpp1.6")
    await old.ok("Heartbeat", {})
    # An outbound call waits on the old connection (the raw client does not answer triggers).
    pending = asyncio.create_task(server.commands.trigger_message("TWICE", "Heartbeat"))
    assert (await old.server_calls.get())[2] == "TriggerMessage"

    new = await RawClient.connect(url("TWICE"), "ocpp1.6")
    try:
        await old.ws.wait_closed()
        assert old.ws.close_code == 1001
        outcome = await pending
        assert outcome.status == "failed" and outcome.response is None
        [command] = await server.store.list_commands("TWICE")
        assert command.status == "failed"

        assert (await new.ok("Heartbeat", {}))["currentTime"]
        conn = server.registry.get("TWICE")
        assert conn is not None and conn.ws.remote_address == new.ws.local_address
        cp = await server.store.get_charge_point("TWICE")
        assert cp is not None and cp.online
        # Commands now reach the new connection.
        again = asyncio.create_task(server.commands.trigger_message("TWICE", "Heartbeat"))
        call = await new.server_calls.get()
        await new.ws.send(result(call[1], {"status": "Accepted"}))
        assert (await again).status == "accepted"
    finally:
        await new.close()
        await old.close()

    changes: list[bool] = []
    while not changes or changes[-1]:  # up to the new connection's own offline event
        event = await events.get()
        if isinstance(event, ConnectionChanged) and event.cp_id == "TWICE":
            changes.append(event.online)
    assert changes == [True, True, False], "the replaced connection must not report offline"
    cp = await server.store.get_charge_point("TWICE")
    assert cp is not None and not cp.online


# -- one CALL in flight ----------------------------------------------------------------------


async def test_concurrent_commands_reach_the_charger_one_at_a_time(
        server: Loadstar, url: Callable[[str], str]) -> None:
    c = await RawClient.connect(url("SERIAL"), "ocpp1.6")  # answers no TriggerMessage itself
    try:
        await c.ok("Heartbeat", {})
        first = asyncio.create_task(server.commands.trigger_message("SERIAL", "Heartbeat"))
        second = asyncio.create_task(
            server.commands.trigger_message("SERIAL", "StatusNotification", connector_id=1))
        call1 = await c.server_calls.get()

        async def both_recorded() -> bool:
            return len(await server.store.list_commands("SERIAL")) == 2

        await eventually(both_recorded, "both commands recorded")
        await c.ok("Heartbeat", {})  # a round trip: a second CALL would have arrived by now
        assert c.server_calls.empty(), "a second CALL was sent before the first was answered"
        assert not second.done()

        await c.ws.send(result(call1[1], {"status": "Accepted"}))
        call2 = await c.server_calls.get()
        assert call2[1] != call1[1]
        assert {call1[3]["requestedMessage"], call2[3]["requestedMessage"]} == {
            "Heartbeat", "StatusNotification"}
        await c.ws.send(result(call2[1], {"status": "Rejected"}))

        by_message = {call1[3]["requestedMessage"]: "accepted",
                      call2[3]["requestedMessage"]: "rejected"}
        assert (await first).status == by_message["Heartbeat"]
        assert (await second).status == by_message["StatusNotification"]
    finally:
        await c.close()


# -- timeouts and late replies ---------------------------------------------------------------


async def test_a_charger_that_never_answers_gets_its_command_recorded_as_timeout(
        tmp_path: Path) -> None:
    async with running(make_config(tmp_path, call_timeout_s=0.3)) as service:
        c = await RawClient.connect(ws_url(service, "SILENT"), "ocpp2.0.1")
        try:
            await c.ok("Heartbeat", {})
            outcome = await service.commands.trigger_message("SILENT", "Heartbeat")
            assert outcome.status == "timeout" and outcome.response is None
            [command] = await service.store.list_commands("SILENT")
            assert command.action == "TriggerMessage" and command.status == "timeout"
            assert (await c.server_calls.get())[2] == "TriggerMessage"
            await c.ok("Heartbeat", {})  # the connection itself is fine
        finally:
            await c.close()


async def test_a_reply_after_its_call_timed_out_is_never_matched_to_the_next_call(
        tmp_path: Path) -> None:
    async with running(make_config(tmp_path, call_timeout_s=0.3)) as service:
        c = await RawClient.connect(ws_url(service, "LATE"), "ocpp1.6")
        try:
            await c.ok("Heartbeat", {})
            timed_out = await service.commands.trigger_message("LATE", "Heartbeat")
            assert timed_out.status == "timeout"
            call1 = await c.server_calls.get()
            # A generous timeout for the next call, so a slow machine cannot time it out too.
            service.config.ocpp.call_timeout_s = 30.0

            nxt = asyncio.create_task(service.commands.trigger_message("LATE", "MeterValues"))
            call2 = await c.server_calls.get()
            assert call2[1] != call1[1]
            # The late answer to the first call arrives while the second waits for its own.
            await c.ws.send(result(call1[1], {"status": "Accepted"}))
            await c.ws.send(result(call2[1], {"status": "Rejected"}))
            outcome = await nxt
            assert outcome.status == "rejected"
            assert outcome.response == {"status": "Rejected"}
            assert [(k.action, k.status) for k in await commands_of(service, "LATE")] == [
                ("TriggerMessage", "timeout"), ("TriggerMessage", "rejected")]
        finally:
            await c.close()


async def test_a_late_reply_when_nothing_is_pending_is_dropped_without_an_answer(
        tmp_path: Path) -> None:
    async with running(make_config(tmp_path, call_timeout_s=0.3)) as service:
        c = await RawClient.connect(ws_url(service, "LATE2"), "ocpp2.0.1")
        try:
            await c.ok("Heartbeat", {})
            assert (await service.commands.trigger_message("LATE2", "Heartbeat")).status \
                == "timeout"
            call = await c.server_calls.get()
            await c.ws.send(result(call[1], {"status": "Accepted"}))
            # The next reply we get must be the Heartbeat's, not an answer to the late reply.
            reply = await c.send_raw(json.dumps([2, "hb-after-late", "Heartbeat", {}]))
            assert reply[:2] == [3, "hb-after-late"]
            [command] = await service.store.list_commands("LATE2")
            assert command.status == "timeout"
        finally:
            await c.close()


# -- shutdown and restart --------------------------------------------------------------------


async def test_a_graceful_stop_closes_charger_sockets_and_leaves_them_offline(
        tmp_path: Path) -> None:
    config = make_config(tmp_path)
    service = Loadstar(config)
    await service.start()
    for cp_id in ("STOP16", "STOP201"):
        await service.store.register_charge_point(cp_id)
    c16 = await RawClient.connect(ws_url(service, "STOP16"), "ocpp1.6",
                                  answerer=lambda action, payload: None)
    c201 = await RawClient.connect(ws_url(service, "STOP201"), "ocpp2.0.1")
    try:
        await c16.ok("Heartbeat", {})
        await c201.ok("Heartbeat", {})
        cp = await service.store.get_charge_point("STOP16")
        assert cp is not None and cp.online
        await service.stop()
        for c in (c16, c201):
            await c.ws.wait_closed()
            assert c.ws.close_code == 1000
    finally:
        await c16.close()
        await c201.close()

    store = SqliteStore(config.store.path)  # look at the file without starting a server
    await store.open()
    try:
        for cp_id in ("STOP16", "STOP201"):
            cp = await store.get_charge_point(cp_id)
            assert cp is not None and not cp.online, cp_id
    finally:
        await store.close()


async def test_a_command_in_flight_at_shutdown_is_recorded_as_failed(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    service = Loadstar(config)
    await service.start()
    c = await RawClient.connect(ws_url(service, "BUSY"), "ocpp1.6")
    try:
        await c.ok("Heartbeat", {})
        pending = asyncio.create_task(service.commands.trigger_message("BUSY", "Heartbeat"))
        assert (await c.server_calls.get())[2] == "TriggerMessage"
        await service.stop()
        assert (await pending).status == "failed"
    finally:
        await c.close()

    store = SqliteStore(config.store.path)
    await store.open()
    try:
        [command] = await store.list_commands("BUSY")
        assert command.status == "failed", "the command must not stay pending forever"
    finally:
        await store.close()


async def test_chargers_left_online_by_a_crash_are_offline_after_a_restart(
        tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = SqliteStore(config.store.path)  # what a crashed server leaves behind
    await store.open()
    await store.record_boot(Booted("CRASHED", "ocpp1.6", "Acme", "X1", None, "1"),
                            datetime.now(UTC))
    await store.close()

    async with running(config) as service:
        cp = await service.store.get_charge_point("CRASHED")
        assert cp is not None and not cp.online
        c = await RawClient.connect(ws_url(service, "CRASHED"), "ocpp1.6",
                                    answerer=default_answer)
        try:
            await c.ok("Heartbeat", {})
            cp = await service.store.get_charge_point("CRASHED")
            assert cp is not None and cp.online
        finally:
            await c.close()


async def test_commands_a_killed_server_left_pending_are_failed_at_the_next_start(
        tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = SqliteStore(config.store.path)  # what a server killed mid-command leaves behind
    await store.open()
    left = await store.record_command("GONE", "Reset", {"type": "Soft"}, datetime.now(UTC))
    await store.close()

    async with running(config) as service:
        [command] = await service.store.list_commands("GONE")
        assert command.id == left and command.status == "failed"
        assert command.response is not None and "interrupted" in command.response["error"]
