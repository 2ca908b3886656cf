"""Guards: room held for what a car on a charger not yet seen following a limit may draw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from loadmgmt.allocator.prepare import _A_SCALE, _NO_ROW, _Prep, _scaled
from loadmgmt.model import round_down
from loadmgmt.network import INF


def _guard_extras(prep: _Prep, guards: Mapping[str, float], counted: Mapping[int, float],
                  room: list[float]) -> dict[int, float]:
    """What each guard adds above what its connector already counts, as far as every row's
    `room` (W or A, INF: no row) allows; `room` is used up as guards are placed, in id order."""
    net = prep.net
    extras: dict[int, float] = {}
    for cid, want in sorted(guards.items()):
        i = net.index.get(cid)
        if i is None or i in prep.pinned:
            continue
        extra = want - max(counted.get(i, 0.0), prep.floor[i])
        for k, c in net.col_rows[i]:
            if room[k] < INF and c > 0:
                extra = min(extra, room[k] / c)
        if extra <= 0:
            continue
        for k, c in net.col_rows[i]:
            room[k] -= c * extra
        extras[i] = extra
    return extras


def _reserve_guards(prep: _Prep, guards: Mapping[str, float], alloc: Mapping[int, float],
                    base: list[float]) -> list[int]:
    """Count guarded connectors toward their guard, as far as every row allows.

    Returns the guarded sessions: `_fix_guarded` keeps each at its fair share once the fill
    is done, so the charger is sent that (its next reading shows whether it follows it), not
    the guard that is free to grant because it is already counted.
    """
    net = prep.net
    room = [prep.limits[k] - base[k] for k in range(len(net.rows))]
    extras = _guard_extras(prep, guards, alloc, room)
    for i, extra in extras.items():
        for k, c in net.col_rows[i]:
            base[k] += c * extra
        prep.floor[i] = max(alloc.get(i, 0.0), prep.floor[i]) + extra
    return [i for i in extras if i in alloc]


def _fix_guarded(prep: _Prep, sessions: Sequence[int], alloc: dict[int, float],
                 shares: Mapping[str, float]) -> None:
    """A guarded session is sent its unguarded share, within what it is counted at, and kept
    there: rising within its guard would cost no row, so nothing else would stop it."""
    for i in sessions:
        share = shares.get(prep.net.connectors[i].id, alloc[i])
        alloc[i] = max(round_down(min(share, prep.floor[i]), prep.net.site.step_w),
                       prep.mins[i])
        prep.cap[i] = alloc[i]


def _reserve_fleet_guards(prep: _Prep, guards: Mapping[str, float], room: list[int]) -> None:
    """Guards hold room in the present slot only (a charger proves itself within seconds)."""
    net = prep.net
    scales = [1.0 if row.kind == "kW" else _A_SCALE for row in net.rows]
    room_w = [r / scales[k] if r < _NO_ROW else INF for k, r in enumerate(room)]
    for i, extra in _guard_extras(prep, guards, {}, room_w).items():
        for k, c in net.col_rows[i]:
            if room[k] < _NO_ROW:
                room[k] -= _scaled(net, k, c * extra, up=True)
