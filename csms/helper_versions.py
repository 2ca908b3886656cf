"""Which OCPP version a typed helper speaks to a charger in, and the errors when it cannot."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # typed_calls imports commands, which imports the OCPP handlers
    from csms.typed_calls import Channel

V16 = "1.6"
V201 = "2.0.1"


class UnknownCharger(LookupError):
    """No charger of that id has ever connected: its OCPP version is unknown."""


class WrongVersion(ValueError):
    """The action does not exist in the OCPP version the charger speaks."""


async def version_for(channel: Channel, cp_id: str, action: str,
                      only: str | None = None) -> str:
    """The version `cp_id` speaks; WrongVersion when `action` is `only` that version's."""
    version = await channel.version(cp_id)
    if version is None:
        raise UnknownCharger(cp_id)
    if only is not None and version != only:
        raise WrongVersion(f"{action} is OCPP {only} only; {cp_id} speaks OCPP {version}")
    return version
