"""Every outbound command is an awaitable call whose command and answer are recorded."""

from __future__ import annotations

import pytest

from csms.config import Config
from csms.service import Loadstar
from simulators.charger import SimCharger
from simulators.clock import SimClock
from simulators.ev import EV


@pytest.fixture
def config(config: Config) -> Config:
    config.load.enabled = False  # only the commands under test reach the charger
    return config


@pytest.mark.parametrize("protocol", ["ocpp1.6", "ocpp2.0.1"])
async def test_each_outbound_command_is_answered_and_recorded(server: Loadstar,
                                                               protocol: str) -> None:
    clock = SimClock(speed=30)
    url = f"ws://127.0.0.1:{server.ocpp_port}/ocpp"
    charger = SimCharger("CMD", url, protocol=protocol, clock=clock, meter_interval_s=60)
    await charger.start()
    await charger.wait_for(lambda: charger.booted.is_set(), 10)
    cmds = server.commands
    v16 = protocol == "ocpp1.6"

    assert (await cmds.trigger_message("CMD", "StatusNotification", 1)).ok
    assert (await cmds.change_availability("CMD", 1, operative=True)).ok
    if v16:
        assert (await cmds.change_configuration("CMD", "HeartbeatInterval", "120")).ok
        got = await cmds.get_configuration("CMD", ["HeartbeatInterval"])
        assert got.response["configurationKey"][0]["value"] == "120"
    else:
        assert (await cmds.set_variables("CMD", [("OCPPCommCtrlr", "HeartbeatInterval",
                                                  "120")])).ok
        got = await cmds.get_variables("CMD", [("OCPPCommCtrlr", "HeartbeatInterval")])
        assert got.response["getVariableResult"][0]["attributeValue"] == "120"
        assert (await cmds.get_base_report("CMD")).ok

    assert (await cmds.remote_start("CMD", "REMOTE1", 1)).ok
    # Like a real charger, it starts the remotely authorised transaction once a car plugs in.
    await charger.plug_in(1, EV(battery_kwh=60, soc=0.5, max_power_kw=11))
    tx = await charger.wait_for_tx_started(1, timeout=10)
    profile_v16 = {"chargingProfileId": 7, "stackLevel": 3,
                   "chargingProfilePurpose": "TxDefaultProfile",
                   "chargingProfileKind": "Relative",
                   "chargingSchedule": {"chargingRateUnit": "A",
                                        "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                    "limit": 10.0}]}}
    profile_v201 = {"id": 7, "stackLevel": 3, "chargingProfilePurpose": "TxDefaultProfile",
                    "chargingProfileKind": "Relative",
                    "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                                          "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                      "limit": 10.0}]}]}
    set_result = await cmds.set_charging_profile("CMD", 1, profile_v16 if v16 else profile_v201)
    assert set_result.ok
    composite = await cmds.get_composite_schedule("CMD", 1, 600, "A")
    assert composite.ok
    schedule = composite.response.get("chargingSchedule") or composite.response["schedule"]
    # The charger's composite may begin a moment before the profile was installed.
    assert schedule["chargingSchedulePeriod"][-1]["limit"] == 10.0
    assert (await cmds.clear_charging_profile("CMD", profile_id=7)).ok
    assert (await cmds.remote_stop("CMD", str(tx.transaction_id))).ok
    await charger.wait_for_tx_ended(1, timeout=10)
    unlock = await cmds.unlock_connector("CMD", 1)
    assert unlock.status in ("accepted", "rejected") and unlock.response is not None
    assert (await cmds.reset("CMD", hard=False)).ok

    recorded = await server.store.list_commands("CMD", limit=50)
    actions = {c.action for c in recorded}
    expected = {"TriggerMessage", "ChangeAvailability", "SetChargingProfile",
                "GetCompositeSchedule", "ClearChargingProfile", "UnlockConnector", "Reset"}
    expected |= ({"RemoteStartTransaction", "RemoteStopTransaction", "ChangeConfiguration",
                  "GetConfiguration"} if v16 else
                 {"RequestStartTransaction", "RequestStopTransaction", "SetVariables",
                  "GetVariables", "GetBaseReport"})
    assert expected <= actions
    assert all(c.status in ("accepted", "rejected") and c.answered_at is not None
               and c.response is not None for c in recorded)
    await charger.stop()


async def test_a_command_to_an_offline_charger_is_recorded_as_failed(server: Loadstar) -> None:
    result = await server.commands.reset("NOBODY")
    assert result.status == "failed" and result.error
    [record] = await server.store.list_commands("NOBODY")
    assert record.status == "failed" and record.action == "Reset"
