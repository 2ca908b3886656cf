"""When a car's unused headroom is lent: at once when it falls from a limit it drew, only
after the site's lend delay while it may still be ramping up (DESIGN section 3, step 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms.live import ConnectorState
from csms.planning.verdicts import RAMP_S, is_lent, lends_more, track_headroom

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
LEND_AFTER_S = 120.0
LIMIT_W = 11000.0


def read(c: ConnectorState, at_s: float, watts: float) -> None:
    c.measured_w, c.measured_at = watts, T0 + timedelta(seconds=at_s)
    c.heard_at = c.measured_at
    track_headroom(c)


def session(raised_at_s: float | None = None) -> ConnectorState:
    c = ConnectorState("CP", 1)
    c.tx_id, c.held_tx_w = "1", LIMIT_W
    c.raised_at = None if raised_at_s is None else T0 + timedelta(seconds=raised_at_s)
    return c


def test_a_car_that_falls_from_the_limit_it_drew_is_lent_at_once() -> None:
    c = session()
    read(c, 0, LIMIT_W)
    read(c, 10, 4000.0)  # it tapers, is full or wants less
    assert is_lent(c, T0 + timedelta(seconds=10), LEND_AFTER_S)


def test_a_car_that_never_reached_its_limit_waits_the_lend_delay() -> None:
    c = session()
    read(c, 0, 2000.0)  # still ramping up after its start
    assert not is_lent(c, T0 + timedelta(seconds=LEND_AFTER_S - 1), LEND_AFTER_S)
    assert is_lent(c, T0 + timedelta(seconds=LEND_AFTER_S), LEND_AFTER_S)


def test_a_car_read_right_after_its_limit_was_raised_is_not_lent_while_it_ramps() -> None:
    c = session()
    read(c, 0, LIMIT_W)
    c.held_tx_w, c.raised_at = 22000.0, T0 + timedelta(seconds=5)
    read(c, 5 + RAMP_S / 2, LIMIT_W)  # still at the old limit: ramping to the new one
    assert not is_lent(c, T0 + timedelta(seconds=5 + RAMP_S / 2), LEND_AFTER_S)
    read(c, 5 + RAMP_S + 1, 15000.0)  # it had time, and takes no more than this
    assert is_lent(c, T0 + timedelta(seconds=5 + RAMP_S + 1), LEND_AFTER_S)


def test_a_lent_car_back_at_its_limit_is_no_longer_lent_and_may_be_lent_again() -> None:
    c = session()
    read(c, 0, LIMIT_W)
    read(c, 10, 4000.0)
    c.held_tx_w = 5000.0  # the lend went out: measured + 1 kW
    read(c, 20, 4000.0)  # keeps drawing what it drew: stays lent
    assert is_lent(c, T0 + timedelta(seconds=20), LEND_AFTER_S)
    read(c, 30, 5000.0)  # ramps up to its lent limit: its share goes back
    assert not is_lent(c, T0 + timedelta(seconds=30), LEND_AFTER_S)
    read(c, 40, 2000.0)
    assert is_lent(c, T0 + timedelta(seconds=40), LEND_AFTER_S)


def test_only_a_reading_that_lends_more_plans_without_the_coalescing_window() -> None:
    c = session()
    read(c, 0, LIMIT_W)
    now = T0 + timedelta(seconds=10)
    read(c, 10, 4000.0)
    assert lends_more(c, False, LIMIT_W, now, LEND_AFTER_S)  # lending starts
    c.held_tx_w = 5000.0
    read(c, 20, 3800.0)  # within the hysteresis of what it drew
    assert not lends_more(c, True, 4000.0, now, LEND_AFTER_S)
    read(c, 30, 2000.0)  # draws clearly less again: the lent limit follows it down
    assert lends_more(c, True, 3800.0, now, LEND_AFTER_S)
    ramping = session()
    read(ramping, 0, 2000.0)
    assert not lends_more(ramping, False, None, T0, LEND_AFTER_S)


def test_a_car_that_falls_below_its_old_limit_right_after_a_raise_is_lent_at_once() -> None:
    c = session()
    read(c, 0, LIMIT_W)
    c.held_tx_w, c.raised_at = 22000.0, T0 + timedelta(seconds=5)
    read(c, 5 + RAMP_S / 2, 4000.0)  # not ramping to the new limit: well below the old one
    assert is_lent(c, T0 + timedelta(seconds=5 + RAMP_S / 2), LEND_AFTER_S)


def test_a_car_that_stops_drawing_waits_the_lend_delay_it_may_only_be_paused() -> None:
    c = session()
    read(c, 0, LIMIT_W)
    read(c, 10, 0.0)  # paused: perhaps by a limit below its own minimum current
    assert not is_lent(c, T0 + timedelta(seconds=10), LEND_AFTER_S)
    assert is_lent(c, T0 + timedelta(seconds=10 + LEND_AFTER_S), LEND_AFTER_S)
