"""What to send to bring a charger's local authorization list in line with the id tags (pure).

Entries are kept version-neutral (`status`, `expiry` ISO text, `parent`, `group`) and become
1.6 `idTagInfo` / 2.0.1 `idTokenInfo` only in the payload. A list that does not fit one
message (the charger's items and bytes per message) goes as a Full first part and
Differential parts after it, each with the next version number: a charger refuses a
differential whose version is not above its own (1.6 VersionMismatch).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Entry = dict[str, Any]
Entries = dict[str, Entry]
V16, V201 = "1.6", "2.0.1"
# 2.0.1 IdTokenEnumType for a tag's seed-002 group; a tag without one is a card (ISO14443).
TOKEN_TYPES = {"RFID": "ISO14443", "VID or MAC address": "MacAddress",
               "credit card reader": "Local"}
V16_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")


@dataclass(frozen=True, slots=True)
class Limits:
    """What the charger said about its local list; None where it did not say."""

    supported: bool | None = None
    enabled: bool | None = None
    max_entries: int | None = None
    items_per_message: int | None = None
    bytes_per_message: int | None = None


@dataclass(frozen=True, slots=True)
class Part:
    """One SendLocalList: Full or Differential, the version it sets, its changes (an entry of
    None removes the tag) and the entries the charger holds once it is accepted."""

    update_type: str
    version: int
    changes: dict[str, Entry | None]
    holds: Entries


def _int(value: Any) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _bool(value: Any) -> bool | None:
    text = str(value).strip().lower()
    return {"true": True, "false": False}.get(text)


def limits_v16(keys: dict[str, Any]) -> Limits:
    """Limits from 1.6 GetConfiguration keys (key -> value)."""
    profiles = keys.get("SupportedFeatureProfiles")
    supported = None if profiles is None else "LocalAuthListManagement" in str(profiles)
    return Limits(supported=supported, enabled=_bool(keys.get("LocalAuthListEnabled")),
                  max_entries=_int(keys.get("LocalAuthListMaxLength")),
                  items_per_message=_int(keys.get("SendLocalListMaxLength")))


def limits_v201(variables: dict[str, Any]) -> Limits:
    """Limits from 2.0.1 LocalAuthListCtrlr variables (name -> value): Enabled says both
    whether the station has a list and whether it is on; Entries (its maxLimit when known)
    caps the list."""
    enabled = _bool(variables.get("Enabled"))
    available = _bool(variables.get("Available"))
    return Limits(supported=enabled if available is None else available, enabled=enabled,
                  max_entries=_int(variables.get("EntriesMax")),
                  items_per_message=_int(variables.get("ItemsPerMessage")),
                  bytes_per_message=_int(variables.get("BytesPerMessage")))


def capped(wanted: Entries, limits: Limits) -> Entries:
    """The entries the charger can hold: at most `max_entries`, by tag order."""
    if limits.max_entries is None or len(wanted) <= limits.max_entries:
        return wanted
    return dict(sorted(wanted.items())[:limits.max_entries])


def difference(held: Entries, wanted: Entries) -> dict[str, Entry | None]:
    """The changes that turn `held` into `wanted`: changed or new entries, None for removed."""
    changes: dict[str, Entry | None] = {t: e for t, e in sorted(wanted.items())
                                        if held.get(t) != e}
    changes.update({t: None for t in sorted(held) if t not in wanted})
    return changes


def entry_v16(tag: str, entry: Entry | None) -> dict[str, Any]:
    """A 1.6 AuthorizationData (no idTagInfo: remove the tag, in a Differential)."""
    if entry is None:
        return {"idTag": tag}
    status = entry.get("status", "Accepted")
    info: dict[str, Any] = {"status": status if status in V16_STATUSES else "Invalid"}
    if entry.get("expiry"):
        info["expiryDate"] = entry["expiry"]
    if entry.get("parent"):
        info["parentIdTag"] = entry["parent"]
    return {"idTag": tag, "idTagInfo": info}


def entry_v201(tag: str, entry: Entry | None) -> dict[str, Any]:
    """A 2.0.1 AuthorizationData (no idTokenInfo: remove the token, in a Differential)."""
    if entry is None:
        return {"idToken": {"idToken": tag, "type": "ISO14443"}}
    token = {"idToken": tag, "type": TOKEN_TYPES.get(entry.get("group") or "", "ISO14443")}
    info: dict[str, Any] = {"status": entry.get("status", "Accepted")}
    if entry.get("expiry"):
        info["cacheExpiryDateTime"] = entry["expiry"]
    if entry.get("parent"):
        info["groupIdToken"] = {"idToken": entry["parent"], "type": "Central"}
    return {"idToken": token, "idTokenInfo": info}


def payload(version: str, part: Part) -> dict[str, Any]:
    """The SendLocalList request for `part` in the charger's OCPP version."""
    if version == V16:
        items = [entry_v16(t, e) for t, e in part.changes.items()]
        return {"listVersion": part.version, "updateType": part.update_type,
                "localAuthorizationList": items}
    out: dict[str, Any] = {"versionNumber": part.version, "updateType": part.update_type}
    if part.changes:  # 2.0.1 wants at least one item when the list is there
        out["localAuthorizationList"] = [entry_v201(t, e) for t, e in part.changes.items()]
    return out


def _size(version: str, part: Part) -> int:
    return len(json.dumps(payload(version, part), separators=(",", ":")).encode())


def chunks(version: str, changes: dict[str, Entry | None], limits: Limits,
           first_type: str, first_version: int, held: Entries) -> list[Part]:
    """`changes` as parts within the charger's items and bytes per message: the first of
    `first_type` at `first_version`, the rest Differential at the versions after it."""
    parts: list[Part] = []
    current: dict[str, Entry | None] = {}
    holds = {} if first_type == "Full" else dict(held)

    def close() -> None:
        nonlocal current
        update_type = first_type if not parts else "Differential"
        parts.append(Part(update_type, first_version + len(parts), current, dict(holds)))
        current = {}

    for tag, entry in changes.items():
        candidate = {**current, tag: entry}
        trial = Part("Full", first_version + len(parts), candidate, {})
        too_many = limits.items_per_message is not None and \
            len(candidate) > limits.items_per_message
        too_big = limits.bytes_per_message is not None and \
            _size(version, trial) > limits.bytes_per_message
        if current and (too_many or too_big):
            close()
        current[tag] = entry
        if entry is None:
            holds.pop(tag, None)
        else:
            holds[tag] = entry
    if current or not parts:
        close()
    return parts


def full_update(version: str, wanted: Entries, limits: Limits, new_version: int) -> list[Part]:
    """Replace the charger's list with `wanted` (an empty Full clears it)."""
    return chunks(version, dict(wanted), limits, "Full", new_version, {})


def differential_update(version: str, held: Entries, wanted: Entries, limits: Limits,
                        held_version: int) -> list[Part]:
    """Only what changed since `held` (at `held_version`); no parts when nothing did."""
    changes = difference(held, wanted)
    if not changes:
        return []
    return chunks(version, changes, limits, "Differential", held_version + 1, held)
