"""Whole grants per slot for the fleet plan: 0 or at least the minimum, on the power step,
every row kept, and what is left handed out earliest departure first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from loadmgmt.allocator.prepare import _Prep
from loadmgmt.model import round_down
from loadmgmt.network import INF


class SlotFit:
    """One slot's rows: room left (W or A above the base), and raises that keep it >= 0."""

    def __init__(self, prep: _Prep, room: Sequence[float]) -> None:
        self.prep = prep
        self.room = list(room)
        self.grant: dict[int, float] = {}

    def _over(self, i: int, x: float) -> float:
        return max(x - self.prep.floor[i], 0.0)

    def raise_to(self, i: int, target: float) -> float:
        """Raise session i toward `target` (W) as far as every row allows, on the step and
        0-or-minimum; returns its grant."""
        prep = self.prep
        step = prep.net.site.step_w
        cur = self.grant.get(i, 0.0)
        x = round_down(min(target, prep.cap[i]), step)
        if x <= cur:
            return cur
        base = self._over(i, cur)
        for k, c in prep.net.col_rows[i]:
            if self.room[k] < INF and c > 0:
                # over(x) - over(cur) <= room  ->  x <= floor + over(cur) + room / c
                x = min(x, prep.floor[i] + base + self.room[k] / c)
        x = round_down(max(x, 0.0), step)
        # float noise in room / c must not let a row go over: step down until it fits
        while x > cur and not self._fits(i, cur, x):
            x = round_down(x - step, step)
        if x <= cur or (cur == 0.0 and x < prep.mins[i]):
            return cur
        extra = self._over(i, x) - base
        for k, c in prep.net.col_rows[i]:
            if self.room[k] < INF:
                self.room[k] -= c * extra
        self.grant[i] = x
        return x

    def _fits(self, i: int, cur: float, x: float) -> bool:
        extra = self._over(i, x) - self._over(i, cur)
        return all(self.room[k] >= INF or c * extra <= self.room[k] + 1e-9
                   for k, c in self.prep.net.col_rows[i])


def round_slot(prep: _Prep, room: Sequence[float], plan: Mapping[int, float],
               order: Sequence[int], top_up: Mapping[int, float] | None) -> dict[int, float]:
    """Whole grants for one slot from a fractional `plan` (W).

    Grants at or above their minimum are rounded down (they fit: the plan did); those below it
    get the minimum where it still fits, in `order`, else 0. With `top_up` (session -> most it
    should take), what room is left is then raised in `order`.
    """
    fit = SlotFit(prep, room)
    small = []
    for i in order:
        p = plan.get(i, 0.0)
        if p >= prep.mins[i]:
            fit.raise_to(i, p)
        elif p > 0:
            small.append(i)
    for i in small:
        fit.raise_to(i, prep.mins[i])
    if top_up is not None:
        for i in order:
            if top_up.get(i, 0.0) > fit.grant.get(i, 0.0):
                fit.raise_to(i, top_up[i])
    return {i: fit.grant.get(i, 0.0) for i in order}
