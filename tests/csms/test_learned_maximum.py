"""The allocator's input for a connector nobody can limit: the most it was seen to draw."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from csms.config import ChargerSpec, LoadConfig, SiteSpec
from csms.live import ChargerState
from csms.planning.context import PlanContext
from csms.planning.snapshot import Snapshots
from csms.sites import SiteDirectory
from csms.store import SqliteStore
from simulators.clock import SimClock

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def built_session(tmp_path: Path, max_seen_w: float | None) -> tuple[float | None, float]:
    """(the session's pinned draw, the idle connector's reserve) of a plan built for an
    unlimitable 22 kW charger with a car that has sent no reading yet."""
    directory = SiteDirectory([SiteSpec(id="site", max_power_kw=100.0, chargers=["*"])],
                              [ChargerSpec(max_power_kw=22.0, max_current_a=32.0)], "site")
    store = SqliteStore(str(tmp_path / "loadstar.db"))
    await store.open()
    try:
        ctx = PlanContext(directory, store, None, SimClock(start=NOW),  # type: ignore[arg-type]
                          LoadConfig())
        cp = ChargerState("OLD", online=True, uncontrollable="answered NotImplemented",
                          ignores_profiles=True)
        for n in (1, 2):
            c = cp.connector(n)
            c.ignoring, c.max_seen_w = True, max_seen_w
        cp.connector(1).tx_id = "7"
        built = Snapshots(ctx).build("site", [cp], NOW)
    finally:
        await store.close()
    [session] = built.snapshot.sessions
    assert built.snapshot.floors is not None
    return session.pinned_w, built.snapshot.floors["OLD/2"]


async def test_a_22_kw_connector_seen_giving_11_kw_counts_at_11_kw(tmp_path: Path) -> None:
    assert await built_session(tmp_path, 11_000.0) == (11_000.0, 11_000.0)


async def test_before_any_reading_it_counts_at_its_rating(tmp_path: Path) -> None:
    assert await built_session(tmp_path, None) == (22_000.0, 22_000.0)


async def test_a_learned_maximum_never_exceeds_the_rating(tmp_path: Path) -> None:
    assert await built_session(tmp_path, 30_000.0) == (22_000.0, 22_000.0)
