"""OCPP-J frames: parse text into Call/CallResult/CallError, build frames, validate payloads.

Pure functions: no sockets and no clock. Errors raise OcppError carrying the message id to
answer with ("-1" when it cannot be read, as OCPP 2.0.1 prescribes).
"""

from __future__ import annotations

import decimal
import json
import os
from dataclasses import dataclass
from functools import cache
from typing import Any

import ocpp
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError as SchemaValidationError

from csms.ocpp.errors import V16, OcppError

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_ID_LENGTH = 36
UNKNOWN_ID = "-1"


@dataclass(frozen=True, slots=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    unique_id: str
    code: str
    description: str
    details: dict[str, Any]


Frame = Call | CallResult | CallError


def _peek_id(msg: Any) -> str:
    if isinstance(msg, list) and len(msg) > 1 and isinstance(msg[1], str):
        return msg[1][:MAX_ID_LENGTH]
    return UNKNOWN_ID


def parse_frame(text: str | bytes, max_bytes: int) -> Frame:
    """Parse one websocket message; raise OcppError describing what is wrong with it."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OcppError("RpcFrameworkError", "Frame is not UTF-8 text",
                            unique_id=UNKNOWN_ID) from exc
    size = len(text.encode("utf-8"))
    try:
        msg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OcppError("RpcFrameworkError", "Frame is not valid JSON",
                        {"cause": str(exc)}, unique_id=UNKNOWN_ID) from exc
    unique_id = _peek_id(msg)
    # Replies (CALLRESULT/CALLERROR) are never answered, however broken: mark them as such.
    reply_type = ({"message_type": msg[0]} if isinstance(msg, list) and msg
                  and msg[0] in (CALLRESULT, CALLERROR) and not isinstance(msg[0], bool)
                  else {})
    if size > max_bytes:
        raise OcppError("FormatViolation", f"Frame of {size} bytes exceeds {max_bytes} bytes",
                        dict(reply_type), unique_id=unique_id)
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], int) \
            or isinstance(msg[0], bool):
        raise OcppError("RpcFrameworkError", "Frame is not a JSON array starting with a "
                        "MessageTypeId", unique_id=unique_id)
    if msg[0] not in (CALL, CALLRESULT, CALLERROR):
        raise OcppError("MessageTypeNotSupported", f"MessageTypeId {msg[0]} is not supported",
                        unique_id=unique_id)
    if len(msg) < 2 or not isinstance(msg[1], str) or not msg[1] \
            or len(msg[1]) > MAX_ID_LENGTH:
        raise OcppError("RpcFrameworkError", "MessageId must be a string of 1 to 36 characters",
                        dict(reply_type), unique_id=UNKNOWN_ID)
    if msg[0] == CALL:
        if len(msg) != 4 or not isinstance(msg[2], str):
            raise OcppError("RpcFrameworkError", "A CALL has 4 elements: [2, id, action, {}]",
                            unique_id=unique_id)
        if not isinstance(msg[3], dict):
            raise OcppError("FormatViolation", "CALL payload must be a JSON object",
                            unique_id=unique_id)
        return Call(msg[1], msg[2], msg[3])
    if msg[0] == CALLRESULT:
        if len(msg) != 3 or not isinstance(msg[2], dict):
            raise OcppError("RpcFrameworkError", "A CALLRESULT has 3 elements: [3, id, {}]",
                            {"message_type": CALLRESULT}, unique_id=unique_id)
        return CallResult(msg[1], msg[2])
    if len(msg) < 4 or not isinstance(msg[2], str):
        raise OcppError("RpcFrameworkError", "A CALLERROR is [4, id, code, description, {}]",
                        {"message_type": CALLERROR}, unique_id=unique_id)
    details = msg[4] if len(msg) > 4 and isinstance(msg[4], dict) else {}
    return CallError(msg[1], msg[2], str(msg[3]), details)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def call_frame(unique_id: str, action: str, payload: dict[str, Any]) -> str:
    """Serialise a CALL."""
    return _dumps([CALL, unique_id, action, payload])


def result_frame(unique_id: str, payload: dict[str, Any]) -> str:
    """Serialise a CALLRESULT."""
    return _dumps([CALLRESULT, unique_id, payload])


def error_frame(unique_id: str, code: str, description: str,
                details: dict[str, Any] | None = None) -> str:
    """Serialise a CALLERROR."""
    return _dumps([CALLERROR, unique_id, code, description[:255], details or {}])


# -- schemas ------------------------------------------------------------------------------

_SCHEMA_ROOT = os.path.dirname(ocpp.__file__)


def _schema_path(version: str, action: str, response: bool) -> str:
    folder = "v16" if version == V16 else "v201"
    if version == V16:
        name = action + ("Response" if response else "")
    else:
        name = action + ("Response" if response else "Request")
    return os.path.join(_SCHEMA_ROOT, folder, "schemas", f"{name}.json")


def is_known_action(version: str, action: str) -> bool:
    """Whether OCPP `version` defines `action` at all (in either direction)."""
    return os.path.exists(_schema_path(version, action, response=False))


@cache
def _validator(version: str, action: str, response: bool) -> tuple[Draft4Validator, bool]:
    """The schema's validator, and whether it has `multipleOf` (then floats need Decimals)."""
    with open(_schema_path(version, action, response), encoding="utf-8-sig") as f:
        text = f.read()
    schema = json.loads(text, parse_float=decimal.Decimal)
    return Draft4Validator(schema), '"multipleOf"' in text


_CODE_BY_KEYWORD = {
    "type": "TypeConstraintViolation",
    "required": "OccurrenceConstraintViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
    "additionalProperties": "FormatViolation",
}


def validate(version: str, action: str, payload: dict[str, Any], *, response: bool) -> None:
    """Check `payload` against the OCPP JSON schema; raise OcppError with the matching code."""
    validator, needs_decimals = _validator(version, action, response)
    # Decimals so that 1.6's multipleOf 0.1 accepts 21.4 (float rounding would reject it).
    exact = json.loads(_dumps(payload), parse_float=decimal.Decimal) if needs_decimals \
        else payload
    try:
        validator.validate(exact)
    except SchemaValidationError as exc:
        code = _CODE_BY_KEYWORD.get(str(exc.validator), "PropertyConstraintViolation")
        where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise OcppError(code, f"{action}: {where}: {exc.message}"[:255],
                        {"path": where, "keyword": str(exc.validator)}) from exc
