"""OCPP-J frames: parse text into Call/CallResult/CallError, build frames, validate payloads.

Pure functions: no sockets and no clock. Errors raise OcppError carrying the message id to
answer with ("-1" when it cannot be read, as OCPP 2.0.1 prescribes).
"""

from __future__ import annotations

import decimal
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import fastjsonschema
import ocpp
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError as SchemaValidationError

from csms.ocpp.errors import V16, V201, OcppError

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_ID_LENGTH = 36
UNKNOWN_ID = "-1"
# The deepest OCPP message (2.0.1 tariffs inside a charging schedule) nests about 10 levels.
MAX_DEPTH = 32
# What the store (SQLite INTEGER) can hold; OCPP integers are 32-bit or smaller in practice.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


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
    if isinstance(msg, list) and len(msg) > 1 and isinstance(msg[1], str) \
            and 0 < len(msg[1]) <= MAX_ID_LENGTH:
        return msg[1]
    return UNKNOWN_ID


# The head of a frame, read without parsing it: [type, "id" ... (the id may hold JSON escapes,
# "\u001f": up to 36 characters of 6 bytes each, decoded before use).
_HEAD = re.compile(r'\s*\[\s*([0-9]+)\s*,\s*("(?:[^"\\]|\\.){1,216}")')
# A \uD800-\uDFFF escape: JSON allows it, UTF-8 (and so the store) cannot hold it alone.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _unparsed_error(text: str, description: str) -> OcppError:
    """A FormatViolation for a frame too big or too odd to parse, answering the MessageId read
    off its head (a reply's, marked so that it is not answered)."""
    m = _HEAD.match(text[:512])
    unique_id = None if m is None else _head_id(m.group(2))
    if m is None or unique_id is None:
        return OcppError("FormatViolation", description, unique_id=UNKNOWN_ID)
    kind = int(m.group(1))
    details: dict[str, Any] = {"message_type": kind} if kind in (CALLRESULT, CALLERROR) else {}
    return OcppError("FormatViolation", description, details, unique_id=unique_id)


def _head_id(quoted: str) -> str | None:
    """The message id a frame's head spells as a JSON string, if it is one we can answer:
    1 to 36 characters that UTF-8 holds (no lone surrogate)."""
    try:
        value = json.loads(quoted)
        value.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return None
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH else None


def _shape_problem(value: Any) -> str | None:
    """What puts `value` beyond OCPP-J: nesting deeper than any OCPP message does, or a
    number that is not finite (NaN, Infinity, 1e400); checked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"Frame nests deeper than {MAX_DEPTH} levels"
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, float) and not math.isfinite(item):
            return "Frame holds a number that is not finite (NaN, Infinity or out of range)"
    return None


def _parse_error(text: str, exc: Exception) -> OcppError:
    """The CALLERROR for text that `json.loads` refused."""
    if isinstance(exc, json.JSONDecodeError):
        return OcppError("RpcFrameworkError", "Frame is not valid JSON", {"cause": str(exc)},
                         unique_id=UNKNOWN_ID)
    # Valid JSON syntax beyond our bounds (nesting, number length): answer the call.
    cause = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120]
    return _unparsed_error(text, f"Frame is outside the limits of OCPP-J: {cause}")


def parse_frame(text: str | bytes, max_bytes: int) -> Frame:
    """Parse one websocket message; raise OcppError describing what is wrong with it."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise OcppError("RpcFrameworkError", "Frame is not UTF-8 text",
                            unique_id=UNKNOWN_ID) from exc
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        # Not parsed at all: an oversize frame costs no more than reading its head.
        raise _unparsed_error(text, f"Frame of {size} bytes exceeds {max_bytes} bytes")
    try:
        msg = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _parse_error(text, exc) from exc
    unique_id = _peek_id(msg)
    # Replies (CALLRESULT/CALLERROR) are never answered, however broken: mark them as such.
    reply_type = ({"message_type": msg[0]} if isinstance(msg, list) and msg
                  and msg[0] in (CALLRESULT, CALLERROR) and not isinstance(msg[0], bool)
                  else {})
    problem = _shape_problem(msg)
    if problem is not None:
        raise OcppError("FormatViolation", problem, dict(reply_type), unique_id=unique_id)
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(msg, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            readable = unique_id.encode("utf-8", "surrogatepass") == unique_id.encode(
                "utf-8", "replace")
            raise OcppError("FormatViolation", "Frame holds a lone UTF-16 surrogate",
                            dict(reply_type),
                            unique_id=unique_id if readable else UNKNOWN_ID) from exc
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


@cache
def _schema_files() -> dict[tuple[str, str, bool], str]:
    """(version, action, is_response) -> schema file, for every action each version defines.

    A fixed table: an action name from the wire is only ever a key here, never part of a path.
    """
    table: dict[tuple[str, str, bool], str] = {}
    for version, folder in ((V16, "v16"), (V201, "v201")):
        directory = os.path.join(_SCHEMA_ROOT, folder, "schemas")
        for name in os.listdir(directory):
            stem = name.removesuffix(".json")
            if stem.endswith("Response"):
                table[(version, stem.removesuffix("Response"), True)] = name
            elif version == V16:
                table[(version, stem, False)] = name
            elif stem.endswith("Request"):
                table[(version, stem.removesuffix("Request"), False)] = name
    return {key: os.path.join(_SCHEMA_ROOT, "v16" if key[0] == V16 else "v201", "schemas", name)
            for key, name in table.items()}


def is_known_action(version: str, action: str) -> bool:
    """Whether OCPP `version` defines `action` at all (in either direction)."""
    return (version, action, False) in _schema_files()


@cache
def _validator(version: str, action: str, response: bool) -> tuple[Draft4Validator, bool]:
    """The schema's validator, and whether it has `multipleOf` (then floats need Decimals)."""
    with open(_schema_files()[(version, action, response)], encoding="utf-8-sig") as f:
        text = f.read()
    schema = json.loads(text, parse_float=decimal.Decimal)
    return Draft4Validator(schema), '"multipleOf"' in text


def _out_of_range(value: Any, path: str = "") -> str | None:
    """The path of the first number the store cannot hold (beyond int64, or not finite)."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                return where or "(root)"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return where or "(root)"
        elif isinstance(item, dict):
            stack.extend((v, f"{where}/{k}" if where else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}/{i}" if where else str(i)) for i, v in enumerate(item))
    return None


_CODE_BY_KEYWORD = {
    "type": "TypeConstraintViolation",
    "required": "OccurrenceConstraintViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
    "additionalProperties": "FormatViolation",
}


def validate(version: str, action: str, payload: dict[str, Any], *, response: bool) -> None:
    """Check `payload` against the OCPP JSON schema; raise OcppError with the matching code."""
    if (version, action, response) not in _schema_files():
        raise OcppError("NotImplemented", f"Unknown action {action!r}")
    if not _passes_compiled(version, action, response, payload):
        _validate_exactly(version, action, payload, response)
    where = _out_of_range(payload)
    if where is not None:
        raise OcppError("PropertyConstraintViolation",
                        f"{action}: {where}: number out of the range this CSMS can store",
                        {"path": where})


@cache
def _compiled(version: str, action: str, response: bool) -> Callable[[Any], Any]:
    """The schema compiled to Python (fastjsonschema): some 20 times faster than walking it,
    which was a fifth of the server's work per MeterValues."""
    with open(_schema_files()[(version, action, response)], encoding="utf-8-sig") as f:
        schema = json.load(f)
    # use_default=False: validating must never write defaults into the charger's payload.
    return fastjsonschema.compile(schema, use_default=False)  # type: ignore[no-any-return]


def _passes_compiled(version: str, action: str, response: bool,
                     payload: dict[str, Any]) -> bool:
    """Whether the compiled schema accepts `payload`. A refusal is not final: the exact
    validator decides and names the error (it also takes 1.6's multipleOf 0.1 in decimals,
    and does not check formats, as before)."""
    try:
        _compiled(version, action, response)(payload)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def _validate_exactly(version: str, action: str, payload: dict[str, Any],
                      response: bool) -> None:
    """The jsonschema verdict, raised as OcppError with the code OCPP gives its keyword."""
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
