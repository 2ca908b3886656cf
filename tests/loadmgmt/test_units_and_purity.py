"""kW <-> A conversion. (That loadmgmt stays pure is checked in tests/test_architecture.py.)"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadmgmt.model import Connector
from loadmgmt.units import CurrentType, amps_to_kw, kw_to_amps, pcf


@pytest.mark.parametrize(
    ("kind", "factor"),
    [
        (CurrentType.DC, 1.0),
        (CurrentType.AC_PHASE1, 1.0),
        (CurrentType.AC_PHASE3_LL, math.sqrt(3)),
        (CurrentType.AC_PHASE3_LN, 3.0),
    ],
)
def test_power_is_pcf_times_pf_times_current_times_voltage(
    kind: CurrentType, factor: float
) -> None:
    assert pcf(kind) == pytest.approx(factor)
    assert amps_to_kw(16, kind, 230, 0.9) == pytest.approx(factor * 0.9 * 16 * 230 / 1000)


@given(
    st.floats(0, 500),
    st.sampled_from(list(CurrentType)),
    st.floats(100, 1000),
    st.floats(0.5, 1.0),
)
def test_kw_and_amps_round_trip(kw: float, kind: CurrentType, volt: float, pf: float) -> None:
    assert amps_to_kw(kw_to_amps(kw, kind, volt, pf), kind, volt, pf) == pytest.approx(kw)


def test_22_kw_three_phase_is_32_a_and_208_v_line_to_line_loads_two_phases() -> None:
    assert kw_to_amps(22.08, CurrentType.AC_PHASE3_LN, 230) == pytest.approx(32.0)
    ll = Connector(
        "X/1", "X", "S", current_type=CurrentType.AC_PHASE1, voltage_v=208, phases=(1, 2)
    )
    per = ll.amps_per_w()
    assert set(per) == {1, 2} and per[1] * 208 == pytest.approx(1.0)
    assert ll.min_w() == pytest.approx(6 * 208)

