"""Configurations (seed 002 "Configurations"): delivery presets that decide how profiles go out
(stackLevel, purpose, chargingRateUnit, numberPhases, All or Sequential), chosen per charge
point, network or customer; and the OCPP connection settings.

Levels: `customer` (Loadstar serves one: CUSTOMER_UUID), `network` (a site or a group),
`chargepoint` and `user`. The planner asks `presets_for(cp_id)` for every profile it builds:
the charge point's choice, else its group's, else its site's, else the customer's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from csms import identity
from csms.clock import Clock
from csms.security import hash_password
from csms.sites import SiteDirectory
from csms.store import Store
from csms.store.catalog import ConfigurationRecord, OcppSettingsRecord
from loadmgmt.profiles import SEED_PRESETS, ChargingProfile, DeliveryPreset

LEVELS = ("customer", "network", "chargepoint", "user")
PURPOSES = ("TxProfile", "TxDefaultProfile")
FEATURES = ("off", "cms", "proxy")
# Loadstar serves one customer; its UUID follows the one rule of csms.identity.
CUSTOMER_UUID = str(uuid.uuid5(identity.NAMESPACE, "customer/loadstar"))
# The customer's default presets until it chooses others: the seed's defaults with numberPhases,
# which Loadstar sent before presets could be chosen (an A limit then says on how many phases).
LOADSTAR_DEFAULTS: Mapping[str, str] = {
    "TxProfile": "ampcontrol-default-TxProfile-number-phases",
    "TxDefaultProfile": "ampcontrol-default-TxDefaultProfile-number-phases",
}


def default_presets(cp_id: str) -> tuple[DeliveryPreset, DeliveryPreset]:
    """(TxProfile, TxDefaultProfile) presets of any charger when nothing is configured."""
    return (SEED_PRESETS[LOADSTAR_DEFAULTS["TxProfile"]],
            SEED_PRESETS[LOADSTAR_DEFAULTS["TxDefaultProfile"]])


TARGET_KEYS = {"customer": "customerId", "network": "networkId",
               "chargepoint": "chargePointId", "user": "userId"}

Replan = Callable[[str], None]


class BadConfiguration(Exception):
    """The body cannot be taken; `problems` names each offending field."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__(problems)
        self.problems = problems


class AlreadyExists(Exception):
    """A create for something that exists (change it with PATCH)."""


def configuration_uuid(level: str, target: str) -> str:
    """The id of the configuration of `level` for `target`: stable, also before it is stored."""
    return str(uuid.uuid5(identity.NAMESPACE, f"configuration/{level}/{target}"))


def preset_settings(p: DeliveryPreset) -> dict[str, Any]:
    """A preset as seed 002 shows its `settings`."""
    return {"timeZone": p.time_zone, "stackLevel": p.stack_level,
            "numberPhases": p.number_phases, "chargingRateUnit": p.charging_rate_unit,
            "timestampsFormat": "default", "useTransactionId": p.use_transaction_id,
            "limitDeliveryType": p.limit_delivery_type, "chargingProfileKind": p.kind,
            "useChargingProfileId": p.use_charging_profile_id,
            "chargingProfilePurpose": p.purpose}


def presets_document(chosen: Mapping[str, str]) -> dict[str, Any]:
    """`deliveryOptions.presets`: every preset by purpose, `isDefault` on the chosen one."""
    out: dict[str, Any] = {purpose: {} for purpose in PURPOSES}
    for name, p in SEED_PRESETS.items():
        out[p.purpose][name] = {"settings": preset_settings(p),
                                "isDefault": chosen.get(p.purpose) == name}
    return out


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge key by key, null deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def same_delivery(a: ChargingProfile, b: ChargingProfile) -> bool:
    """Whether two profiles go out alike apart from their limits (the preset's part): a
    charger holding `a` must get `b` after a preset change even if the limits are equal."""
    return (a.stack_level, a.kind, a.schedule.unit, a.delivery, a.send_number_phases,
            a.transaction_id is None) == (b.stack_level, b.kind, b.schedule.unit, b.delivery,
                                          b.send_number_phases, b.transaction_id is None)


def _defaults(level: str) -> dict[str, Any]:
    if level == "customer":
        return {"deliveryOptions": dict(LOADSTAR_DEFAULTS), "integrations": {}}
    if level == "user":
        return {"notificationChannels": {"smsNotifications": False,
                                         "emailNotifications": False}}
    # Seed 002: "If no specific type is set, the endpoint should return an empty string".
    return {"deliveryOptions": {purpose: "" for purpose in PURPOSES}}


def _check_choices(level: str, body: dict[str, Any], problems: dict[str, str]) -> None:
    options = body.get("deliveryOptions")
    if options is None:
        return
    if level == "user":
        problems["body.deliveryOptions"] = "a user has no delivery options"
        return
    if not isinstance(options, dict):
        problems["body.deliveryOptions"] = "must be an object"
        return
    for purpose in PURPOSES:
        name = options.get(purpose)
        field = f"body.deliveryOptions.{purpose}"
        if name is None:
            continue
        if not isinstance(name, str):
            problems[field] = "must be a preset name (a string)"
        elif name == "" and level == "customer":
            problems[field] = "the customer level must name a preset"
        elif name and (name not in SEED_PRESETS or SEED_PRESETS[name].purpose != purpose):
            problems[field] = f"no {purpose} preset named {name!r}"
    if "presets" in options and level != "customer":
        problems["body.deliveryOptions.presets"] = "presets exist at the customer level only"


class Delivery:
    """Configurations by level, the presets they choose, and the OCPP settings."""

    def __init__(self, store: Store, clock: Clock, directory: Callable[[], SiteDirectory],
                 replan: Replan | None = None) -> None:
        self._store = store
        self._clock = clock
        self._directory = directory
        self._replan = replan or (lambda trigger: None)
        self._configs: dict[tuple[str, str], ConfigurationRecord] = {}
        self._customer_ocpp: OcppSettingsRecord | None = None
        self._cp_uuids: dict[str, str] = {}  # cp_id -> its UUID, computed once each

    async def load(self) -> None:
        """Read every configuration and the customer's OCPP settings (once, at start)."""
        self._configs = {(c.level, c.target): c for c in await self._store.all_configurations()}
        self._customer_ocpp = await self._store.get_ocpp_settings("customer")

    # -- what the levels name --------------------------------------------------------------

    def network_id(self, network_uuid: str) -> str | None:
        """The site or group named `network_uuid`, if any (the directory is small)."""
        for spec in self._directory().specs.values():
            for node in (spec.id, *(g.id for g in spec.groups)):
                if str(identity.network_uuid(node)) == network_uuid:
                    return node
        return None

    def charge_point_id(self, cp_uuid: str) -> str | None:
        """The charger named `cp_uuid`, among those with a record."""
        for cp_id in self._store.charge_point_ids():
            if cp_id not in self._cp_uuids:
                self._cp_uuids[cp_id] = str(identity.charge_point_uuid(cp_id))
            if self._cp_uuids[cp_id] == cp_uuid:
                return cp_id
        return None

    def target_known(self, level: str, target: str) -> bool:
        """Whether `target` names something at `level` (any UUID is a user: Loadstar keeps
        no user accounts, so it cannot tell)."""
        if level == "customer":
            return target == CUSTOMER_UUID
        if level == "network":
            return self.network_id(target) is not None
        if level == "chargepoint":
            return self.charge_point_id(target) is not None
        return True

    # -- configurations --------------------------------------------------------------------

    def show(self, level: str, target: str) -> dict[str, Any]:
        """The configuration as served: defaults, what was set, and (customer) the presets
        and the OCPP settings as `ampCmsOptions`; `created`/`updated` are datetimes (None
        while only the defaults apply)."""
        stored = self._configs.get((level, target))
        doc = merge_patch(_defaults(level), stored.doc if stored else {})
        if level == "customer":
            chosen = doc["deliveryOptions"]
            doc["deliveryOptions"] = {"presets": presets_document(chosen), **chosen}
            doc["ampCmsOptions"] = self._amp_cms_options()
        head = {"id": configuration_uuid(level, target),
                "created": stored.created_at if stored else None,
                "updated": stored.updated_at if stored else None,
                TARGET_KEYS[level]: target}
        return {**head, **doc}

    def _read_only(self, level: str, target: str, body: dict[str, Any],
                   problems: dict[str, str]) -> dict[str, Any]:
        """`body` without what it may only repeat: the presets and `ampCmsOptions` as shown
        (so a client may send back what it read); anything else there is a problem."""
        if level != "customer":
            return body
        shown = self.show(level, target)
        body = dict(body)
        options = body.get("deliveryOptions")
        if isinstance(options, dict) and "presets" in options:
            mine = {p: {n: e["settings"] for n, e in v.items()}
                    for p, v in shown["deliveryOptions"]["presets"].items()}
            theirs = options["presets"]
            if not isinstance(theirs, dict) or mine != {
                    p: {n: e.get("settings") if isinstance(e, dict) else e
                        for n, e in v.items()} if isinstance(v, dict) else v
                    for p, v in theirs.items()}:
                problems["body.deliveryOptions.presets"] = (
                    "the presets are fixed; choose one by name in deliveryOptions.TxProfile"
                    " and deliveryOptions.TxDefaultProfile")
            body["deliveryOptions"] = {k: v for k, v in options.items() if k != "presets"}
        if "ampCmsOptions" in body:
            if body.pop("ampCmsOptions") != shown["ampCmsOptions"]:
                problems["body.ampCmsOptions"] = "set through /v2/configurations/ocpp_settings"
        return body

    def _checked(self, level: str, target: str, body: dict[str, Any]) -> dict[str, Any]:
        problems: dict[str, str] = {}
        body = self._read_only(level, target, body, problems)
        _check_choices(level, body, problems)
        for key in ("alerts", "idTagPriority"):
            if level == "network" and key in body and not isinstance(body[key], bool | None):
                problems[f"body.{key}"] = "must be true or false"
        if problems:
            raise BadConfiguration(problems)
        return body

    async def create(self, level: str, target: str, body: dict[str, Any]) -> dict[str, Any]:
        """Store the first configuration of `level` for `target` (AlreadyExists if stored)."""
        if (level, target) in self._configs:
            raise AlreadyExists(f"{level} {target}")
        return await self._save(level, target, {}, self._checked(level, target, body))

    async def update(self, level: str, target: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge `body` (a JSON merge patch) into the configuration, stored or default."""
        stored = self._configs.get((level, target))
        return await self._save(level, target, stored.doc if stored else {},
                                self._checked(level, target, body))

    async def _save(self, level: str, target: str, before: dict[str, Any],
                    patch: dict[str, Any]) -> dict[str, Any]:
        now = self._clock.now()
        stored = self._configs.get((level, target))
        record = ConfigurationRecord(
            uuid=configuration_uuid(level, target), level=level, target=target,
            doc=merge_patch(before, patch), created_at=stored.created_at if stored else now,
            updated_at=now)
        await self._store.save_configuration(record)
        self._configs[(level, target)] = record
        if before.get("deliveryOptions") != record.doc.get("deliveryOptions"):
            self._replan("delivery_change")
        return self.show(level, target)

    async def delete(self, config_uuid: str) -> dict[str, Any] | None:
        """Delete a stored configuration (its level reverts to the defaults); it is returned
        as it was, or None if nothing is stored under `config_uuid`."""
        found = next((c for c in self._configs.values() if c.uuid == config_uuid), None)
        if found is None:
            return None
        shown = self.show(found.level, found.target)
        if not await self._store.delete_configuration(config_uuid):
            return None
        del self._configs[(found.level, found.target)]
        if found.doc.get("deliveryOptions"):
            self._replan("delivery_change")
        return shown

    # -- presets for the planner -----------------------------------------------------------

    def chosen(self, level: str, target: str, purpose: str) -> str:
        """The preset name set at one level ("" when that level chooses none)."""
        stored = self._configs.get((level, target))
        options = (stored.doc if stored else {}).get("deliveryOptions") or {}
        name = options.get(purpose)
        return name if isinstance(name, str) else ""

    def presets_for(self, cp_id: str) -> tuple[DeliveryPreset, DeliveryPreset]:
        """(TxProfile, TxDefaultProfile) presets of `cp_id`: its own choice, else its group's,
        else its site's, else the customer's default."""
        placement = self._directory().placement(cp_id)
        chain = [("chargepoint", str(identity.charge_point_uuid(cp_id)))]
        if placement.parent_id != placement.site_id:
            chain.append(("network", str(identity.network_uuid(placement.parent_id))))
        chain.append(("network", str(identity.network_uuid(placement.site_id))))
        chain.append(("customer", CUSTOMER_UUID))
        tx, tx_default = (
            next((n for n in (self.chosen(lv, t, purpose) for lv, t in chain) if n),
                 LOADSTAR_DEFAULTS[purpose]) for purpose in PURPOSES)
        return SEED_PRESETS[tx], SEED_PRESETS[tx_default]

    # -- OCPP settings ---------------------------------------------------------------------

    def _amp_cms_options(self) -> dict[str, Any]:
        s = self._customer_ocpp or OcppSettingsRecord("customer")
        return {"feature": s.feature,
                "secret": "registered" if s.secret_hash else "unregistered",
                "targetCmsUrl": s.target_cms_url, "defaultNetworkId": s.default_network_id}

    async def ocpp_settings(self, scope: str) -> dict[str, Any]:
        """The settings of the customer (`scope` "customer") or of a charge point (its UUID);
        the secret shows only as "registered" or "unregistered"."""
        stored = await self._store.get_ocpp_settings(scope)
        s = stored or OcppSettingsRecord(scope)
        out: dict[str, Any] = {
            "feature": s.feature, "secret": "registered" if s.secret_hash else "unregistered",
            "created": s.created_at, "updated": s.updated_at}
        if scope == "customer":
            out |= {"targetCmsUrl": s.target_cms_url, "defaultNetworkId": s.default_network_id}
        else:
            out["chargePointId"] = scope
        return out

    async def save_ocpp_settings(self, scope: str, fields: dict[str, Any], *,
                                 create: bool) -> dict[str, Any]:
        """Create (AlreadyExists if stored) or change the settings of `scope`; `fields` uses
        OcppSettingsRecord names with `secret` in clear (it is stored hashed)."""
        stored = await self._store.get_ocpp_settings(scope)
        if create and stored is not None:
            raise AlreadyExists(scope)
        network = fields.get("default_network_id")
        if network is not None and self.network_id(network) is None:
            raise BadConfiguration({"body.defaultNetworkId": f"no network {network}"})
        now = self._clock.now()
        changes = dict(fields)
        if "secret" in changes:
            secret = changes.pop("secret")
            # scrypt is slow on purpose: off the event loop.
            changes["secret_hash"] = None if secret is None else \
                await asyncio.to_thread(hash_password, secret)
        record = replace(stored or OcppSettingsRecord(scope, created_at=now), **changes,
                         updated_at=now)
        await self._store.save_ocpp_settings(record)
        if scope == "customer":
            self._customer_ocpp = record
        return await self.ocpp_settings(scope)
