"""A bare OCPP-J client on plain `websockets`: no project code, so it checks the server, not us."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

Answerer = Callable[[str, dict[str, Any]], dict[str, Any] | None]


def default_answer(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Minimal valid answers to what a CSMS asks right after boot."""
    if action == "ChangeConfiguration":
        return {"status": "Accepted"}
    if action == "GetConfiguration":
        return {"configurationKey": [
            {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True,
             "value": "Current,Power"},
            {"key": "ChargeProfileMaxStackLevel", "readonly": True, "value": "8"},
        ], "unknownKey": []}
    if action == "SetVariables":
        return {"setVariableResult": [
            {"attributeStatus": "Accepted", "component": d["component"],
             "variable": d["variable"]} for d in payload["setVariableData"]]}
    if action == "GetVariables":
        return {"getVariableResult": [
            {"attributeStatus": "Accepted", "component": d["component"],
             "variable": d["variable"],
             "attributeValue": "A,W" if d["variable"]["name"] == "RateUnit" else "3"}
            for d in payload["getVariableData"]]}
    return None


class RawClient:
    """Sends CALLs and awaits their replies; answers the server's CALLs via `answerer`."""

    def __init__(self, ws: ClientConnection, answerer: Answerer = default_answer) -> None:
        self.ws = ws
        self.answerer = answerer
        self.server_calls: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[list[Any]]] = {}
        self._unmatched: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, subprotocol: str, answerer: Answerer = default_answer,
                      **kwargs: Any) -> RawClient:
        ws = await connect(url, subprotocols=[subprotocol], **kwargs)  # type: ignore[list-item]
        return cls(ws, answerer)

    async def _read(self) -> None:
        try:
            await self._read_frames()
        finally:
            # Whoever still waits for a reply learns that none will come.
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_exception(ConnectionClosed(None, None))
            self._waiting.clear()

    async def _read_frames(self) -> None:
        async for text in self.ws:
            msg = json.loads(text)
            if msg[0] == 2:
                await self.server_calls.put(msg)
                answer = self.answerer(msg[2], msg[3])
                if answer is not None:
                    await self.ws.send(json.dumps([3, msg[1], answer]))
            elif msg[1] in self._waiting:
                self._waiting.pop(msg[1]).set_result(msg)
            else:
                await self._unmatched.put(msg)

    async def send_raw(self, text: str | bytes, reply_id: str | None = None) -> list[Any]:
        """Send any text; wait for the reply to `reply_id` (or the next unmatched reply)."""
        fut: asyncio.Future[list[Any]] | None = None
        if reply_id is not None:
            fut = asyncio.get_running_loop().create_future()
            self._waiting[reply_id] = fut
        await self.ws.send(text)
        if fut is not None:
            return await asyncio.wait_for(fut, 10)
        return await asyncio.wait_for(self._unmatched.get(), 10)

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a CALL; return the whole reply frame (CALLRESULT or CALLERROR)."""
        uid = uuid.uuid4().hex
        return await self.send_raw(json.dumps([2, uid, action, payload]), reply_id=uid)

    async def ok(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL that must succeed; return the CALLRESULT payload."""
        reply = await self.call(action, payload)
        assert reply[0] == 3, reply
        return reply[2]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):
            pass
