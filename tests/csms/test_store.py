"""The SQLite store on a real file: migrations, durability semantics, sessions, the frame log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from csms.central import Central
from csms.config import OcppConfig
from csms.domain import Metered, Sample, TransactionEnded, TransactionStarted
from csms.events import EventBus
from csms.store import SqliteStore
from csms.store.base import FrameRecord
from csms.store.migrations import MIGRATIONS

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class FixedClock:
    def __init__(self, now: datetime) -> None:
        self.at = now

    def now(self) -> datetime:
        return self.at


async def open_store(path: Path) -> SqliteStore:
    store = SqliteStore(str(path))
    await store.open()
    return store


async def test_migrations_apply_once_and_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "a.db")
    await store.close()
    store = await open_store(tmp_path / "a.db")
    async with store.db.execute("PRAGMA user_version") as cur:
        assert (await cur.fetchone())[0] == len(MIGRATIONS)
    async with store.db.execute("PRAGMA journal_mode") as cur:
        assert (await cur.fetchone())[0] == "wal"
    await store.close()


async def test_session_energy_comes_from_meter_start_and_stop(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "s.db")
    sid, dup = await store.start_transaction(TransactionStarted("CP", 1, "T", T0, 500.0))
    assert not dup
    samples = tuple(
        Sample(T0 + timedelta(minutes=i), "Energy.Active.Import.Register", 500.0 + i * 100, "Wh")
        for i in range(1, 6)
    )
    await store.add_meter_values(Metered("CP", 1, samples, str(sid)))
    [active] = await store.list_sessions(active_only=True)
    assert active.energy_kwh == 0.5 and active.meter_value_count == 5
    assert await store.end_transaction(TransactionEnded("CP", str(sid), T0 + timedelta(hours=1),
                                                        2500.0, "Local"))
    [done] = await store.list_sessions()
    assert done.energy_kwh == 2.0 and done.stopped_at is not None
    assert await store.list_sessions(active_only=True) == []
    await store.close()


async def test_kwh_energy_registers_are_converted_to_wh(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "k.db")
    sid, _ = await store.start_transaction(TransactionStarted("CP", 1, None, T0, None, "tx-1"))
    await store.add_meter_values(Metered("CP", 1, (
        Sample(T0, "Energy.Active.Import.Register", 10.0, "kWh"),
        Sample(T0 + timedelta(minutes=30), "Energy.Active.Import.Register", 13.25, "kWh"),
    ), "tx-1"))
    [s] = await store.list_sessions()
    assert s.id == sid and s.energy_kwh == 3.25
    await store.close()


async def test_unknown_stop_transaction_keeps_its_samples_and_reports_unknown(
        tmp_path: Path) -> None:
    store = await open_store(tmp_path / "u.db")
    known = await store.end_transaction(TransactionEnded(
        "CP", "999", T0, 100.0, "Local", None,
        (Sample(T0, "Energy.Active.Import.Register", 100.0, "Wh"),)))
    assert known is False
    assert await store.count_meter_values("CP") == 1
    await store.close()


async def test_frame_log_is_written_with_the_next_commit_and_pruned_by_age(
        tmp_path: Path) -> None:
    store = await open_store(tmp_path / "f.db")
    store.log_frame(FrameRecord(T0 - timedelta(days=10), "CP", "in", 2, "1", "Heartbeat", "[]"))
    store.log_frame(FrameRecord(T0, "CP", "out", 3, "1", "Heartbeat", "[]"))
    await store.flush()
    assert len(await store.list_frames("CP")) == 2
    assert await store.prune_frames(T0 - timedelta(days=7)) == 1
    [left] = await store.list_frames("CP")
    assert left.direction == "out"
    await store.close()


async def test_authorization_honours_the_id_tag_list_expiry_and_blocking(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "t.db")
    clock = FixedClock(T0)
    central = Central(store, OcppConfig(authorize_all=False), clock, EventBus())
    await store.put_id_tag("GOOD", "Accepted", T0 + timedelta(days=1))
    await store.put_id_tag("OLD", "Accepted", T0 - timedelta(seconds=1))
    await store.put_id_tag("BAD", "Blocked")
    assert (await central.authorize("GOOD")).status == "Accepted"
    assert (await central.authorize("OLD")).status == "Expired"
    assert (await central.authorize("BAD")).status == "Blocked"
    assert (await central.authorize("NOBODY")).status == "Invalid"
    open_central = Central(store, OcppConfig(authorize_all=True), clock, EventBus())
    assert (await open_central.authorize("NOBODY")).status == "Accepted"
    assert (await open_central.authorize("BAD")).status == "Blocked"
    await store.close()


async def test_a_resent_meter_value_is_stored_once(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "r.db")
    sid, _ = await store.start_transaction(TransactionStarted("CP", 1, "T", T0, 0.0))
    batch = Metered("CP", 1, (
        Sample(T0, "Energy.Active.Import.Register", 100.0, "Wh"),
        Sample(T0, "Current.Import", 16.0, "A", phase="L1"),
        Sample(T0, "Current.Import", 16.0, "A", phase="L2"),
    ), str(sid))
    await store.add_meter_values(batch)
    # The acknowledgement was lost; the charger sends the same MeterValues again.
    await store.add_meter_values(batch)
    assert await store.count_meter_values("CP") == 3
    later = Metered("CP", 1, (Sample(T0 + timedelta(minutes=1), "Energy.Active.Import.Register",
                                     200.0, "Wh"),), str(sid))
    await store.add_meter_values(later)
    # A different reading under the same timestamp is new data, not a resend.
    same_second = Metered("CP", 1, (Sample(T0, "Energy.Active.Import.Register", 101.0, "Wh"),),
                          str(sid))
    await store.add_meter_values(same_second)
    assert await store.count_meter_values("CP") == 5
    await store.close()


async def test_a_charger_model_record_survives_reopening_the_store(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "m.db")
    record = {"answers": {"TxProfile": {"W/np/connector": {"accepted": 2}}},
              "composite_matches": True}
    await store.save_model_record("ACME|Box|1.2", record, T0)
    await store.save_model_record("ACME|Box|1.2", {**record, "composite_matches": False}, T0)
    await store.close()
    store = await open_store(tmp_path / "m.db")
    assert await store.list_model_records() == {
        "ACME|Box|1.2": {**record, "composite_matches": False}}
    await store.close()
