"""Which site and circuit each charger hangs from, and its electrical facts, as the allocator's
model (loadmgmt.model) sees them. Built from `config.toml`; unknown chargers join the default
site.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from csms.config import ChargerSpec, Config, GroupSpec, LimitSpec, SiteSpec
from loadmgmt.model import ChargePoint, Connector, Group, Site
from loadmgmt.units import CurrentType

# A site nobody configured: large enough not to be the bottleneck, managed so chargers still
# get floors; operators are expected to configure their real grid connection.
FALLBACK_SITE = SiteSpec(id="default", max_power_kw=1000.0)


@dataclass(frozen=True, slots=True)
class Placement:
    site_id: str
    parent_id: str  # the group (or the site) the charge point hangs from


class SiteDirectory:
    """Site specs plus the rules that place chargers in them."""

    def __init__(self, sites: list[SiteSpec], chargers: list[ChargerSpec],
                 default_site: str) -> None:
        self.specs: dict[str, SiteSpec] = {s.id: s for s in sites}
        if default_site not in self.specs:
            self.specs[default_site] = FALLBACK_SITE.model_copy(update={"id": default_site})
        self.default_site = default_site
        self.charger_specs = chargers or [ChargerSpec()]
        # Matching every pattern for every charger on every plan cost the planner most of its
        # time at 1,000 chargers; a directory never changes (a site change makes a new one),
        # so each answer is kept.
        self._placements: dict[str, Placement] = {}
        self._charger_specs: dict[str, ChargerSpec] = {}

    @classmethod
    def from_config(cls, config: Config) -> SiteDirectory:
        return cls(config.sites, config.chargers, config.load.default_site)

    def with_site(self, spec: SiteSpec) -> SiteDirectory:
        """A copy with `spec` added or replacing the site of the same id."""
        sites = {**self.specs, spec.id: spec}
        return SiteDirectory(list(sites.values()), self.charger_specs, self.default_site)

    def placement(self, cp_id: str) -> Placement:
        """Where `cp_id` hangs: the first group whose patterns match, else a matching site."""
        found = self._placements.get(cp_id)
        if found is None:
            found = self._placements[cp_id] = self._match_placement(cp_id)
        return found

    def _match_placement(self, cp_id: str) -> Placement:
        for spec in self.specs.values():
            for group in spec.groups:
                if any(fnmatchcase(cp_id, p) for p in group.chargers):
                    return Placement(spec.id, group.id)
        for spec in self.specs.values():
            if any(fnmatchcase(cp_id, p) for p in spec.chargers):
                return Placement(spec.id, spec.id)
        return Placement(self.default_site, self.default_site)

    def charger_spec(self, cp_id: str) -> ChargerSpec:
        """The electrical description of `cp_id` (first matching pattern)."""
        found = self._charger_specs.get(cp_id)
        if found is None:
            found = next((s for s in self.charger_specs if fnmatchcase(cp_id, s.match)),
                         None) or ChargerSpec()
            self._charger_specs[cp_id] = found
        return found

    def site(self, site_id: str) -> Site:
        s = self.specs[site_id]
        return Site(
            id=s.id, max_power_kw=s.max_power_kw, max_current_a=s.max_current_a,
            buffer=s.buffer, timezone=s.timezone, objective=s.objective,
            min_power_kw=s.min_power_kw, power_step_kw=s.power_step_kw,
            fallback_power_kw=s.fallback_power_kw, floors=s.floors,
        )

    def groups(self, site_id: str) -> tuple[Group, ...]:
        return tuple(
            Group(id=g.id, parent_id=g.parent or site_id, max_power_kw=g.max_power_kw,
                  max_current_a=g.max_current_a)
            for g in self.specs[site_id].groups
        )

    def limit_specs(self, site_id: str) -> dict[str, list[LimitSpec]]:
        """Limits over time per node id (the site and each group)."""
        spec = self.specs[site_id]
        out: dict[str, list[LimitSpec]] = {site_id: list(spec.limits)}
        for g in spec.groups:
            out[g.id] = list(g.limits)
        return out

    def group_spec(self, site_id: str, group_id: str) -> GroupSpec | None:
        return next((g for g in self.specs[site_id].groups if g.id == group_id), None)

    def charge_point(self, cp_id: str) -> ChargePoint:
        spec = self.charger_spec(cp_id)
        return ChargePoint(id=cp_id, parent_id=self.placement(cp_id).parent_id,
                           max_power_kw=spec.max_power_kw)

    def connector(self, cp_id: str, connector_id: int, priority: int | None = None) -> Connector:
        spec = self.charger_spec(cp_id)
        return Connector(
            id=connector_key(cp_id, connector_id), charge_point_id=cp_id,
            parent_id=self.placement(cp_id).parent_id,
            current_type=CurrentType(spec.current_type), voltage_v=spec.voltage_v,
            power_factor=spec.power_factor, phases=tuple(spec.phases),
            max_power_kw=spec.max_power_kw, max_current_a=spec.max_current_a,
            min_current_a=spec.min_current_a,
            priority=spec.priority if priority is None else priority,
        )


def connector_key(cp_id: str, connector_id: int) -> str:
    """The allocator's id for a connector: "CP/1"."""
    return f"{cp_id}/{connector_id}"


def split_key(key: str) -> tuple[str, int]:
    """Inverse of connector_key."""
    cp_id, _, n = key.rpartition("/")
    return cp_id, int(n)
