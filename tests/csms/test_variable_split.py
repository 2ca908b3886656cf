"""The splitter of GetVariables / SetVariables (B05, B06) is pure: messages keep the request's
order, stay within ItemsPerMessage / BytesPerMessage, and results come back in request order.
The device model keeps each instance of a variable (a real SQLite file, migrated from before)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from csms.store import SqliteStore
from csms.store.migrations import MIGRATIONS
from csms.variable_split import (
    FRAME_OVERHEAD,
    MessageLimits,
    batches,
    component_of,
    in_request_order,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)

items = st.lists(st.builds(lambda c, v: {"component": {"name": c}, "variable": {"name": v}},
                           st.text("ABCxyz", min_size=1, max_size=12),
                           st.text("ABCxyz", min_size=1, max_size=40)), max_size=30)


def frame_size(batch: list[dict]) -> int:
    body = json.dumps({"getVariableData": batch}, separators=(",", ":"))
    return FRAME_OVERHEAD + len("GetVariables") + len(body)


@given(items, st.none() | st.integers(1, 6), st.none() | st.integers(150, 900))
def test_b06_batches_keep_order_and_stay_within_the_limits(
        request: list[dict], per_message: int | None, size: int | None) -> None:
    cut = batches("GetVariables", request, MessageLimits(per_message, size))
    assert [item for batch in cut for item in batch] == request
    for batch in cut:
        assert batch
        if per_message is not None:
            assert len(batch) <= per_message
        if size is not None and len(batch) > 1:
            assert frame_size(batch) <= size
    if per_message is None and size is None:
        assert len(cut) == (1 if request else 0)


def test_b06_an_item_bigger_than_bytes_per_message_goes_alone() -> None:
    big = {"component": {"name": "C"}, "variable": {"name": "x" * 500}}
    small = {"component": {"name": "C"}, "variable": {"name": "y"}}
    assert batches("GetVariables", [small, big, small], MessageLimits(None, 200)) == [
        [small], [big], [small]]


def test_b06_results_are_put_in_request_order_and_unmatched_ones_follow() -> None:
    a = {"component": {"name": "C"}, "variable": {"name": "A"}}
    b = {"component": {"name": "C", "evse": {"id": 1}}, "variable": {"name": "A"}}
    stray = {"component": {"name": "Z"}, "variable": {"name": "Z"}, "attributeStatus": "x"}
    results = [{**stray}, {**b, "attributeStatus": "Accepted"},
               {**a, "attributeStatus": "Rejected"}]
    ordered = in_request_order([a, b], results)
    assert [r["attributeStatus"] for r in ordered] == ["Rejected", "Accepted", "x"]
    assert component_of("SampledDataCtrlr[main]@2:1") == {
        "name": "SampledDataCtrlr", "instance": "main", "evse": {"id": 2, "connectorId": 1}}


async def test_b06_the_device_model_keeps_each_instance_also_of_rows_kept_before(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    # A database as the version before this one left it: one row per variable, any instance.
    db = sqlite3.connect(path)
    by_instance = next(i for i, m in enumerate(MIGRATIONS) if "variables_by_instance" in m)
    for number, script in enumerate(MIGRATIONS[:by_instance], start=1):
        db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
    raw = {"component": {"name": "DeviceDataCtrlr"},
           "variable": {"name": "ItemsPerMessage", "instance": "GetVariables"}}
    db.execute("INSERT INTO variables VALUES (?,?,?,?,?,?,?,?)",
               ("CP", "DeviceDataCtrlr", 0, "ItemsPerMessage", "Actual", "4", json.dumps(raw),
                "2026-11-30T00:00:00Z"))
    db.commit()
    db.close()
    store = SqliteStore(str(path))
    await store.open()
    try:
        assert await store.variable_instances("CP", "DeviceDataCtrlr", "ItemsPerMessage") == {
            "GetVariables": "4"}
        await store.save_variables("CP", [{
            "component": {"name": "DeviceDataCtrlr"},
            "variable": {"name": "ItemsPerMessage", "instance": "SetVariables"},
            "variableAttribute": [{"type": "Actual", "value": "2"}]}], NOW)
        assert await store.variable_instances("CP", "DeviceDataCtrlr", "ItemsPerMessage") == {
            "GetVariables": "4", "SetVariables": "2"}
    finally:
        await store.close()
