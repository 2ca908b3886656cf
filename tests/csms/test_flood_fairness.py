"""A charger that floods is slowed down; the others are not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from csms.config import Config
from tests.conftest import make_config
from tests.raw_client import RawClient

BURST = 10


@pytest.fixture
def config(tmp_path: Path) -> Config:
    # One message every 5 s after a burst of 10: the throttle shows long before a test times out.
    return make_config(tmp_path, message_burst=BURST, max_messages_per_s=0.2,
                       configure_after_boot=False)


async def test_a_flooding_charger_is_throttled_while_another_is_answered_at_once(
        url: Callable[[str], str]) -> None:
    flooder = await RawClient.connect(url("FLOOD"), "ocpp1.6")
    other = await RawClient.connect(url("OTHER"), "ocpp1.6")
    try:
        await other.ok("BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"})
        for i in range(3 * BURST):
            await flooder.ws.send(json.dumps([2, f"hb-{i}", "Heartbeat", {}]))
        await other.ok("MeterValues", {"connectorId": 1, "meterValue": [
            {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "1"}]}]})
        await other.ok("Heartbeat", {})
        # The other charger was answered twice; the flooder got its burst and no more (its
        # first answer may still be on its way: await it rather than count too early).
        first = await asyncio.wait_for(flooder._unmatched.get(), 10)
        assert first[0] == 3, first
        answered = 1 + flooder._unmatched.qsize()
        assert answered <= BURST + 1, answered
    finally:
        flooder.ws.transport.abort()  # its close would wait behind its own unread flood
        await flooder.close()
        await other.close()
