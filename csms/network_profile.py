"""SetNetworkProfile (2.0.1 B09): a connectionData the station can use, checked before it is
sent (a wrong profile in a slot the station falls back to can strand it)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

from csms.commands import CommandResult
from csms.helper_versions import V201, version_for
from csms.typed_calls import Channel, Payload

INTERFACES = ("Wired0", "Wired1", "Wired2", "Wired3",
              "Wireless0", "Wireless1", "Wireless2", "Wireless3")


@dataclass(frozen=True, slots=True)
class NetworkProfile:
    """What a connectionData says: where and how the station reaches the CSMS."""

    csms_url: str
    security_profile: int = 2
    interface: str = "Wired0"
    message_timeout_s: int = 30
    apn: str | None = None  # wireless interfaces: the access point name
    apn_user: str | None = None
    apn_password: str | None = None


def connection_data(profile: NetworkProfile) -> Payload:
    """The 2.0.1 NetworkConnectionProfileType of `profile`; ValueError naming what is wrong.
    Profiles 2 and 3 use TLS (A00.FR.3xx/4xx), so their URL is wss://; profile 1 may be ws://."""
    url = urlparse(profile.csms_url)
    if url.scheme not in ("ws", "wss") or not url.netloc:
        raise ValueError(f"the CSMS URL must be ws:// or wss://host/...: {profile.csms_url}")
    if profile.security_profile not in (1, 2, 3):
        raise ValueError("the security profile is 1, 2 or 3")
    if profile.security_profile >= 2 and url.scheme != "wss":
        raise ValueError(f"security profile {profile.security_profile} needs a wss:// URL")
    if profile.interface not in INTERFACES:
        raise ValueError(f"the interface is one of {', '.join(INTERFACES)}")
    if profile.message_timeout_s <= 0:
        raise ValueError("the message timeout is a positive number of seconds")
    data: Payload = {"ocppVersion": "OCPP20", "ocppTransport": "JSON",
                     "ocppCsmsUrl": profile.csms_url,
                     "messageTimeout": profile.message_timeout_s,
                     "securityProfile": profile.security_profile,
                     "ocppInterface": profile.interface}
    if profile.apn is not None:
        if not profile.interface.startswith("Wireless"):
            raise ValueError("an APN is for a Wireless interface")
        apn: Payload = {"apn": profile.apn, "apnAuthentication": "AUTO"}
        if profile.apn_user is not None:
            apn["apnUserName"] = profile.apn_user
        if profile.apn_password is not None:
            apn["apnPassword"] = profile.apn_password
        data["apn"] = apn
    return data


async def set_network_profile(channel: Channel, cp_id: str, slot: int,
                              profile: NetworkProfile) -> CommandResult:
    """SetNetworkProfile of `profile` into configuration slot `slot` (2.0.1 only: refused
    before sending to a 1.6 charger, and a bad profile before asking the version)."""
    data = connection_data(profile)
    if slot < 0:
        raise ValueError("the configuration slot is 0 or more")
    await version_for(channel, cp_id, "SetNetworkProfile", V201)
    return await channel.send(cp_id, "SetNetworkProfile",
                              {"configurationSlot": slot, "connectionData": data})
