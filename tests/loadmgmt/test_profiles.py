"""Profile builder output, and the gentle-on-hardware rules."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loadmgmt.allocator import allocate
from loadmgmt.model import Connector, Demand, Site, Snapshot
from loadmgmt.profiles import (
    SEED_PRESETS,
    Capabilities,
    ChargingProfile,
    ChargingSchedule,
    ProfileChange,
    SchedulePeriod,
    SendPolicy,
    build_profiles,
    ordered,
    preset_from_settings,
    resolve_preset,
    should_send,
)
from loadmgmt.units import CurrentType
from tests.loadmgmt.helpers import NOW, fleet_site


def _snap() -> Snapshot:
    site = Site("S", max_power_kw=60, buffer=0.0, fallback_power_kw=4.2, power_step_kw=0.1)
    conns = (
        Connector("AC/1", "AC", "S"),
        Connector("ONE/1", "ONE", "S", current_type=CurrentType.AC_PHASE1, phases=(2,)),
        Connector(
            "DC/1",
            "DC",
            "S",
            current_type=CurrentType.DC,
            voltage_v=400,
            max_power_kw=50,
            min_current_a=0,
        ),
        Connector("IDLE/1", "IDLE", "S"),
    )
    sessions = tuple(
        Demand(c, transaction_id=f"tx{n}") for n, c in enumerate(("AC/1", "ONE/1", "DC/1"))
    )
    return Snapshot(site, conns, sessions, now=NOW)


def test_tx_profiles_for_sessions_and_a_tx_default_floor_for_every_connector() -> None:
    snap = _snap()
    profiles = build_profiles(allocate(snap, time_limit_s=0.5), snap, {}, now=NOW)
    tx = {p.connector_id: p for p in profiles if p.purpose == "TxProfile"}
    floors = {p.connector_id: p for p in profiles if p.purpose == "TxDefaultProfile"}
    assert set(tx) == {"AC/1", "ONE/1", "DC/1"}
    assert set(floors) == {"AC/1", "ONE/1", "DC/1", "IDLE/1"}
    for p in tx.values():
        assert p.stack_level > floors[p.connector_id].stack_level
        assert p.transaction_id is not None
        # bounded validity: lapses to the floor if Loadstar disappears
        assert p.valid_to is not None and p.valid_to <= NOW + timedelta(seconds=900)
        assert p.schedule.duration == 900
    assert floors["IDLE/1"].valid_to is None
    assert floors["IDLE/1"].schedule.periods[0].limit == pytest.approx(6.0, abs=0.1)  # 4.2 kW


def test_units_follow_the_charger_and_number_phases_is_set_on_every_ac_period() -> None:
    snap = _snap()
    alloc = allocate(snap, time_limit_s=0.5)
    caps = {"AC": Capabilities(preferred_unit="W"), "ONE": Capabilities(preferred_unit="A")}
    profiles = build_profiles(alloc, snap, caps, now=NOW)
    got = alloc.by_connector()
    for p in profiles:
        if p.connector_id == "DC/1":
            assert p.schedule.unit == "W"
            assert all(per.number_phases is None for per in p.schedule.periods)
            continue
        want = 3 if p.connector_id in ("AC/1", "IDLE/1") else 1
        assert all(per.number_phases == want for per in p.schedule.periods)
        if p.connector_id == "AC/1":
            assert p.schedule.unit == "W"
        if p.connector_id == "ONE/1" and p.purpose == "TxProfile":
            assert p.schedule.unit == "A"
            amps = got["ONE/1"].current_a[1]
            assert p.schedule.periods[0].limit <= amps + 1e-9  # rounded down, never up
            assert p.schedule.periods[0].limit > amps - 0.1


def test_a_preset_with_ampere_unit_overrides_the_charger_preference() -> None:
    snap = _snap()
    preset = SEED_PRESETS["ampcontrol-sequential-ampere-number-phases-TxProfile"]
    caps = {"AC": Capabilities(preferred_unit="W", tx_preset=preset)}
    profiles = build_profiles(allocate(snap, time_limit_s=0.5), snap, caps, now=NOW)
    p = next(p for p in profiles if p.connector_id == "AC/1" and p.purpose == "TxProfile")
    assert p.schedule.unit == "A"
    assert p.delivery == "Sequential"
    assert p.send_number_phases


def test_seed_presets_parse_and_resolve_charge_point_then_network_then_default() -> None:
    settings_ = {
        "timeZone": "utc",
        "stackLevel": 2,
        "numberPhases": True,
        "chargingRateUnit": "A",
        "timestampsFormat": "default",
        "useTransactionId": True,
        "limitDeliveryType": "Sequential",
        "chargingProfileKind": "Absolute",
        "useChargingProfileId": True,
        "chargingProfilePurpose": "TxProfile",
    }
    name = "ampcontrol-sequential-ampere-number-phases-TxProfile"
    assert preset_from_settings(name, settings_) == SEED_PRESETS[name]
    assert resolve_preset("TxProfile", "", None).name == "ampcontrol-default-TxProfile"
    assert resolve_preset("TxProfile", "", name).name == name
    assert resolve_preset("TxDefaultProfile").stack_level == 1
    with pytest.raises(ValueError):
        resolve_preset("TxDefaultProfile", name)


def test_fleet_plan_becomes_one_period_per_slot_change() -> None:
    snap = dataclasses.replace(_snap(), objective="fleet", horizon_slots=4)
    alloc = allocate(snap, time_limit_s=1.0)
    profiles = build_profiles(alloc, snap, {}, now=NOW, include_defaults=False)
    for p in profiles:
        starts = [per.start_period for per in p.schedule.periods]
        assert starts == sorted(starts) and starts[0] == 0
        assert all(s % 900 == 0 for s in starts)
        assert p.schedule.duration == 3600


def test_a_fleet_plan_goes_out_with_the_same_bounded_validity_as_any_tx_profile() -> None:
    snap = dataclasses.replace(_snap(), objective="fleet", horizon_slots=8)
    alloc = allocate(snap, time_limit_s=1.0)
    profiles = build_profiles(alloc, snap, {}, now=NOW, include_defaults=False,
                              validity_s=300, plan_validity_s=300)
    assert profiles
    for p in profiles:
        assert p.schedule.duration == 300
        assert p.valid_to == NOW + timedelta(seconds=300)
        assert [per.start_period for per in p.schedule.periods] == [0]


def test_sequential_delivery_sends_only_the_limit_in_force_until_the_next_one_starts() -> None:
    snap = fleet_site()  # one car leaves after 1.5 h: its plan changes within the horizon
    alloc = allocate(snap, time_limit_s=1.0)
    sequential = Capabilities(tx_preset=SEED_PRESETS["ampcontrol-squential-TxProfile"])
    caps = {cp.id: sequential for cp in snap.charge_points}
    every = build_profiles(alloc, snap, {}, now=NOW, include_defaults=False)
    one = build_profiles(alloc, snap, caps, now=NOW, include_defaults=False)
    assert any(len(p.schedule.periods) > 1 for p in every), "the plan changes"
    for full, single in zip(every, one, strict=True):
        assert single.schedule.periods == full.schedule.periods[:1]
        ends = [p.start_period for p in full.schedule.periods[1:]] or [full.schedule.duration]
        assert single.schedule.duration == ends[0]
        assert single.valid_to == NOW + timedelta(seconds=ends[0])


def _profile(limit: float, unit: str = "A", valid_s: int = 900) -> ChargingProfile:
    return ChargingProfile(
        id=1,
        connector_id="C/1",
        stack_level=2,
        purpose="TxProfile",
        kind="Absolute",
        schedule=ChargingSchedule(
            unit,
            (SchedulePeriod(0, limit, 3),),
            start=NOW,  # type: ignore[arg-type]
            duration=valid_s,
        ),
        valid_from=NOW,
        valid_to=NOW + timedelta(seconds=valid_s),
    )


@settings(max_examples=200, deadline=None)
@given(
    prev=st.floats(6, 32),
    drop=st.floats(0.01, 26),
    since=st.floats(0, 60),
    unit=st.sampled_from(["A", "W"]),
)
def test_hysteresis_and_rate_cap_never_delay_a_lowering(
    prev: float, drop: float, since: float, unit: str
) -> None:
    scale = 230.0 if unit == "W" else 1.0
    old = _profile(prev * scale, unit)
    new = _profile((prev - drop) * scale, unit)
    now = NOW + timedelta(seconds=1)
    assert should_send(old, new, now - timedelta(seconds=since), now)


def test_small_raises_are_skipped_and_large_ones_wait_for_the_interval() -> None:
    policy = SendPolicy()
    now = NOW + timedelta(seconds=10)
    assert not should_send(_profile(16), _profile(16.5), None, now, policy)
    assert not should_send(_profile(16), _profile(16), None, now, policy)
    assert not should_send(_profile(16), _profile(20), now - timedelta(seconds=5), now, policy)
    assert should_send(_profile(16), _profile(20), now - timedelta(seconds=31), now, policy)
    assert not should_send(_profile(7000, "W"), _profile(7400, "W"), None, now, policy)


def test_a_profile_about_to_lapse_is_renewed_even_without_change() -> None:
    now = NOW + timedelta(seconds=850)
    assert should_send(_profile(16), _profile(16), now - timedelta(seconds=5), now)


def test_changes_are_ordered_lowering_first() -> None:
    up = ProfileChange(dataclasses.replace(_profile(20), connector_id="A/1"), _profile(10))
    down = ProfileChange(dataclasses.replace(_profile(8), connector_id="B/1"), _profile(16))
    first_time = ProfileChange(dataclasses.replace(_profile(8), connector_id="C/1"), None)
    out = ordered([up, down, first_time], NOW)
    assert out[-1] is up
    assert set(map(id, out[:2])) == {id(down), id(first_time)}
