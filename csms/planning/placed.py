"""Known chargers by where they hang, kept between plans.

A plan of one site, or a list of networks, must not look at every charger: the index is
rebuilt only when the site directory is replaced or a charger appears (live chargers are
never dropped, so their count tells).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from csms.sites import SiteDirectory


class Placed:
    """Charger ids by site and by (site, node they hang from), in the order they appeared."""

    def __init__(self) -> None:
        self.by_site: dict[str, list[str]] = {}
        self.by_node: dict[tuple[str, str], list[str]] = {}
        self._for: SiteDirectory | None = None
        self._count = -1

    def update(self, directory: SiteDirectory, chargers: Mapping[str, Any]) -> Placed:
        """This index, rebuilt first if `directory` or the set of `chargers` changed."""
        if self._for is directory and self._count == len(chargers):
            return self
        by_site: dict[str, list[str]] = {}
        by_node: dict[tuple[str, str], list[str]] = {}
        for cp_id in chargers:
            place = directory.placement(cp_id)
            by_site.setdefault(place.site_id, []).append(cp_id)
            by_node.setdefault((place.site_id, place.parent_id), []).append(cp_id)
        self.by_site, self.by_node = by_site, by_node
        self._for, self._count = directory, len(chargers)
        return self
