"""GetVariables / SetVariables (2.0.1 B05, B06) split to fit the station's DeviceDataCtrlr
ItemsPerMessage and BytesPerMessage (instances GetVariables / SetVariables), the results
merged back in request order.

The limits come from the device model the station reported (NotifyReport), else, where a
helper may ask, from one GetVariables whose answer is kept in that model; unknown limits send
everything as one message.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from csms.clock import Clock
from csms.helper_versions import V201, version_for
from csms.ocpp.errors import CallFailed
from csms.store import Store

if TYPE_CHECKING:  # typed_calls imports commands, which imports the OCPP handlers (this)
    from csms.typed_calls import Channel

Payload = dict[str, Any]

log = structlog.get_logger("csms.variable_split")

DEVICE_DATA = "DeviceDataCtrlr"
# action -> (the list in the request, the list in the answer)
LISTS = {"GetVariables": ("getVariableData", "getVariableResult"),
         "SetVariables": ("setVariableData", "setVariableResult")}
# The frame around a payload: [2,"<message id, at most 36 characters>","Action",{...}].
FRAME_OVERHEAD = len('[2,"","",]') + 36

Send = Callable[[str, Payload], Awaitable[Payload]]


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """At most `items` entries and `bytes` bytes per message (None: no limit known)."""

    items: int | None = None
    bytes: int | None = None


def _int(value: str | None) -> int | None:
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if number > 0 else None


def _size(action: str, list_key: str, items: list[Payload]) -> int:
    body = json.dumps({list_key: items}, separators=(",", ":"), ensure_ascii=False)
    return FRAME_OVERHEAD + len(action) + len(body.encode("utf-8"))


def batches(action: str, items: list[Payload], limits: MessageLimits) -> list[list[Payload]]:
    """`items` in order, cut into messages within `limits`; an item too big on its own still
    goes, alone (the station will say what it thinks of it)."""
    list_key = LISTS[action][0]
    out: list[list[Payload]] = []
    current: list[Payload] = []
    for item in items:
        candidate = [*current, item]
        too_many = limits.items is not None and len(candidate) > limits.items
        too_big = limits.bytes is not None and _size(action, list_key, candidate) > limits.bytes
        if current and (too_many or too_big):
            out.append(current)
            candidate = [item]
        current = candidate
    if current:
        out.append(current)
    return out


def _key(entry: Payload) -> str:
    """What names a variable in a request and its result (component, EVSE, variable,
    attribute type)."""
    return json.dumps([entry.get("component"), entry.get("variable"),
                       entry.get("attributeType", "Actual")], sort_keys=True)


def in_request_order(batch: list[Payload], results: list[Payload]) -> list[Payload]:
    """A message's results in the order of its request (a station may answer in another);
    results that match no request entry follow."""
    left = list(results)
    ordered = []
    for entry in batch:
        match = next((r for r in left if _key(r) == _key(entry)), None)
        if match is not None:
            left.remove(match)
            ordered.append(match)
    return ordered + left


async def exchange_split(send: Send, action: str, items: list[Payload],
                         limits: MessageLimits) -> list[Payload]:
    """Send `items` as as many `action` messages as `limits` need, one after the other;
    the results of all, in request order. CallFailed from the first message that fails."""
    list_key, result_key = LISTS[action]
    results: list[Payload] = []
    for batch in batches(action, items, limits):
        answer = await send(action, {list_key: batch})
        results.extend(in_request_order(batch, answer.get(result_key) or []))
    return results


async def stored_limits(store: Store, cp_id: str, action: str) -> MessageLimits | None:
    """The limits for `action` in the device model the station reported, None when it
    reported neither."""
    items = await store.variable_instances(cp_id, DEVICE_DATA, "ItemsPerMessage")
    size = await store.variable_instances(cp_id, DEVICE_DATA, "BytesPerMessage")
    if action not in items and action not in size:
        return None
    return MessageLimits(_int(items.get(action)), _int(size.get(action)))


def _asked() -> list[Payload]:
    """Both limits for both actions: one question covers every later request."""
    return [{"component": {"name": DEVICE_DATA},
             "variable": {"name": name, "instance": instance}}
            for name in ("ItemsPerMessage", "BytesPerMessage")
            for instance in ("GetVariables", "SetVariables")]


async def message_limits(store: Store, cp_id: str, action: str, now: datetime,
                         ask: Send | None = None) -> MessageLimits:
    """The limits for `action`: from the device model, else (with `ask`) from one
    GetVariables whose answer joins the device model, so it is asked once."""
    known = await stored_limits(store, cp_id, action)
    if known is not None or ask is None:
        return known or MessageLimits()
    answer = await ask("GetVariables", {"getVariableData": _asked()})
    report = [{"component": r["component"], "variable": r["variable"],
               "variableAttribute": [{"type": "Actual", "value": r.get("attributeValue")
                                      if r.get("attributeStatus") == "Accepted" else None}]}
              for r in answer.get("getVariableResult") or []]
    # An answer that names none of them still counts as asked: kept as unknown values.
    names = {(r["variable"]["name"], r["variable"].get("instance")) for r in report}
    report += [{**entry, "variableAttribute": [{"type": "Actual", "value": None}]}
               for entry in _asked()
               if (entry["variable"]["name"], entry["variable"]["instance"]) not in names]
    await store.save_variables(cp_id, report, now)
    limits = await stored_limits(store, cp_id, action)
    log.info("message_limits_asked", cp_id=cp_id, action=action,
             items=limits.items if limits else None, bytes=limits.bytes if limits else None)
    return limits or MessageLimits()


def channel_send(channel: Channel, cp_id: str) -> Send:
    """`channel`'s send for one charger as a Send: the answer, or CallFailed."""

    async def send(action: str, payload: Payload) -> Payload:
        result = await channel.send(cp_id, action, payload)
        if result.response is None:
            raise CallFailed(result.status, result.error or "no answer")
        return result.response

    return send


class NoAnswer(Exception):
    """A message of the request got no answer (offline, timeout, CALLERROR)."""


class VariableRequests:
    """GetVariables / SetVariables for any number of variables, split as the station needs."""

    def __init__(self, store: Store, channel: Channel, clock: Clock) -> None:
        self.store = store
        self.channel = channel
        self.clock = clock

    async def _exchange(self, cp_id: str, action: str, items: list[Payload]) -> list[Payload]:
        await version_for(self.channel, cp_id, action, V201)
        send = channel_send(self.channel, cp_id)
        try:
            limits = await message_limits(self.store, cp_id, action, self.clock.now(),
                                          ask=send)
            return await exchange_split(send, action, items, limits)
        except CallFailed as exc:
            raise NoAnswer(f"{action} to {cp_id}: {exc}") from exc

    async def get(self, cp_id: str, names: list[tuple[str, str]],
                  attribute: str | None = None) -> list[Payload]:
        """The getVariableResult of each (component, variable) in order; a name may be
        `Name[instance]` and a component `Name@evse` to pick an instance or EVSE."""
        items = [{"component": component_of(c), "variable": variable_of(v),
                  **({"attributeType": attribute} if attribute else {})} for c, v in names]
        return await self._exchange(cp_id, "GetVariables", items)

    async def set(self, cp_id: str, values: list[tuple[str, str, str]]) -> list[Payload]:
        """The setVariableResult of each (component, variable, value) in order."""
        items = [{"component": component_of(c), "variable": variable_of(v),
                  "attributeValue": value} for c, v, value in values]
        return await self._exchange(cp_id, "SetVariables", items)


def _named(text: str) -> dict[str, Any]:
    """`Name[instance]` as {"name", "instance"}."""
    if text.endswith("]") and "[" in text:
        name, instance = text[:-1].split("[", 1)
        return {"name": name, "instance": instance}
    return {"name": text}


def component_of(text: str) -> dict[str, Any]:
    """`Name[instance]@evse[:connector]` as a 2.0.1 component."""
    name, _, evse = text.partition("@")
    component = _named(name)
    if evse:
        evse_id, _, connector = evse.partition(":")
        component["evse"] = {"id": int(evse_id),
                             **({"connectorId": int(connector)} if connector else {})}
    return component


def variable_of(text: str) -> dict[str, Any]:
    return _named(text)
