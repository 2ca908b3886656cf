"""The real-session benchmark's data and its acceptance on one real day (Monday 2019-03-04,
39 Caltech sessions): `fleet` delivers more than earliest-deadline-first and load sharing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.acn_data import load_sessions
from bench.acn_site import line_limit_a, primary_limit_a
from bench.real_sessions import replay

MIDNIGHT_PST = timedelta(hours=8)


def test_the_committed_sample_is_the_real_march_2019_caltech_sessions() -> None:
    sessions = load_sessions()
    assert len(sessions) == 954
    first_week = [s for s in sessions
                  if s.arrival < datetime(2019, 3, 8, tzinfo=UTC) + MIDNIGHT_PST]
    assert len(first_week) == 209
    assert sum(s.kwh for s in first_week) == pytest.approx(1933.3, abs=0.1)
    assert all(s.departure > s.arrival for s in sessions)


@pytest.mark.parametrize(("kw", "wiring"), [(20.0, "arithmetic"), (30.0, "arithmetic"),
                                            (30.0, "phasor")])
def test_fleet_delivers_more_of_a_real_day_than_edf_and_load_sharing(kw: float,
                                                                     wiring: str) -> None:
    start = datetime(2019, 3, 4, tzinfo=UTC) + MIDNIGHT_PST
    sessions = load_sessions(start=start, end=start + timedelta(days=1))
    runs = {algo: replay(sessions, kw, algo, wiring=wiring, step_s=300, time_limit_s=1.0)
            for algo in ("edf", "load_sharing", "fleet")}
    delivered = {algo: r.delivered_kwh for algo, r in runs.items()}
    assert delivered["fleet"] > max(delivered["edf"], delivered["load_sharing"]) * 1.02
    for r in runs.values():
        assert r.peak_kw <= kw + 1e-6
        assert r.peak_line_a <= line_limit_a(kw) + 1e-6
        if wiring == "phasor":  # only the exact rows hold the transformer's primary
            assert r.peak_primary_a <= primary_limit_a(kw) + 1e-6
