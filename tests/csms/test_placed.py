"""The placement index of known chargers follows new chargers and changed sites."""

from __future__ import annotations

from csms.config import SiteSpec
from csms.planning.placed import Placed
from csms.sites import SiteDirectory


def directory() -> SiteDirectory:
    return SiteDirectory([SiteSpec(id="north", max_power_kw=50.0, chargers=["N-*"]),
                          SiteSpec(id="rest", max_power_kw=50.0, chargers=["*"])], [], "rest")


def test_a_charger_that_appears_is_in_the_next_index() -> None:
    placed, d = Placed(), directory()
    chargers = {"N-1": object()}
    assert placed.update(d, chargers).by_site == {"north": ["N-1"]}
    chargers["X-1"] = object()
    assert placed.update(d, chargers).by_site == {"north": ["N-1"], "rest": ["X-1"]}


def test_a_site_whose_patterns_change_at_run_time_takes_its_chargers_along() -> None:
    placed, d = Placed(), directory()
    chargers = {"N-1": object(), "X-1": object()}
    placed.update(d, chargers)
    moved = d.with_site(SiteSpec(id="north", max_power_kw=50.0, chargers=["N-*", "X-*"]))
    assert placed.update(moved, chargers).by_site == {"north": ["N-1", "X-1"]}
    assert placed.by_node[("north", "north")] == ["N-1", "X-1"]
