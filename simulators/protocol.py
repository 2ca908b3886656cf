"""What both protocol sides share: dispatch of incoming CALLs and the station's settings.

`simulators.v16.V16` and `simulators.v201.V201` translate between the station and the wire:
they build what the station sends and turn the central system's CALLs into station actions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from ocpp.exceptions import OCPPError

from simulators import smart
from simulators.charging import SmartCharging
from simulators.clock import Clock
from simulators.device_model import SUPPORTED_MEASURANDS, DeviceModel, V16Config
from simulators.link import Link
from simulators.physics import Physics
from simulators.records import Conn, Payload, Remote, TxRecord
from simulators.rpc import Reply, known_actions, validate_call
from simulators.station import Station

Answer = tuple[Payload, Callable[[], Awaitable[None]] | None]


# What a charger without smart charging does not implement.
SMART_CHARGING_ACTIONS = frozenset({"SetChargingProfile", "ClearChargingProfile",
                                    "GetCompositeSchedule"})

class ProtocolSide:
    """One OCPP version's view of the station (subclassed per version)."""

    version = ""
    v16 = False
    #: The stop reason (1.6 names) when the EV is full and the station stops charging.
    full_reason = "Other"
    #: True where a StatusNotification reports the whole station (1.6 connector 0).
    reports_station_status = False

    def __init__(
        self,
        *,
        clock: Clock,
        station: Station,
        link: Link,
        physics: Physics,
        charging: SmartCharging,
        config: V16Config,
        device_model: DeviceModel,
        vendor: str,
        model: str,
        firmware: str,
        serial: str,
        voltage_v: float,
        mode: str,
        relax_validation: bool,
    ) -> None:
        self.clock = clock
        self.station = station
        self.link = link
        self.physics = physics
        self.charging = charging
        self.config = config
        self.device_model = device_model
        self.vendor, self.model, self.firmware = vendor, model, firmware
        self.serial = serial
        self.voltage_v = voltage_v
        self.mode = mode
        self.relax_validation = relax_validation
        self.incoming: list[tuple[str, Payload]] = []

    # ------------------------------------------------------------------ incoming calls

    def handle_call(self, action: str, payload: Any) -> Answer:
        """Answer a central-system CALL: (CALLRESULT payload, follow-up to run after it).

        Raises `Reply` for a CALLERROR. Pure with respect to the network, so unit tests call
        it directly.
        """
        self.incoming.append((action, payload))
        if not isinstance(payload, dict):
            raise Reply("FormatViolation", "payload is not an object")
        if action not in known_actions(self.version) or (
                self.mode == "no_smart_charging" and action in SMART_CHARGING_ACTIONS):
            raise Reply("NotImplemented", f"{action} is not implemented here")
        handler = getattr(self, f"on_{action}", None)
        if handler is None:
            if action == "DataTransfer":
                return {"status": "UnknownVendorId"}, None
            raise Reply("NotSupported", f"{action} is not supported")
        if not self.relax_validation:
            try:
                validate_call(action, payload, self.version)
            except OCPPError as exc:
                raise Reply(exc.code, str(exc.description)) from None
        self.physics.advance(self.clock.now())
        result = handler(payload)
        if isinstance(result, tuple):
            return result
        return result, None

    # ------------------------------------------------------------------ settings

    def set_heartbeat_interval(self, seconds: int) -> None:
        """The interval the central system gave at boot (kept in both configurations)."""
        self.config.keys["HeartbeatInterval"].value = str(seconds)
        self.device_model.get("OCPPCommCtrlr", "HeartbeatInterval").value = str(seconds)

    def install_remote_profile(self, c: Conn, data: Payload, now: datetime) -> None:
        """Install the TxProfile that came with a remote start (ignored if malformed)."""
        try:
            profile = self.remote_profile(c, data, now)
        except (smart.ProfileError, KeyError, ValueError):
            return
        self.charging.set_profile(profile, now)

    # ------------------------------------------------------------------ per version

    def remote_profile(self, c: Conn, data: Payload, now: datetime) -> smart.Profile:
        raise NotImplementedError

    def authorize_payload(self, id_tag: str) -> Payload:
        raise NotImplementedError

    def new_transaction_id(self) -> str | None:
        """The id of a transaction as it starts (None: the central system gives it)."""
        raise NotImplementedError

    def boot_payload(self) -> Payload:
        raise NotImplementedError

    def meter_interval(self) -> int:
        raise NotImplementedError

    def measurands(self, kind: str) -> list[str]:
        raise NotImplementedError

    def message_attempts(self) -> int:
        raise NotImplementedError

    def retry_interval(self) -> float:
        raise NotImplementedError

    def heartbeat_interval(self) -> int:
        raise NotImplementedError

    def smart_enabled(self) -> bool:
        raise NotImplementedError

    def wire_status(self, c: Conn) -> str:
        raise NotImplementedError

    def status_payload(self, c: Conn | None, now: datetime) -> Payload:
        raise NotImplementedError

    def tx_started(self, c: Conn, tx: TxRecord, remote: Remote | None, now: datetime) -> None:
        raise NotImplementedError

    def tx_ended(self, c: Conn, tx: TxRecord, reason: str, now: datetime) -> None:
        raise NotImplementedError

    def send_meter_values(self, c: Conn, now: datetime, context: str) -> None:
        raise NotImplementedError

    def charging_state_changed(self, c: Conn, now: datetime) -> None:
        raise NotImplementedError


def measurand_list(text: str) -> list[str]:
    """The supported measurands of a comma-separated setting (the energy register if none)."""
    found = [m.strip() for m in text.split(",") if m.strip() in SUPPORTED_MEASURANDS]
    return found or ["Energy.Active.Import.Register"]
