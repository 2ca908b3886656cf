"""Post-boot configuration happens once per firmware: a reconnect storm costs no calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from csms.service import Loadstar
from tests.raw_client import RawClient


def boot16(firmware: str) -> dict[str, str]:
    return {"chargePointVendor": "Acme", "chargePointModel": "X1", "firmwareVersion": firmware}


async def configured_for(server: Loadstar, cp_id: str) -> str:
    """The fingerprint the configuration job stored (it ends a moment after its last call)."""
    for _ in range(500):
        found = server.store.capabilities([cp_id]).get(cp_id, {}).get("configured_for")
        if found:
            return str(found)
        await asyncio.sleep(0.01)
    raise AssertionError("the post-boot configuration never finished")


async def calls_after_boot(url: Callable[[str], str], cp_id: str, firmware: str) -> list[str]:
    """The actions the server sent after this boot (a Heartbeat round trip later: the
    configuration's first CALL goes out before the server reads another frame)."""
    c = await RawClient.connect(url(cp_id), "ocpp1.6")
    try:
        await c.ok("BootNotification", boot16(firmware))
        await c.ok("Heartbeat", {})
        actions = []
        while not c.server_calls.empty():
            actions.append(c.server_calls.get_nowait()[2])
        if actions:
            # Let it finish (it makes three calls) before the charger goes away.
            while len(actions) < 3:
                actions.append((await asyncio.wait_for(c.server_calls.get(), 10))[2])
        return actions
    finally:
        await c.close()


async def test_a_reboot_on_the_same_firmware_is_not_configured_again(
        server: Loadstar, url: Callable[[str], str]) -> None:
    first = await calls_after_boot(url, "CP-1", "1.0")
    assert first == ["ChangeConfiguration", "ChangeConfiguration", "GetConfiguration"]
    await configured_for(server, "CP-1")
    assert await calls_after_boot(url, "CP-1", "1.0") == []
    # New firmware may have forgotten the settings, or handle profiles differently.
    assert await calls_after_boot(url, "CP-1", "2.0") == first
