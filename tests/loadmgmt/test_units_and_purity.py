"""kW <-> A conversion and the rule that loadmgmt stays pure."""

from __future__ import annotations

import ast
import math
from pathlib import Path

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


FORBIDDEN = {
    "asyncio",
    "sqlite3",
    "aiosqlite",
    "websockets",
    "csms",
    "adapters",
    "simulators",
    "socket",
    "requests",
    "httpx",
}


def test_loadmgmt_imports_no_io_and_nothing_above_it() -> None:
    root = Path(__file__).resolve().parents[2] / "loadmgmt"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
