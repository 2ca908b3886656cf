"""Networks: sites and their groups (sub-networks) as one tree, with the capacity intervals and
demand-response events on them; created, changed and deleted while Loadstar runs.

Every change is a new site spec handed to the planner (stored, then re-planned), plus a record
(name, echo-only attributes, created/updated) in the store. Network ids are site or group ids;
a network made here gets a fresh UUID as its id, so its UUID (csms.identity) is that id.
Sites named in config.toml are read-only here: the file replaces them at every start, so a
change made here would not survive a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4
from weakref import WeakKeyDictionary

from pydantic import ValidationError

from csms.clock import Clock, parse_iso
from csms.config import Config, GroupSpec, LimitSpec, SiteSpec
from csms.identity import network_uuid
from csms.planner import Planner
from csms.sites import SiteDirectory
from csms.store import Store
from csms.store.base import NetworkRecord
from csms.webhooks import WebhookError, Webhooks, check_url

LimitKind = Literal["capacity", "dr_event"]
# Site fields a sub-network shares with its top network (it is a circuit of the same site).
SITE_ONLY = ("buffer", "timezone", "objective", "min_power_kw", "power_step_kw",
             "fallback_power_kw", "floors", "default_dwell_h")


class NetworkError(Exception):
    """A request the networks service refuses; `fields` name what is wrong, by field."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__(fields)
        self.fields = fields


class NotFound(NetworkError):
    """No network, capacity or DR event has that UUID."""


class Invalid(NetworkError):
    """The values cannot be used (bad time range, a rule of the document, a cycle)."""


class Conflict(NetworkError):
    """Allowed values, but not in the present state (chargers still in the network, ...)."""


@dataclass(frozen=True, slots=True)
class WebhookChange:
    """`webhook` / `webhookSecret` as a write gave them (None: null or left out)."""

    url: str | None
    secret: str | None
    url_given: bool = True


@dataclass(frozen=True, slots=True)
class Network:
    """A site (top network) or a group of one (sub-network), as the views show it."""

    id: str
    site_id: str
    parent_id: str | None  # the parent site or group; None for a top network
    name: str
    site: SiteSpec
    group: GroupSpec | None
    attrs: dict[str, Any]
    site_attrs: dict[str, Any]  # the top network's (a sub-network shares its settings)
    created: datetime | None
    updated: datetime | None
    from_config: bool
    current_load_kw: float | None
    current_limit_kw: float | None
    webhook: str | None = None  # a top network's webhook URL (the secret is never shown)

    @property
    def uuid(self) -> UUID:
        return network_uuid(self.id)

    @property
    def parent_uuid(self) -> UUID | None:
        return None if self.parent_id is None else network_uuid(self.parent_id)

    @property
    def max_power_kw(self) -> float | None:
        return self.group.max_power_kw if self.group is not None else self.site.max_power_kw


@dataclass(frozen=True, slots=True)
class Limit:
    """A capacity interval or DR event made through the API, on a site or group."""

    spec: LimitSpec
    node_id: str
    site_id: str
    created: datetime | None
    updated: datetime | None

    @property
    def uuid(self) -> UUID:
        return UUID(self.spec.id or "")

    @property
    def network_uuid(self) -> UUID:
        return network_uuid(self.node_id)

    @property
    def start(self) -> datetime:
        return parse_iso(self.spec.start or "")

    @property
    def end(self) -> datetime:
        return parse_iso(self.spec.end or "")


@dataclass(frozen=True, slots=True)
class LimitValues:
    """A new limit's values: `kw` is the capacity, or the DR event's reduction."""

    kw: float
    start: datetime
    end: datetime


def capacity_problem(network_max_kw: float | None, capacity_kw: float) -> str | None:
    """Document 002's rule for a capacity interval against its network's maxCapacity.

    The document says a capacity "cannot be less than the network.maxCapacity"; Loadstar reads
    it as "cannot be more" (see docs/api-notes.md): maxCapacity is the grid connection, a hard
    cap every plan keeps, so an interval above it would change nothing.
    """
    if network_max_kw is not None and capacity_kw > network_max_kw:
        return f"cannot be more than the network's maxCapacity ({network_max_kw:g} kW)"
    return None


# The record kind holding what the API changed on a site of config.toml.
SITE_OVERRIDE = "site_override"

_locks: WeakKeyDictionary[object, asyncio.Lock] = WeakKeyDictionary()


class Networks:
    """The networks of one running Loadstar; every write re-plans the sites it touches."""

    def __init__(self, store: Store, planner: Planner | None, directory: SiteDirectory,
                 config: Config, clock: Clock, webhooks: Webhooks | None = None) -> None:
        self.store, self.planner, self.clock = store, planner, clock
        self.webhooks = webhooks
        self._directory = directory
        self.config_sites = {s.id for s in config.sites}
        self.config_specs = {s.id: s.model_dump() for s in config.sites}
        # One writer at a time: each write reads a site spec and replaces it.
        self.lock = _locks.setdefault(store, asyncio.Lock())

    @property
    def directory(self) -> SiteDirectory:
        return self.planner.directory if self.planner is not None else self._directory

    # -- reading -----------------------------------------------------------------------------

    async def list_networks(self, updated_after: datetime | None = None) -> list[Network]:
        """Every network (sites, then groups, each by id), optionally only those updated after."""
        records = {r.id: r for r in await self.store.list_network_records()}
        times = await self.store.site_times()
        out = [await self._view(site_id, node_id, records, times)
               for site_id, node_id in self._nodes()]
        if updated_after is not None:
            out = [n for n in out if n.updated is not None and n.updated > updated_after]
        return out

    async def get(self, network: UUID) -> Network:
        """The network with this UUID (NotFound)."""
        site_id, node_id = self._find(network)
        records = {r.id: r for r in await self.store.list_network_records(site_id)}
        return await self._view(site_id, node_id, records, await self.store.site_times())

    def _nodes(self) -> Iterable[tuple[str, str]]:
        specs = sorted(self.directory.specs.values(), key=lambda s: s.id)
        for spec in specs:
            yield spec.id, spec.id
        for spec in specs:
            for g in sorted(spec.groups, key=lambda g: g.id):
                yield spec.id, g.id

    def _find(self, network: UUID, field: str = "network_uuid") -> tuple[str, str]:
        """(site id, node id) of the network named `network`; scans the (small) directory."""
        for site_id, node_id in self._nodes():
            if network_uuid(node_id) == network:
                return site_id, node_id
        raise NotFound({field: f"no network {network}"})

    async def _view(self, site_id: str, node_id: str, records: dict[str, NetworkRecord],
                    times: dict[str, datetime]) -> Network:
        spec = self.directory.specs[site_id]
        group = None if node_id == site_id else next(g for g in spec.groups if g.id == node_id)
        record = records.get(node_id)
        attrs = dict(record.attrs) if record is not None else {}
        created = record.created_at if record is not None else times.get(site_id)
        updated = record.updated_at if record is not None else times.get(site_id)
        parent = None if group is None else (group.parent or site_id)
        return Network(
            id=node_id, site_id=site_id, parent_id=parent, name=attrs.pop("name", node_id),
            site=spec, group=group, attrs=attrs,
            site_attrs=dict(records[site_id].attrs) if site_id in records else {},
            created=created, updated=updated,
            from_config=site_id in self.config_sites,
            current_load_kw=self._load_kw(site_id, node_id),
            current_limit_kw=await self._limit_kw(site_id, node_id,
                                                  group.max_power_kw if group else
                                                  spec.max_power_kw),
            webhook=None if group is not None or self.webhooks is None
            else self.webhooks.url_of(site_id))

    def _subtree(self, site_id: str, node_id: str) -> set[str]:
        """`node_id` and every group below it."""
        nodes = {node_id}
        groups = self.directory.specs[site_id].groups
        grew = True
        while grew:
            below = {g.id for g in groups if (g.parent or site_id) in nodes}
            grew = not below <= nodes
            nodes |= below
        return nodes

    def _placed(self) -> dict[tuple[str, str], list[str]]:
        """Known chargers by (site, node they hang from), as the planner indexes them."""
        return {} if self.planner is None else self.planner.placed().by_node

    def _chargers_in(self, site_id: str, nodes: set[str]) -> list[str]:
        """Known chargers placed at any of `nodes` of `site_id`."""
        placed = self._placed()
        return sorted(cp for node in nodes for cp in placed.get((site_id, node), ()))

    def _load_kw(self, site_id: str, node_id: str) -> float | None:
        """Measured draw of the chargers in the network (None: no charger in it)."""
        cps = self._chargers_in(site_id, self._subtree(site_id, node_id))
        if not cps or self.planner is None:
            return None
        watts = sum(c.measured_w or 0.0 for cp in cps
                    for c in self.planner.live.chargers[cp].connectors.values())
        return round(watts / 1000.0, 3)

    async def _limit_kw(self, site_id: str, node_id: str, static_kw: float | None
                        ) -> float | None:
        """The kW limit the last plan of the site used for this node (None: never planned)."""
        used = None if self.planner is None else self.planner.limits_used.get(site_id)
        if used is not None:
            planned = used.get(node_id)
        else:  # not planned since start: the stored plan (a query per network, so only then)
            plans = await self.store.list_plans(site_id, limit=1)
            if not plans:
                return None
            planned = plans[0]["inputs"].get("limits", {}).get(node_id, {}).get("power_kw")
        values = [v for v in (planned, static_kw) if v is not None]
        return min(values) if values else None

    # -- writing networks ----------------------------------------------------------------------

    def _check_webhook(self, change: WebhookChange | None, *, top_network: bool,
                       site_id: str | None = None) -> None:
        """Invalid unless `change` can be applied as it stands (before anything is saved)."""
        if change is None:
            return
        if not top_network:
            raise Invalid({"webhook": "webhooks are set on top networks; a sub-network's "
                                      "optimizations go to its top network's webhook"})
        if self.webhooks is None:
            raise Conflict({"webhook": "this Loadstar delivers no webhooks"})
        url = change.url if change.url_given else (
            None if site_id is None else self.webhooks.url_of(site_id))
        if url is None:
            if change.secret is not None:
                raise Invalid({"webhookSecret": "a webhookSecret needs a webhook"})
            return
        try:
            check_url(url)
        except WebhookError as exc:
            raise Invalid({exc.field: exc.message}) from exc
        if change.secret is None:
            raise Invalid({"webhookSecret": "is required with webhook"})

    async def _apply_webhook(self, site_id: str, change: WebhookChange | None) -> None:
        """Store (sealed) or clear the webhook of `site_id`, as `_check_webhook` allowed."""
        if change is None or self.webhooks is None:
            return
        url = change.url if change.url_given else self.webhooks.url_of(site_id)
        if url is None:
            await self.webhooks.clear(site_id)
            return
        assert change.secret is not None
        try:
            await self.webhooks.configure(site_id, url, change.secret)
        except WebhookError as exc:
            raise Invalid({exc.field: exc.message}) from exc

    def _writable(self, site_id: str, field: str = "network_uuid", *,
                  removing_site: bool = False) -> None:
        if self.planner is None:
            raise Conflict({field: "load management is off ([load] enabled = false)"})
        if removing_site and site_id in self.config_sites:
            raise Conflict({field: f"network {network_uuid(site_id)} is site {site_id!r} of "
                                   "config.toml, which makes it again at every start: remove "
                                   "it there"})

    async def _save(self, spec: SiteSpec, records: dict[str, tuple[str, dict[str, Any]]]
                    ) -> None:
        """Store the records, then the spec (the planner stores it and re-plans).

        A site of config.toml keeps what the API changed as an override of the file's values
        (`Planner.start` lays it over the file at the next start), so the change survives.
        """
        assert self.planner is not None
        now = self.clock.now()
        file_spec = self.config_specs.get(spec.id)
        if file_spec is not None:
            new = spec.model_dump()
            changed = {k: v for k, v in new.items() if k != "id" and v != file_spec[k]}
            records = {**records, f"override:{spec.id}": (SITE_OVERRIDE, changed)}
        for record_id, (kind, attrs) in records.items():
            await self.store.save_network_record(record_id, kind, spec.id, attrs, now)
        await self.planner.update_site(spec)

    async def create(self, name: str, max_power_kw: float, site_fields: dict[str, Any],
                     attrs: dict[str, Any], parent: UUID | None = None,
                     webhook: WebhookChange | None = None) -> Network:
        """A new top network (a site) or, under `parent`, a sub-network (a group)."""
        node_id = str(uuid4())
        async with self.lock:
            if parent is None:
                site_id = node_id
                self._writable(site_id)
                spec = _site(dict(site_fields, id=node_id, max_power_kw=max_power_kw))
            else:
                site_id, parent_id = self._find(parent, "parent")
                self._writable(site_id, "parent")
                top = self.directory.specs[site_id]
                _shared_only(top, site_fields)
                group = GroupSpec(id=node_id, max_power_kw=max_power_kw,
                                  parent=None if parent_id == site_id else parent_id)
                spec = _site(dict(top.model_dump(), groups=[*top.model_dump()["groups"],
                                                            group.model_dump()]))
            self._check_webhook(webhook, top_network=parent is None)
            await self._save(spec, {node_id: ("network", dict(attrs, name=name))})
            await self._apply_webhook(site_id, webhook)
        return await self.get(network_uuid(node_id))

    async def update(self, network: UUID, name: str | None, max_power_kw: float | None,
                     site_fields: dict[str, Any], attrs: dict[str, Any],
                     parent: UUID | None = None,
                     webhook: WebhookChange | None = None) -> Network:
        """Change a network; fields left out (None, or absent from the dicts) stay."""
        async with self.lock:
            site_id, node_id = self._find(network)
            self._writable(site_id)
            self._check_webhook(webhook, top_network=node_id == site_id, site_id=site_id)
            top = self.directory.specs[site_id]
            raw = top.model_dump()
            if node_id == site_id:
                if parent is not None:
                    raise Invalid({"parent": "a top network cannot become a sub-network"})
                raw.update(site_fields)
                if max_power_kw is not None:
                    raw["max_power_kw"] = max_power_kw
            else:
                _shared_only(top, site_fields)
                group = next(g for g in raw["groups"] if g["id"] == node_id)
                if max_power_kw is not None:
                    group["max_power_kw"] = max_power_kw
                if parent is not None:
                    p_site, p_node = self._find(parent, "parent")
                    if p_site != site_id:
                        raise Invalid({"parent": "a sub-network moves only within its top "
                                                 "network"})
                    group["parent"] = None if p_node == site_id else p_node
            spec = _site(raw)
            old = {r.id: r for r in await self.store.list_network_records(site_id)}
            record = old.get(node_id)
            merged = dict(record.attrs) if record is not None else {"name": node_id}
            merged.update(attrs)
            if name is not None:
                merged["name"] = name
            await self._save(spec, {node_id: ("network", merged)})
            await self._apply_webhook(site_id, webhook)
        return await self.get(network)

    async def delete(self, network: UUID) -> Network:
        """Delete a network with its sub-networks, capacities and DR events.

        Conflict while a known charger hangs anywhere in it (it would silently move to the
        default network), and for the default network itself.
        """
        async with self.lock:
            site_id, node_id = self._find(network)
            self._writable(site_id, removing_site=node_id == site_id)
            assert self.planner is not None
            gone = await self.get(network)
            if node_id == self.directory.default_site:
                raise Conflict({"network_uuid": "the default network takes every charger no "
                                                "other network holds; it cannot be deleted"})
            nodes = self._subtree(site_id, node_id)
            cps = self._chargers_in(site_id, nodes)
            if cps:
                raise Conflict({"network_uuid": f"chargers still in this network: "
                                                f"{', '.join(cps[:10])}; move them first"})
            if node_id == site_id:
                await self.store.delete_site(site_id)
                d = self.directory
                self.planner.directory = SiteDirectory(
                    [s for s in d.specs.values() if s.id != site_id], d.charger_specs,
                    d.default_site)
                for other in self.planner.directory.specs:
                    self.planner.request(other, "config_change")
            else:
                raw = self.directory.specs[site_id].model_dump()
                dropped = [g for g in raw["groups"] if g["id"] in nodes]
                raw["groups"] = [g for g in raw["groups"] if g["id"] not in nodes]
                limit_ids = [lim["id"] for g in dropped for lim in g["limits"] if lim["id"]]
                await self.planner.update_site(_site(raw))
                await self.store.delete_network_records([*nodes, *limit_ids])
        return gone

    # -- capacities and DR events --------------------------------------------------------------

    def _limits(self, kind: LimitKind) -> Iterable[tuple[str, str, LimitSpec]]:
        """(site id, node id, limit) of every API-made limit of `kind`."""
        for spec in self.directory.specs.values():
            for lim in spec.limits:
                if lim.kind == kind and lim.id:
                    yield spec.id, spec.id, lim
            for g in spec.groups:
                for lim in g.limits:
                    if lim.kind == kind and lim.id:
                        yield spec.id, g.id, lim

    async def list_limits(self, kind: LimitKind, network: UUID,
                          start: datetime | None, end: datetime | None) -> list[Limit]:
        """The limits of `kind` on `network` overlapping [start, end) (open ends: all), by start."""
        site_id, node_id = self._find(network, "network")
        records = {r.id: r for r in await self.store.list_network_records(site_id)}
        out = []
        for s_id, n_id, lim in self._limits(kind):
            if n_id != node_id:
                continue
            found = _limit(lim, n_id, s_id, records)
            if (end is None or found.start < end) and (start is None or found.end > start):
                out.append(found)
        return sorted(out, key=lambda x: (x.start, x.spec.id or ""))

    async def get_limit(self, kind: LimitKind, limit: UUID) -> Limit:
        """The limit of `kind` with this UUID (NotFound)."""
        for site_id, node_id, lim in self._limits(kind):
            if lim.id == str(limit):
                records = {r.id: r for r in await self.store.list_network_records(site_id)}
                return _limit(lim, node_id, site_id, records)
        raise NotFound({"id": f"no {kind.replace('_', ' ')} {limit}"})

    async def add_limits(self, kind: LimitKind, network: UUID,
                         items: list[LimitValues]) -> list[Limit]:
        """Add limits of `kind` to `network` (all or none); Invalid names `items.{i}.{field}`."""
        async with self.lock:
            site_id, node_id = self._find(network, "network")
            self._writable(site_id, "network")
            current = await self.get(network)
            problems: dict[str, str] = {}
            new: list[LimitSpec] = []
            for i, item in enumerate(items):
                found = _limit_problems(kind, current.max_power_kw, item)
                problems.update({f"items.{i}.{k}": v for k, v in found.items()})
                if not found:
                    new.append(_limit_spec(kind, str(uuid4()), item))
            if problems:
                raise Invalid(problems)
            raw = self.directory.specs[site_id].model_dump()
            node = raw if node_id == site_id else next(
                g for g in raw["groups"] if g["id"] == node_id)
            node["limits"] = [*node["limits"], *(n.model_dump() for n in new)]
            await self._save(_site(raw), {n.id or "": (kind, {}) for n in new})
        return [await self.get_limit(kind, UUID(n.id or "")) for n in new]

    async def update_limit(self, kind: LimitKind, limit: UUID, kw: float | None,
                           start: datetime | None, end: datetime | None) -> Limit:
        """Change a limit's value or times; fields left None stay."""
        async with self.lock:
            found = await self.get_limit(kind, limit)
            self._writable(found.site_id, "id")
            item = LimitValues(
                kw=kw if kw is not None else (found.spec.power_kw if kind == "capacity"
                                              else found.spec.reduction_kw) or 0.0,
                start=start or found.start, end=end or found.end)
            network = await self.get(found.network_uuid)
            problems = _limit_problems(kind, network.max_power_kw, item)
            if problems:
                raise Invalid(problems)
            raw = self._without_limit(found)
            node = raw if found.node_id == found.site_id else next(
                g for g in raw["groups"] if g["id"] == found.node_id)
            node["limits"] = [*node["limits"], _limit_spec(kind, str(limit), item).model_dump()]
            await self._save(_site(raw), {str(limit): (kind, {})})
        return await self.get_limit(kind, limit)

    async def delete_limit(self, kind: LimitKind, limit: UUID) -> Limit:
        """Delete a limit; the site re-plans without it."""
        async with self.lock:
            found = await self.get_limit(kind, limit)
            self._writable(found.site_id, "id")
            assert self.planner is not None
            await self.planner.update_site(_site(self._without_limit(found)))
            await self.store.delete_network_records([str(limit)])
        return found

    def _without_limit(self, found: Limit) -> dict[str, Any]:
        raw = self.directory.specs[found.site_id].model_dump()
        for node in [raw, *raw["groups"]]:
            node["limits"] = [x for x in node["limits"] if x.get("id") != found.spec.id]
        return raw


def networks_of(loadstar: Any) -> Networks:
    """The networks service of a running `csms.service.Loadstar`."""
    return Networks(loadstar.store, loadstar.planner, loadstar.sites, loadstar.config,
                    loadstar.clock, loadstar.webhooks)


def _site(raw: dict[str, Any]) -> SiteSpec:
    """A site spec from `raw`; Invalid names the fields (SiteSpec's names) it rejects."""
    try:
        return SiteSpec.model_validate(raw)
    except ValidationError as e:
        problems: dict[str, str] = {}
        for err in e.errors():
            parts = [str(p) for p in err["loc"]]
            if err["type"] == "config_key":
                parts.append(err["ctx"]["key"])  # e.g. "groups[0].parent"
            problems.setdefault(".".join(parts) or "network",
                                str(err["msg"]).removeprefix("Value error, "))
        raise Invalid(problems) from None


def _shared_only(top: SiteSpec, site_fields: dict[str, Any]) -> None:
    """A sub-network takes its site's settings: refuse a different value for one."""
    problems = {k: f"a sub-network shares this with its top network "
                   f"{network_uuid(top.id)}; set it there"
                for k, v in site_fields.items()
                if k in SITE_ONLY and v != getattr(top, k)}
    if problems:
        raise Invalid(problems)


def _limit_problems(kind: LimitKind, network_max_kw: float | None,
                    item: LimitValues) -> dict[str, str]:
    problems: dict[str, str] = {}
    if item.end <= item.start:
        problems["end"] = "must be after start"
    if kind == "capacity":
        problem = capacity_problem(network_max_kw, item.kw)
        if problem:
            problems["kw"] = problem
    return problems


def _limit_spec(kind: LimitKind, limit_id: str, item: LimitValues) -> LimitSpec:
    value = {"power_kw": item.kw} if kind == "capacity" else {"reduction_kw": item.kw}
    return LimitSpec(kind=kind, id=limit_id, start=_iso(item.start), end=_iso(item.end), **value)


def _iso(at: datetime) -> str:
    """UTC ISO 8601 to the microsecond (csms.clock.iso keeps milliseconds, for OCPP)."""
    return at.astimezone(UTC).isoformat()


def _limit(lim: LimitSpec, node_id: str, site_id: str,
           records: dict[str, NetworkRecord]) -> Limit:
    record = records.get(lim.id or "")
    return Limit(spec=lim, node_id=node_id, site_id=site_id,
                 created=record.created_at if record else None,
                 updated=record.updated_at if record else None)
