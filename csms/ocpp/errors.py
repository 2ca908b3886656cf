"""OCPP-J error codes, spelled as each protocol version spells them."""

from __future__ import annotations

from typing import Any

V16 = "1.6"
V201 = "2.0.1"

# 1.6 spells two codes differently and lacks the 2.0.1 framework codes.
_V16_SPELLING = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    "RpcFrameworkError": "FormationViolation",
    "MessageTypeNotSupported": "ProtocolError",
}


class OcppError(Exception):
    """An error that becomes a CALLERROR; `code` uses the 2.0.1 spelling."""

    def __init__(self, code: str, description: str, details: dict[str, Any] | None = None,
                 unique_id: str | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details or {}
        self.unique_id = unique_id

    def code_for(self, version: str) -> str:
        """The error code as the given OCPP version names it."""
        return _V16_SPELLING.get(self.code, self.code) if version == V16 else self.code


class CallFailed(Exception):
    """An outbound CALL did not get a CALLRESULT: error, timeout, or lost connection."""

    def __init__(self, status: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status  # "failed" | "timeout"
        self.details = details or {}
