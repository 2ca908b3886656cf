"""Fleet helpers that need no server: scenarios, the site series, the printed summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulators.charger import SimCharger
from simulators.fleet import Summary, format_summary, make_scenario, protocol_of, site_series

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_mixed_alternates_protocols() -> None:
    assert [protocol_of(i, "mixed") for i in range(3)] == ["ocpp2.0.1", "ocpp1.6", "ocpp2.0.1"]
    assert protocol_of(5, "ocpp1.6") == "ocpp1.6"
    with pytest.raises(ValueError):
        protocol_of(0, "ocpp2.1")


def test_scenario_is_reproducible_and_fits_the_run() -> None:
    cars = make_scenario(3, 2, 3600, seed=7, sessions_per_connector=2)
    assert cars == make_scenario(3, 2, 3600, seed=7, sessions_per_connector=2)
    assert len(cars) == 12
    for car in cars:
        assert 0 <= car.arrive_s < car.depart_s <= 3600
        assert car.energy_need_kwh >= 0 and car.make_ev().battery_kwh == car.battery_kwh
    per_connector = [c for c in cars if (c.charger, c.connector) == (1, 2)]
    assert per_connector[0].depart_s <= per_connector[1].arrive_s  # one car at a time


def test_site_series_sums_change_points_per_second_with_an_exact_peak() -> None:
    a = SimCharger("A", "ws://x/ocpp", connectors=2)
    b = SimCharger("B", "ws://x/ocpp", connectors=1)
    a.conns[1].draw_log[:] = [(T0, 1000.0), (T0 + timedelta(seconds=2.5), 0.0)]
    a.conns[2].draw_log[:] = [(T0 + timedelta(seconds=1.2), 500.0)]
    b.conns[1].draw_log[:] = [(T0 - timedelta(seconds=5), 200.0),
                              (T0 + timedelta(seconds=1.5), 300.0)]
    series, peak = site_series([a, b], T0, 4)
    assert series == [1200.0, 1200.0, 1800.0, 800.0, 800.0]
    assert peak == 1800.0


def test_format_summary_lines() -> None:
    s = Summary(4, "mixed", 2, 600, 120, transactions=8, meter_samples=90, energy_kwh=12.34,
                messages=500, wall_s=5.0, peak_w=44000.0, site_limit_w=40000.0,
                seconds_over_limit=3, booted=4, online_at_end=4, errors=["SIM0001: x"])
    text = format_summary(s)
    assert "transactions    8 acknowledged" in text
    assert "OCPP messages   500 (100/s)" in text
    assert "site limit      40.0 kW, exceeded for 3 sampled s" in text
    assert "error           SIM0001: x" in text
