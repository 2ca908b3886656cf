"""Registration states (Accepted, Pending, Rejected): what a boot is answered and what a
charger may send before it is Accepted. Pure: no I/O.

OCPP 1.6 section 4.2 and 2.0.1 B01-B03: a charger answered Pending or Rejected sends nothing
but BootNotification (2.0.1 B02.FR.09 / B03.FR.07: anything else gets CALLERROR
SecurityError), except what the CSMS itself asked it for (1.6 section 4.2: "unless it has
been instructed by the Central System to do so with a TriggerMessage.req"; 2.0.1 B02.FR.02:
the CSMS may configure a Pending station, and a GetBaseReport is answered in NotifyReports).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["Accepted", "Pending", "Rejected"]
STATUSES: tuple[Status, ...] = ("Accepted", "Pending", "Rejected")
NOT_ACCEPTED = frozenset({"Pending", "Rejected"})

# A charger that has never booted and that nobody registered has been told nothing: it may
# send its boot and a Heartbeat (answered, nothing stored), everything else is refused.
UNKNOWN_MAY_SEND = frozenset({"Heartbeat"})

# What a not-Accepted charger may send once we asked it for it. Transactions, statuses and
# meter values are not among them, even when triggered: they would steer load management
# and store sessions for a charger that is not Accepted.
_TRIGGERABLE = {
    "Heartbeat": "Heartbeat",
    "FirmwareStatusNotification": "FirmwareStatusNotification",
    "DiagnosticsStatusNotification": "DiagnosticsStatusNotification",
    "LogStatusNotification": "LogStatusNotification",
    "SignChargePointCertificate": "SignCertificate",
    "SignChargingStationCertificate": "SignCertificate",
    "SignV2GCertificate": "SignCertificate",
    "SignCombinedCertificate": "SignCertificate",
}
_REPORTS = frozenset({"GetBaseReport", "GetReport"})


def requested_by(action: str, payload: dict[str, Any], answer: dict[str, Any]) -> str | None:
    """The message our CALL `action` asked the charger to send, once it answered `answer`
    (None: none, or one a not-Accepted charger may still not send)."""
    if answer.get("status") != "Accepted":
        return None
    if action in ("TriggerMessage", "ExtendedTriggerMessage"):
        return _TRIGGERABLE.get(str(payload.get("requestedMessage")))
    return "NotifyReport" if action in _REPORTS else None


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a charger stands: the operator's registration (None: none given) and our answer
    to its last BootNotification (None: it never booted, as far as we know)."""

    registration: str | None = None
    boot_status: str | None = None

    @property
    def refused(self) -> bool:
        """Pending or Rejected, by the operator or by its last boot's answer."""
        return self.registration in NOT_ACCEPTED or self.boot_status in NOT_ACCEPTED

    @property
    def accepted(self) -> bool:
        """Booted Accepted or registered Accepted, and not refused since."""
        return not self.refused and "Accepted" in (self.registration, self.boot_status)

    @property
    def reachable(self) -> bool:
        """Whether we may send it CALLs: Accepted, or Pending (the CSMS may configure a
        Pending charger); a Rejected one answers nothing (1.6 section 4.2)."""
        return self.accepted or (self.refused and "Rejected" not in (self.registration,
                                                                     self.boot_status))

    def admits(self, action: str) -> bool:
        """Whether a message `action` from this charger is handled (else SecurityError)."""
        if action == "BootNotification" or self.accepted:
            return True
        return not self.refused and action in UNKNOWN_MAY_SEND


def boot_answer(registration: str | None, allow_unknown: bool, unknown_status: str) -> str:
    """The BootNotification status: the operator's registration when given, else Accepted
    when unknown chargers are allowed, else the configured status for unknown chargers."""
    if registration in STATUSES:
        return registration
    return "Accepted" if allow_unknown else unknown_status
