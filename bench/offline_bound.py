"""The offline optimum of a replay (perfect knowledge of every arrival), as a yardstick.

One linear program over the whole period (scipy / HiGHS): each car's power per step while it
is plugged in, at most its maximum, at most its request in total, every row of the site model
in every step; maximise the energy delivered. No 0-or-minimum rule and no power step, so it
bounds what any allocator on the same rows could deliver from above.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_matrix

from bench.acn_data import Session
from bench.acn_site import site_model
from loadmgmt.model import Snapshot
from loadmgmt.network import INF, build_network


def offline_kwh(sessions: list[Session], transformer_kw: float, *, wiring: str, step_s: int,
                car_max_kw: float) -> float:
    """The most energy (kWh) the site's rows allow the sessions, knowing them all up front."""
    site, conns, groups = site_model(transformer_kw, wiring=wiring)
    net = build_network(Snapshot(site, conns, (), groups))
    limits = net.row_limits({})
    t0 = min(s.arrival for s in sessions)
    t0 = t0.replace(minute=t0.minute - t0.minute % (step_s // 60 or 1), second=0, microsecond=0)
    step_h = step_s / 3600.0
    cols: list[tuple[int, int]] = []  # (session, step)
    ub: list[float] = []
    for n, s in enumerate(sessions):
        i = net.index[f"{s.station_id}/1"]
        cap = min(net.connectors[i].max_w(), car_max_kw * 1000.0)
        first = int(np.ceil((s.arrival - t0) / timedelta(seconds=step_s) - 1e-9))
        last = int(np.ceil((s.departure - t0) / timedelta(seconds=step_s) - 1e-9))
        for t in range(first, last):
            cols.append((n, t))
            ub.append(cap)
    rows_i: list[int] = []
    cols_i: list[int] = []
    vals: list[float] = []
    b: list[float] = []
    row_of: dict[tuple[int, int], int] = {}
    for c, (n, _t) in enumerate(cols):
        # each car's total is at most its request
        rows_i.append(n)
        cols_i.append(c)
        vals.append(step_h / 1000.0)
    b.extend(s.kwh for s in sessions)
    for c, (n, t) in enumerate(cols):
        i = net.index[f"{sessions[n].station_id}/1"]
        for k, coef in net.col_rows[i]:
            if limits[k] >= INF:
                continue
            r = row_of.get((k, t))
            if r is None:
                r = row_of[k, t] = len(b)
                b.append(limits[k])
            rows_i.append(r)
            cols_i.append(c)
            vals.append(coef)
    a = coo_matrix((vals, (rows_i, cols_i)), shape=(len(b), len(cols))).tocsr()
    res = linprog(-np.full(len(cols), step_h / 1000.0), A_ub=a, b_ub=np.array(b),
                  bounds=list(zip([0.0] * len(cols), ub, strict=True)), method="highs")
    if res.status != 0:
        raise RuntimeError(res.message)
    return float(-res.fun)
