"""Which connectors that cannot be limited must be kept from starting a car (pure)."""

from __future__ import annotations

from loadmgmt.admission import Uncontrolled, to_close
from loadmgmt.model import ChargePoint, Connector, Group, NodeLimit, Site, Snapshot


def snapshot(group_kw: float | None = None) -> Snapshot:
    conns = tuple(Connector(id=f"C{i}/1", charge_point_id=f"C{i}",
                            parent_id="g" if i >= 2 else "site", max_power_kw=22.0,
                            max_current_a=32.0) for i in range(4))
    cps = tuple(ChargePoint(id=c.charge_point_id, parent_id=c.parent_id, max_power_kw=22.0)
                for c in conns)
    return Snapshot(site=Site(id="site", max_power_kw=60.0), connectors=conns,
                    charge_points=cps,
                    groups=(Group(id="g", parent_id="site", max_power_kw=group_kw),),
                    limits={"site": NodeLimit(power_kw=60.0)})


def idle(i: int, w: float = 22_000.0, is_open: bool = True) -> Uncontrolled:
    return Uncontrolled(f"C{i}/1", w, active=False, is_open=is_open)


def test_idle_connectors_are_open_only_as_far_as_their_cars_all_fit_at_once() -> None:
    # 60 kW less 2 %: two 22 kW cars fit, a third would not.
    assert to_close(snapshot(), [idle(i) for i in range(4)]) == {"C2/1", "C3/1"}


def test_a_car_charging_counts_at_its_draw_and_is_never_closed() -> None:
    running = Uncontrolled("C0/1", 40_000.0, active=True)
    assert to_close(snapshot(), [running, idle(1), idle(2, 11_000.0)]) == {"C1/1"}


def test_open_connectors_keep_their_place_before_closed_ones() -> None:
    ids = to_close(snapshot(), [idle(0, is_open=False), idle(1, is_open=False), idle(2), idle(3)])
    assert ids == {"C0/1", "C1/1"}


def test_a_group_limit_closes_what_the_site_would_allow() -> None:
    assert to_close(snapshot(group_kw=25.0), [idle(2), idle(3)]) == {"C3/1"}


def test_a_chargers_own_rating_is_no_reason_to_close_it() -> None:
    # 22 kW on a 22 kW charger is over the charger's rating less the buffer, not over a limit.
    assert to_close(snapshot(), [idle(0)]) == frozenset()
