"""The cost function (csms.tariffs) and the tariff settings it reads (csms.config)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from csms.config import ConfigError, SiteSpec, TariffSpec, load_config
from csms.costs import cost_disabled
from csms.tariffs import minor_unit, session_cost

T0 = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)


def tariff(**fields: Any) -> TariffSpec:
    return TariffSpec.model_validate({"currency": "EUR", **fields})


NIGHT = tariff(energy_price_per_kwh="0.30", time_price_per_hour="1.00", session_fee="0.50",
               bands=[{"start": "22:00", "end": "06:00", "energy_price_per_kwh": "0.10",
                       "time_price_per_hour": "0"}])


def test_flat_tariff_prices_energy_time_and_the_session_fee() -> None:
    t = tariff(energy_price_per_kwh="0.25", time_price_per_hour="2", session_fee="1")
    cost = session_cost(t, "UTC", T0, T0 + timedelta(minutes=90), 10)
    assert (cost.energy, cost.time, cost.fee) == (Decimal("2.5"), Decimal("3"), Decimal("1"))
    assert cost.total == Decimal("6.50") and cost.currency == "EUR"


def test_a_band_across_midnight_splits_energy_pro_rata_by_time_without_readings() -> None:
    # 20:00-02:00 UTC, 60 kWh evenly: 20 kWh by day at 0.30, 40 kWh at night at 0.10; time is
    # paid only by day (2 h at 1.00).
    cost = session_cost(NIGHT, "UTC", T0, T0 + timedelta(hours=6), 60)
    assert cost.energy == Decimal("10") and cost.time == Decimal("2")
    assert cost.total == Decimal("12.50")


def test_bands_are_read_in_the_sites_time_zone() -> None:
    # The same session is 21:00-03:00 in Berlin (UTC+1 in March): 1 h by day, 5 h at night.
    cost = session_cost(NIGHT, "Europe/Berlin", T0, T0 + timedelta(hours=6), 60)
    assert cost.energy == Decimal("8") and cost.time == Decimal("1")
    assert cost.total == Decimal("9.50")


def test_meter_readings_place_energy_in_the_band_it_came_in() -> None:
    # All 60 kWh came before 22:00 by the register: all at the day price.
    readings = [(T0, 1000.0), (T0 + timedelta(hours=2), 61000.0),
                (T0 + timedelta(hours=6), 61000.0)]
    cost = session_cost(NIGHT, "UTC", T0, T0 + timedelta(hours=6), 60, readings)
    assert cost.energy == Decimal("18")
    assert cost.total == Decimal("20.50")


def test_energy_the_readings_do_not_place_is_spread_over_the_session() -> None:
    # 30 kWh placed by day by the readings; the other 30 pro rata (10 by day, 20 at night).
    readings = [(T0, 0.0), (T0 + timedelta(hours=2), 30000.0)]
    cost = session_cost(NIGHT, "UTC", T0, T0 + timedelta(hours=6), 60, readings)
    assert cost.energy == Decimal("9") + Decimal("3") + Decimal("2")


def test_readings_that_say_more_than_the_session_energy_keep_their_shape_only() -> None:
    readings = [(T0, 0.0), (T0 + timedelta(hours=1), 10000.0),
                (T0 + timedelta(hours=3), 30000.0)]
    cost = session_cost(NIGHT, "UTC", T0, T0 + timedelta(hours=3), 15, readings)
    # By the register 20 of 30 kWh came by day (20:00-22:00) and 10 at night; scaled to the
    # session's 15 kWh: 10 by day, 5 at night.
    assert cost.energy == Decimal("10") * Decimal("0.30") + Decimal("5") * Decimal("0.10")


def test_a_session_with_no_energy_and_no_duration_costs_its_fee() -> None:
    assert session_cost(NIGHT, "UTC", T0, T0, 0).total == Decimal("0.50")
    # Energy at one instant is priced at that instant's band.
    assert session_cost(NIGHT, "UTC", T0 + timedelta(hours=3), T0 + timedelta(hours=3),
                        10).total == Decimal("1.50")


def test_only_the_total_is_rounded_half_up_to_the_currencys_minor_unit() -> None:
    t = tariff(energy_price_per_kwh="0.125")
    assert session_cost(t, "UTC", T0, T0 + timedelta(hours=1), 1).total == Decimal("0.13")
    assert session_cost(t, "UTC", T0, T0 + timedelta(hours=1), 3).total == Decimal("0.38")
    yen = TariffSpec(currency="JPY", energy_price_per_kwh=Decimal("42.5"))
    assert session_cost(yen, "UTC", T0, T0 + timedelta(hours=1), 1).total == Decimal("43")
    assert (minor_unit("EUR"), minor_unit("JPY"), minor_unit("KWD")) == \
        (Decimal("0.01"), Decimal("1"), Decimal("0.001"))


def test_a_tariff_needs_a_known_currency_and_bands_that_do_not_overlap() -> None:
    with pytest.raises(ValidationError, match="ISO 4217"):
        tariff(currency="EUX")
    with pytest.raises(ValidationError, match=r"bands\[1\]: overlaps bands\[0\] at 05:00"):
        tariff(bands=[{"start": "22:00", "end": "06:00"}, {"start": "05:00", "end": "07:00"}])
    with pytest.raises(ValidationError, match="empty"):
        tariff(bands=[{"start": "08:00", "end": "08:00"}])
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        tariff(session_fee=-1)
    with pytest.raises(ValidationError, match="pattern"):
        tariff(bands=[{"start": "24:00", "end": "06:00"}])


def test_a_site_with_a_tariff_stays_a_json_document_and_reads_back_the_same() -> None:
    # Sites saved through the API are stored as JSON: exact prices must survive the trip.
    site = SiteSpec(id="s", max_power_kw=50, tariff=NIGHT)
    again = SiteSpec.model_validate(json.loads(json.dumps(site.model_dump())))
    assert again == site and again.tariff is not None
    assert again.tariff.energy_price_per_kwh == Decimal("0.30")


def test_a_station_that_reports_cost_disabled_gets_no_cost_updates() -> None:
    def report(instance: str | None, value: str) -> dict[str, Any]:
        variable: dict[str, Any] = {"name": "Enabled"}
        if instance:
            variable["instance"] = instance
        return {"component": {"name": "TariffCostCtrlr"}, "variable": variable,
                "variableAttribute": [{"type": "Actual", "value": value}]}

    assert cost_disabled([report("Cost", "false")])
    assert cost_disabled([report(None, "False")])
    assert not cost_disabled([report("Tariff", "false"), report("Cost", "true")])
    assert not cost_disabled([])


# -- properties -------------------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=5, places=3)
clock_times = st.integers(0, 23).flatmap(
    lambda h: st.sampled_from([0, 15, 30]).map(lambda m: f"{h:02d}:{m:02d}"))


@st.composite
def tariffs(draw: st.DrawFn, banded: bool = True) -> TariffSpec:
    bands: list[dict[str, Any]] = []
    if banded and draw(st.booleans()):
        start, end = draw(clock_times), draw(clock_times)
        if start != end:
            bands.append({"start": start, "end": end,
                          "energy_price_per_kwh": draw(st.none() | prices),
                          "time_price_per_hour": draw(st.none() | prices)})
    return TariffSpec(currency=draw(st.sampled_from(["EUR", "JPY", "KWD"])),
                      energy_price_per_kwh=draw(prices), time_price_per_hour=draw(prices),
                      session_fee=draw(prices), bands=bands)


starts = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1),
                      timezones=st.just(UTC))
minutes = st.integers(0, 3 * 24 * 60)
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])


@given(tariffs(), zones, starts, minutes, st.floats(0, 200), st.floats(0, 200),
       st.lists(st.tuples(minutes, st.integers(0, 200_000)), max_size=5))
def test_cost_never_falls_when_energy_rises(t: TariffSpec, zone: str, start: datetime,
                                            length: int, e1: float, e2: float,
                                            raw: list[tuple[int, int]]) -> None:
    end = start + timedelta(minutes=length)
    readings = [(start + timedelta(minutes=m % (length + 1)), float(wh)) for m, wh in raw]
    low, high = sorted((e1, e2))
    assert session_cost(t, zone, start, end, low, readings).total <= \
        session_cost(t, zone, start, end, high, readings).total


@given(tariffs(banded=False), zones, starts, minutes, minutes, st.floats(0, 200))
def test_cost_never_falls_when_a_session_lasts_longer(t: TariffSpec, zone: str, start: datetime,
                                                      m1: int, m2: int, energy: float) -> None:
    short, long = sorted((m1, m2))
    assert session_cost(t, zone, start, start + timedelta(minutes=short), energy).total <= \
        session_cost(t, zone, start, start + timedelta(minutes=long), energy).total


@given(tariffs(), zones, starts,
       st.lists(st.tuples(st.integers(1, 600), st.integers(0, 20_000)), min_size=1, max_size=8))
def test_a_running_total_with_readings_never_falls_as_the_session_goes_on(
        t: TariffSpec, zone: str, start: datetime, steps: list[tuple[int, int]]) -> None:
    """What CostUpdated tells a driver only grows: each new reading adds energy and time."""
    readings, at, wh, last = [(start, 0.0)], start, 0, Decimal(-1)
    for minutes_on, more_wh in steps:
        at, wh = at + timedelta(minutes=minutes_on), wh + more_wh
        readings.append((at, float(wh)))
        total = session_cost(t, zone, start, at, Decimal(wh) / 1000, readings).total
        assert total >= last
        last = total


def test_a_tariff_problem_in_config_toml_names_its_dotted_key(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[[sites]]\nid = "s"\nmax_power_kw = 50\n[sites.tariff]\ncurrency = "EUR"\n'
                    '[[sites.tariff.bands]]\nstart = "22:00"\nend = "06:00"\n'
                    '[[sites.tariff.bands]]\nstart = "05:30"\nend = "07:00"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines == [
        f"{path}: sites[0].tariff.bands[1]: overlaps bands[0] at 05:30"]


def test_the_tariff_example_in_the_shipped_config_toml_loads_as_documented(
        tmp_path: Path) -> None:
    text = (Path(__file__).parents[2] / "config.toml").read_text()
    start = text.index("# [sites.tariff]")
    block = text[start:text.index("\n\n", start)]
    example = text.replace(block, "\n".join(line.removeprefix("# ")
                                            for line in block.splitlines()))
    path = tmp_path / "c.toml"
    path.write_text(example)
    site = load_config(path).sites[0]
    assert site.tariff is not None and site.tariff.currency == "EUR"
    assert site.tariff.bands[0].energy_price_per_kwh == Decimal("0.18")
    # 21:00-23:00 UTC, 2 kWh evenly: 1 kWh at 0.30, 1 kWh at night at 0.18, and the 0.50 fee.
    cost = session_cost(site.tariff, site.timezone, T0 + timedelta(hours=1),
                        T0 + timedelta(hours=3), 2)
    assert cost.total == Decimal("0.98")
