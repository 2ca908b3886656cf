"""Records of file transfers asked of a station: firmware updates and publications, logs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Families of requests, each followed by its own notification.
FIRMWARE = "firmware"  # UpdateFirmware / SignedUpdateFirmware -> (Signed)FirmwareStatusNotification
PUBLISH = "publish"  # PublishFirmware -> PublishFirmwareStatusNotification
LOG = "log"  # GetDiagnostics / GetLog -> DiagnosticsStatusNotification / LogStatusNotification

# Statuses after which a request is over: a later notification without a requestId belongs
# to a newer request, not to this one.
FINAL = frozenset({
    "Installed", "InstallationFailed", "DownloadFailed", "InvalidSignature",
    "InstallVerificationFailed", "Published", "PublishFailed", "InvalidChecksum",
    "Uploaded", "UploadFailed", "UploadFailure", "BadMessage", "NotSupportedOperation",
    "PermissionDenied",
})


@dataclass(frozen=True, slots=True)
class TransferRecord:
    """One request, what the station answered, and the statuses it reported since."""

    id: int
    cp_id: str
    family: str
    action: str
    request_id: int | None
    payload: dict[str, Any]
    answer_status: str | None  # Accepted, Rejected, ..., or failed / timeout (no answer)
    status: str  # the latest: requested, the answer, then each notified status
    file_name: str | None
    history: list[dict[str, Any]]  # [{"status", "at"}], oldest first
    open: bool
    created_at: datetime
    updated_at: datetime
