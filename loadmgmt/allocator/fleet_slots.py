"""Whole grants per slot for the fleet plan: 0 or at least the minimum, on the power step,
every row kept, and what is left handed out earliest departure first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from loadmgmt.allocator.prepare import _Prep
from loadmgmt.model import round_down, round_up
from loadmgmt.network import INF

# Float noise in a row's room (W or A) that must not cost a whole step; far below what any
# meter or breaker can tell apart.
_TOL = 1e-7


class SlotFit:
    """One slot's rows: room left (W or A above the base), and raises that keep it >= 0."""

    def __init__(self, prep: _Prep, room: Sequence[float]) -> None:
        self.prep = prep
        self.room = list(room)
        self.grant: dict[int, float] = {}

    def _over(self, i: int, x: float) -> float:
        return max(x - self.prep.floor[i], 0.0)

    def raise_to(self, i: int, target: float, *, up: bool = False) -> float:
        """Raise session i toward `target` (W) as far as every row allows, on the step (the
        step at or above `target` with `up`) and 0-or-minimum; returns its grant."""
        prep = self.prep
        step = prep.net.site.step_w
        cur = self.grant.get(i, 0.0)
        # A plan a hair under a step (the program keeps a hair below every limit) means the
        # step: the rows are checked below anyway.
        x = round_up(target, step) if up else round_down(target + 1e-3 * step, step)
        x = min(x, prep.cap[i])
        if x <= cur:
            return cur
        base = self._over(i, cur)
        for k, c in prep.net.col_rows[i]:
            if self.room[k] < INF and c > 0:
                # over(x) - over(cur) <= room  ->  x <= floor + over(cur) + room / c
                x = min(x, prep.floor[i] + base + (self.room[k] + _TOL) / c)
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

    def set_to(self, i: int, x: float) -> None:
        """Lower (or restore) session i to `x`, giving the rows back what it no longer uses."""
        extra = self._over(i, x) - self._over(i, self.grant.get(i, 0.0))
        for k, c in self.prep.net.col_rows[i]:
            if self.room[k] < INF:
                self.room[k] -= c * extra
        self.grant[i] = x

    def admit_by_trimming(self, i: int, donors: Sequence[int]) -> bool:
        """Give session i its minimum by lowering one donor on its rows (never below the
        donor's own minimum) when the minimum does not fit as it is; True if it worked."""
        prep = self.prep
        want = prep.mins[i]
        short = 0.0
        for k, c in prep.net.col_rows[i]:
            if self.room[k] < INF and c > 0:
                short = max(short, self._over(i, want) - self.room[k] / c)
        if short <= 0:
            return self.raise_to(i, want) > 0
        step = prep.net.site.step_w
        for d in donors:
            had = self.grant.get(d, 0.0)
            if d == i or had <= 0:
                continue
            # the donor gives up as many steps as the shortfall costs it on its own coefficient
            lower = round_down(had - short * self._ratio(i, d) - step, step)
            if lower < prep.mins[d]:
                continue
            self.set_to(d, lower)
            if self.raise_to(i, want) > 0:
                self.raise_to(d, had)  # give back what is left over
                return True
            self.set_to(d, had)
        return False

    def _ratio(self, i: int, d: int) -> float:
        """W of donor d that frees one W of session i on their tightest shared row."""
        ci = dict(self.prep.net.col_rows[i])
        ratio = 0.0
        for k, c in self.prep.net.col_rows[d]:
            if k in ci and c > 0:
                ratio = max(ratio, ci[k] / c)
        return ratio or 1.0

    def _fits(self, i: int, cur: float, x: float) -> bool:
        extra = self._over(i, x) - self._over(i, cur)
        return all(self.room[k] >= INF or c * extra <= self.room[k] + _TOL
                   for k, c in self.prep.net.col_rows[i])


def round_slot(prep: _Prep, room: Sequence[float], plan: Mapping[int, float],
               order: Sequence[int], top_up: Mapping[int, float] | None, *,
               trim: bool = False) -> dict[int, float]:
    """Whole grants for one slot from a fractional `plan` (W).

    Grants at or above their minimum are rounded down (they fit: the plan did); those below it
    get the minimum where it still fits (with `trim`, also where lowering one other grant makes
    it fit), in `order`, else 0. With `top_up` (session -> most it
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
        if trim:
            # Whole grants lose what a car planned below its minimum would have taken: make
            # room for its minimum from one that is planned well above its own.
            donors = sorted((d for d in order if fit.grant.get(d, 0.0) > prep.mins[d]),
                            key=lambda d: -fit.grant[d])
            fit.admit_by_trimming(i, donors)
        else:
            fit.raise_to(i, prep.mins[i])
    if top_up is not None:
        for i in order:
            if top_up.get(i, 0.0) > fit.grant.get(i, 0.0):
                fit.raise_to(i, top_up[i], up=True)
    return {i: fit.grant.get(i, 0.0) for i in order}
