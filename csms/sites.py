"""Which site and circuit each charger hangs from, and its electrical facts, as the allocator's
model (loadmgmt.model) sees them. Built from `config.toml`; unknown chargers join the default
site. A charger's own record (`ChargerFacts`, set through the HTTP API) overrides the patterns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass(frozen=True, slots=True)
class ConnectorFacts:
    """What a charger's own record says of one connector; None: the config pattern's value."""

    current_type: str | None = None
    voltage_v: float | None = None
    power_factor: float | None = None
    max_power_kw: float | None = None
    max_current_a: float | None = None
    priority: int | None = None
    phases: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class ChargerFacts:
    """A charger's own record: where it hangs (`parent_id`, a site or group) and its ratings."""

    parent_id: str | None = None
    max_power_kw: float | None = None
    connectors: Mapping[int, ConnectorFacts] = field(default_factory=dict)


class SiteDirectory:
    """Site specs plus the rules that place chargers in them (a charger's facts first)."""

    def __init__(self, sites: list[SiteSpec], chargers: list[ChargerSpec],
                 default_site: str, facts: Mapping[str, ChargerFacts] | None = None) -> None:
        self.specs: dict[str, SiteSpec] = {s.id: s for s in sites}
        if default_site not in self.specs:
            self.specs[default_site] = FALLBACK_SITE.model_copy(update={"id": default_site})
        self.default_site = default_site
        self.charger_specs = chargers or [ChargerSpec()]
        self.facts: dict[str, ChargerFacts] = dict(facts or {})
        # Site of every node (sites and groups share one id space): a placement's site.
        self.site_of_node: dict[str, str] = {}
        for spec in self.specs.values():
            self.site_of_node[spec.id] = spec.id
            for g in spec.groups:
                self.site_of_node.setdefault(g.id, spec.id)
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
        return SiteDirectory(list(sites.values()), self.charger_specs, self.default_site,
                             self.facts)

    def with_chargers(self, facts: Mapping[str, ChargerFacts | None]) -> SiteDirectory:
        """A copy where each charger of `facts` has those facts (None: the patterns again)."""
        merged = dict(self.facts)
        for cp_id, f in facts.items():
            if f is None:
                merged.pop(cp_id, None)
            else:
                merged[cp_id] = f
        return SiteDirectory(list(self.specs.values()), self.charger_specs, self.default_site,
                             merged)

    def placement(self, cp_id: str) -> Placement:
        """Where `cp_id` hangs: the first group whose patterns match, else a matching site."""
        found = self._placements.get(cp_id)
        if found is None:
            found = self._placements[cp_id] = self._match_placement(cp_id)
        return found

    def _match_placement(self, cp_id: str) -> Placement:
        own = self.facts.get(cp_id)
        # A placement into a network that no longer exists falls back to the patterns.
        if own is not None and own.parent_id in self.site_of_node:
            return Placement(self.site_of_node[own.parent_id], own.parent_id)
        return self.pattern_placement(cp_id)

    def pattern_placement(self, cp_id: str) -> Placement:
        """Where the config patterns alone place `cp_id`."""
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
            fallback_power_kw=s.fallback_power_kw, floors=s.floors, lend_after_s=s.lend_after_s,
            wiring=s.wiring, transformer=s.transformer,
            transformer_primary_a=s.transformer_primary_a,
            transformer_primary_v=s.transformer_primary_v,
            transformer_secondary_v=s.transformer_secondary_v,
            default_dwell_h=s.default_dwell_h,
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
        own = self.facts.get(cp_id)
        max_kw = own.max_power_kw if own is not None and own.max_power_kw is not None \
            else spec.max_power_kw
        return ChargePoint(id=cp_id, parent_id=self.placement(cp_id).parent_id,
                           max_power_kw=max_kw)

    def connector(self, cp_id: str, connector_id: int, priority: int | None = None) -> Connector:
        spec = self.charger_spec(cp_id)
        own = self.facts.get(cp_id)
        c = (own.connectors.get(connector_id) if own is not None else None) or ConnectorFacts()
        current_type = c.current_type or spec.current_type
        phases = c.phases or tuple(spec.phases)
        if c.phases is None and c.current_type == "AC_phase1" and len(phases) == 3:
            # A single-phase outlet draws from one phase; the pattern's three would triple it.
            phases = phases[:1]
        return Connector(
            id=connector_key(cp_id, connector_id), charge_point_id=cp_id,
            parent_id=self.placement(cp_id).parent_id,
            current_type=CurrentType(current_type),
            voltage_v=spec.voltage_v if c.voltage_v is None else c.voltage_v,
            power_factor=spec.power_factor if c.power_factor is None else c.power_factor,
            phases=phases,
            max_power_kw=spec.max_power_kw if c.max_power_kw is None else c.max_power_kw,
            max_current_a=spec.max_current_a if c.max_current_a is None else c.max_current_a,
            min_current_a=spec.min_current_a,
            priority=priority if priority is not None
            else spec.priority if c.priority is None else c.priority,
        )


def connector_key(cp_id: str, connector_id: int) -> str:
    """The allocator's id for a connector: "CP/1"."""
    return f"{cp_id}/{connector_id}"


def split_key(key: str) -> tuple[str, int]:
    """Inverse of connector_key."""
    cp_id, _, n = key.rpartition("/")
    return cp_id, int(n)
