"""Which readings re-plan: only those that change what the allocator sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.live import ChargerState, ConnectorState
from csms.planning.verdicts import reading_inputs

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
LEND_AFTER_S = 120.0


def charging(measured_w: float | None = 7000.0, **kw: object) -> tuple[ChargerState,
                                                                      ConnectorState]:
    cp = ChargerState("CP", online=True)
    c = cp.connector(1)
    c.tx_id, c.held_tx_w, c.measured_w = "1", 11000.0, measured_w
    for key, value in kw.items():
        setattr(c, key, value)
    return cp, c


def test_a_steady_draw_within_its_limit_changes_nothing_between_readings() -> None:
    cp, c = charging()
    before = reading_inputs(cp, c, NOW, LEND_AFTER_S)
    c.measured_w = 7400.0  # the next reading: a little more, still nothing lent or pinned
    assert before is not None and reading_inputs(cp, c, NOW, LEND_AFTER_S) == before


def test_a_first_reading_an_ignorer_a_pinned_or_offline_charger_always_re_plan() -> None:
    assert reading_inputs(*charging(measured_w=None), NOW, LEND_AFTER_S) is None
    assert reading_inputs(*charging(ignoring=True), NOW, LEND_AFTER_S) is None
    assert reading_inputs(*charging(pinned_w=11000.0), NOW, LEND_AFTER_S) is None
    cp, c = charging()
    cp.online = False
    assert reading_inputs(cp, c, NOW, LEND_AFTER_S) is None


def test_a_car_lent_headroom_re_plans_when_lending_starts() -> None:
    cp, c = charging(below_since=NOW - timedelta(seconds=LEND_AFTER_S - 10))
    before = reading_inputs(cp, c, NOW, LEND_AFTER_S)
    assert before is not None  # below its limit, not yet lent
    assert reading_inputs(cp, c, NOW + timedelta(seconds=10), LEND_AFTER_S) is None


def test_a_car_that_ramps_up_or_a_new_verdict_changes_the_inputs() -> None:
    cp, c = charging(below_since=NOW)
    before = reading_inputs(cp, c, NOW, LEND_AFTER_S)
    c.below_since = None  # drawing near its limit again
    assert reading_inputs(cp, c, NOW, LEND_AFTER_S) != before
    cp2, c2 = charging()
    before = reading_inputs(cp2, c2, NOW, LEND_AFTER_S)
    cp2.follows_profiles = True  # proven: its guard goes
    assert reading_inputs(cp2, c2, NOW, LEND_AFTER_S) != before


def test_a_lent_car_steady_within_the_band_of_the_planned_draw_plans_nothing_new() -> None:
    cp, c = charging(measured_w=4000.0, below_since=NOW - timedelta(seconds=LEND_AFTER_S),
                     planned_w=4000.0)
    before = reading_inputs(cp, c, NOW, LEND_AFTER_S)
    c.measured_w = 4300.0  # the next reading: within the band of what the plan lent on
    assert before is not None and reading_inputs(cp, c, NOW, LEND_AFTER_S) == before
    c.measured_w = 3400.0  # it draws clearly less: lend anew
    assert reading_inputs(cp, c, NOW, LEND_AFTER_S) is None
    c.planned_w = None  # no plan has seen its draw yet
    c.measured_w = 4000.0
    assert reading_inputs(cp, c, NOW, LEND_AFTER_S) is None
