"""`/v2/optimizations/` (seed 002 §3.7.11): each stored plan's result for a connector with a
session, in the document's shape: an OCPP 1.6 TxProfile plus a compact kW `profile`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from adapters.http import envelope
from adapters.http.auth import require_scope
from adapters.http.envelope import Envelope, Page, paging, success
from adapters.http.routing import ApiRouter
from adapters.http.views.session_common import (
    answered,
    bad,
    charge_point_id,
    connector_of,
    ids_of,
    network_site,
    optimizations_of,
    sessions_of,
    window,
)
from csms.api_optimizations import document
from csms.api_sessions import ApiProblem
from csms.sites import connector_key
from csms.store import ApiKeyRecord

router = ApiRouter(tags=["optimizations"])
Read = Annotated[ApiKeyRecord, Depends(require_scope("read"))]
FAILS = envelope.responses(400, 401, 403, 404, 500)


async def selection(request: Request, connector: uuid.UUID | None,
                    chargepoint: uuid.UUID | None, network: uuid.UUID | None,
                    charging_session: uuid.UUID | None, vehicle: uuid.UUID | None,
                    ) -> tuple[set[str], set[str] | None, str | None]:
    """(sites, connector keys or None for all, transaction id) the selectors name together."""
    ids, sessions, opts = ids_of(request), sessions_of(request), optimizations_of(request)
    sites: set[str] | None = None
    keys: set[str] | None = None
    tx: str | None = None

    def narrow(site: str, named: set[str] | None) -> None:
        nonlocal sites, keys
        sites = {site} if sites is None else sites & {site}
        if named is not None:
            keys = named if keys is None else keys & named

    if network is not None:
        narrow(await network_site(ids, network), None)
    if chargepoint is not None:
        cp_id = await charge_point_id(ids, chargepoint)
        narrow(sessions.site_of(cp_id), set(await opts.keys_of(cp_id)))
    if connector is not None:
        cp_id, n = await connector_of(ids, connector)
        narrow(sessions.site_of(cp_id), {connector_key(cp_id, n)})
    if charging_session is not None:
        with answered():
            record = await sessions.get(charging_session)
        narrow(sessions.site_of(record.cp_id), {connector_key(record.cp_id, record.connector_id)})
        tx = record.ocpp_tx_id
    if vehicle is not None:
        try:
            cp_id, n = await sessions.connector_of_vehicle(str(vehicle))
        except ApiProblem:
            return set(), set(), None  # no open session: nothing is optimized for it
        narrow(sessions.site_of(cp_id), {connector_key(cp_id, n)})
    return sites or set(), keys, tx


@router.get("/v2/optimizations/", response_model=Envelope[dict[str, Any]], responses=FAILS)
async def list_optimizations(
    request: Request, _: Read, page: Annotated[Page, Depends(paging)],
    connector: uuid.UUID | None = None, chargepoint: uuid.UUID | None = None,
    network: uuid.UUID | None = None, charging_session: uuid.UUID | None = None,
    vehicle: uuid.UUID | None = None, start: datetime | None = None,
    end: datetime | None = None, active: bool | None = None,
) -> Envelope[dict[str, Any]]:
    """Optimizations in force (the newest plan of each network) by default; with start and
    end, every one made in that window, in force or not. Newest first."""
    if connector is None and chargepoint is None and network is None and \
            charging_session is None:
        raise bad("network", "one of connector, chargepoint, network or charging_session is"
                  " required")
    start, end = window(start, end)
    sites, keys, tx = await selection(request, connector, chargepoint, network,
                                      charging_session, vehicle)
    if not sites:
        return success([], 0)
    latest = active if active is not None else not (start is not None and end is not None)
    opts, total = await optimizations_of(request).page(
        tuple(sorted(sites)), None if keys is None else tuple(sorted(keys)), latest, start, end,
        page.limit, page.offset, tx)
    return success([document(o) for o in opts], total)


@router.get("/v2/optimizations/{id}", response_model=Envelope[dict[str, Any]], responses=FAILS)
async def get_optimization(request: Request, _: Read, id: uuid.UUID  # noqa: A002 - the path's name
                           ) -> Envelope[dict[str, Any]]:
    with answered():
        opt = await optimizations_of(request).find(id)
    return success([document(opt)])
