"""Stable UUIDs for the HTTP views: every resource the seed documents address by UUID.

Loadstar's own ids are strings (site ids, OCPP identities) and integers (connector numbers,
session rows). A view names each by a UUID derived from them (uuid5, one namespace), so the
same charger keeps the same UUID across restarts without a mapping table. A site whose id is
itself a UUID (a network created through the API) is named by that UUID.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

NAMESPACE = uuid.UUID("6f1c1d0e-2b4a-5c3e-9d7f-4c6f61647374")


# Lists name thousands of rows per page by the same few chargers: uuid5 (SHA-1) per row was
# most of a 1,000-row page's time.
@lru_cache(maxsize=65536)
def _derived(kind: str, *parts: object) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, "/".join([kind, *(str(p) for p in parts)]))


def network_uuid(site_id: str) -> uuid.UUID:
    """The network (site or group) named `site_id`: the id itself when it is a UUID."""
    try:
        return uuid.UUID(site_id)
    except ValueError:
        return _derived("network", site_id)


def charge_point_uuid(cp_id: str) -> uuid.UUID:
    """The charge point whose OCPP identity is `cp_id`."""
    return _derived("charge_point", cp_id)


def connector_uuid(cp_id: str, connector_id: int) -> uuid.UUID:
    """Connector (1.6) or EVSE (2.0.1) number `connector_id` of `cp_id`."""
    return _derived("connector", cp_id, connector_id)


def session_uuid(session_row_id: int) -> uuid.UUID:
    """The charging session stored as row `session_row_id`."""
    return _derived("session", session_row_id)


def plan_uuid(plan_row_id: int, connector_id: str) -> uuid.UUID:
    """The optimization of one connector (`cp_id:n`) in plan row `plan_row_id`."""
    return _derived("optimization", plan_row_id, connector_id)


def ocpp_message_uuid(frame_row_id: int) -> uuid.UUID:
    """The OCPP message logged as frame row `frame_row_id`."""
    return _derived("ocpp_message", frame_row_id)
