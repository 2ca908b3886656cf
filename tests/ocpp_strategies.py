"""Hypothesis strategies for OCPP-J frames, built from the `ocpp` package's own JSON schemas.

`payloads(version, action)` draws schema-valid payloads (a small Draft 4 subset: $ref,
enum, object/array/string/integer/number/boolean, required, min/maxItems, maxLength,
minimum/maximum, multipleOf, date-time). `fuzz_frames(version)` draws whole websocket messages:
valid CALLs of every action of that version (both directions), the same CALLs with one
mutation in the payload or the frame, and junk that is not an OCPP-J frame at all.

Frames are text (or bytes) exactly as they go on the wire, because some of the nastiest inputs
cannot be built with `json.dumps`: integers of 5,000 digits (Python refuses to print them),
nesting 100,000 deep (json.dumps recurses). Those go in through placeholders (`_SPLICE`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import ocpp
from hypothesis import strategies as st

V16, V201 = "1.6", "2.0.1"
SCHEMA_ROOT = os.path.dirname(ocpp.__file__)

# Markers placed in a payload as strings and spliced into the JSON text afterwards.
_SPLICE = {
    "@@INT5000@@": "1" + "0" * 4999,
    "@@NEG5000@@": "-" + "9" * 5000,
    "@@INT4301@@": "7" * 4301,
    "@@NEST900@@": "[" * 900 + "]" * 900,
    "@@NEST5000@@": "[" * 5000 + "]" * 5000,
    "@@NEST100000@@": "[" * 100_000 + "]" * 100_000,
    "@@OBJNEST3000@@": '{"a":' * 3000 + "1" + "}" * 3000,
    "@@FLOAT1E400@@": "1e400",
    "@@NEGZERO@@": "-0.0",
}


def splice(text: str) -> str:
    for marker, raw in _SPLICE.items():
        text = text.replace(json.dumps(marker), raw)
    return text


# -- the schemas ----------------------------------------------------------------------------


def _folder(version: str) -> str:
    return os.path.join(SCHEMA_ROOT, "v16" if version == V16 else "v201", "schemas")


@cache
def actions(version: str) -> tuple[str, ...]:
    """Every action the version defines, in both directions (one request schema each)."""
    names = sorted(os.listdir(_folder(version)))
    if version == V16:
        return tuple(n[:-5] for n in names if n.endswith(".json")
                     and not n.endswith("Response.json"))
    return tuple(n[: -len("Request.json")] for n in names if n.endswith("Request.json"))


@cache
def request_schema(version: str, action: str) -> dict[str, Any]:
    name = action + (".json" if version == V16 else "Request.json")
    with open(os.path.join(_folder(version), name), encoding="utf-8-sig") as f:
        return json.load(f)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/definitions/"), ref
        schema = root["definitions"][ref.split("/")[-1]]
    return schema


def _rfc3339(d: datetime) -> str:
    # Milliseconds on some, none on others; always UTC "Z" (both are RFC 3339).
    ms = f".{d.microsecond // 1000:03d}" if d.microsecond % 2 else ""
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ms + "Z"


_DATE_TIMES = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)).map(_rfc3339)


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)


def from_schema(schema: dict[str, Any], root: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A strategy for values valid under `schema` (within the subset OCPP schemas use)."""
    schema = _resolve(schema, root)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v, root) for k, v in props.items() if k in required},
            optional={k: from_schema(v, root) for k, v in props.items() if k not in required},
        )
    if kind == "array":
        lo = int(schema.get("minItems", 0))
        hi = min(int(schema.get("maxItems", lo + 2)), lo + 2)
        return st.lists(from_schema(schema.get("items", {}), root), min_size=lo, max_size=hi)
    if kind == "string":
        if schema.get("format") == "date-time":
            return _DATE_TIMES
        if schema.get("format") == "uri":
            return st.sampled_from(["https://example.com/fw.bin", "ftp://10.0.0.1/log"])
        limit = int(schema.get("maxLength", 20))
        return st.one_of(
            _TEXT.map(lambda s, n=limit: s[:n]),
            st.integers(0, 99999).map(lambda i, n=limit: str(i)[:n]),
        )
    if kind == "integer":
        lo = int(schema.get("minimum", -(2**31)))
        hi = int(schema.get("maximum", 2**31 - 1))
        return st.one_of(st.integers(max(lo, 0), min(hi, 10)), st.integers(lo, hi))
    if kind == "number":
        lo = float(schema.get("minimum", -1e6))
        hi = float(schema.get("maximum", 1e6))
        if "multipleOf" in schema:  # 1.6: 0.1 steps
            return st.integers(int(lo * 10), int(hi * 10)).map(lambda i: i / 10)
        return st.one_of(st.integers(int(lo), int(hi)).map(float),
                         st.floats(lo, hi, allow_nan=False, allow_infinity=False))
    if kind == "boolean":
        return st.booleans()
    return st.just({})  # no type: anything is valid, keep it small


@cache
def payloads(version: str, action: str) -> st.SearchStrategy[dict[str, Any]]:
    """Schema-valid request payloads of `action`."""
    schema = request_schema(version, action)
    return from_schema(schema, schema)


# -- mutations ------------------------------------------------------------------------------

WRONG_VALUES: list[Any] = [
    None, True, False, "", "x", "1", -1, 0, 1.5, [], {}, [1], {"a": 1},
    2**63, 2**63 - 1, -(2**63) - 1, 2**64, 10**30, -(10**30),
    "@@INT5000@@", "@@NEG5000@@", "@@INT4301@@", "@@FLOAT1E400@@", "@@NEGZERO@@",
    float("nan"), float("inf"), float("-inf"), 1e308, 5e-324,
    "@@NEST900@@", "@@NEST5000@@", "@@NEST100000@@", "@@OBJNEST3000@@",
    "\ud800", "a\udfffb", "\x00", "\u202e\ufeff", "🔌" * 30, "x" * 256, "x" * 70_000,
    "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "2024-02-30T00:00:00Z",
    "yesterday", "2024-01-01T00:00:00", "2024-01-01T25:00:00Z", "1e999", "nan", "-inf",
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside `value` (the root is the empty path)."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        value = value[p]
    return value


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


@st.composite
def mutated(draw: st.DrawFn, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """One mutation of `payload`: (what was done, the mutated payload)."""
    p = _copy(payload)
    paths = _paths(p)
    kind = draw(st.sampled_from(["replace", "replace", "replace", "drop", "extra", "wrap"]))
    leaves = [q for q in paths if q]
    if not leaves:  # an empty payload (Heartbeat): only something extra can be wrong with it
        kind = "extra"
    if kind == "drop":
        keyed = [q for q in paths if q and isinstance(q[-1], str)]
        if keyed:
            q = draw(st.sampled_from(keyed))
            del _get(p, q[:-1])[q[-1]]
            return f"drop {'/'.join(map(str, q))}", p
        kind = "extra"
    if kind == "extra":
        objects = [q for q in paths if isinstance(_get(p, q), dict)]
        q = draw(st.sampled_from(objects))
        name = draw(st.sampled_from(["surprise", "", "__proto__", "connectorId", "x" * 300]))
        _get(p, q)[name] = draw(st.sampled_from(WRONG_VALUES[:12]))
        return f"extra {name[:20]!r} at /{'/'.join(map(str, q))}", p
    q = draw(st.sampled_from(leaves))
    new = draw(st.sampled_from(WRONG_VALUES))
    if kind == "wrap":
        new = [_get(p, q)] * draw(st.integers(0, 2)) if draw(st.booleans()) else {"v": new}
    _get(p, q[:-1])[q[-1]] = new
    return f"{kind} /{'/'.join(map(str, q))} by {str(new)[:40]!r}", p


# -- whole frames ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fuzz:
    """One websocket message and what it is (for failure reports)."""

    what: str
    data: str | bytes
    action: str | None = None  # a CALL of this action with a readable id
    valid: bool = False  # a schema-valid CALL (nothing mutated)

    def __repr__(self) -> str:  # short enough to read in a failure report
        data = self.data
        shown = data if len(data) <= 300 else data[:200] + f"...({len(data)} long)..." + data[-60:]
        return f"Fuzz({self.what!r}, {shown!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's reports
        printer.text(repr(self))


def _frame(*parts: Any) -> str:
    return splice(json.dumps(list(parts)))


UNIQUE_IDS = st.one_of(
    st.uuids().map(lambda u: u.hex),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=36),
)
BAD_IDS: list[Any] = ["", "x" * 37, "x" * 10_000, 12345, 2**64, None, True, [], {}, 1.5,
                      "\ud800", "-1", " ", "@@INT5000@@"]
BAD_TYPE_IDS: list[Any] = [0, 1, 5, 7, -1, 2**64, 2.0, 3.5, True, False, None, "2", [2], {},
                           "@@INT5000@@"]
JUNK: list[str | bytes] = [
    "", " ", "\n", "null", "2", "[]", "{}", '"x"', "[2", '[2, "a", "Heartbeat", {', "[2,]",
    '{"messageTypeId": 2}', "\ufeff[2]", "NaN", "[NaN]", "[Infinity, \"a\"]", "[2] garbage",
    "[" * 100_000 + "]" * 100_000, "[" * 30_000, '{"a":' * 20_000, "1" + "0" * 5000,
    "[2, " + "9" * 5000 + ', "Heartbeat", {}]', '[2, "\\ud800", "Heartbeat", {}]',
    "x" * 70_000, "[2, \"a\", \"Heartbeat\", {}]" + " " * 70_000,
    '[2, "huge", "Heartbeat", {"pad": "' + "x" * 1_100_000 + '"}]',
    b"\xff\xfe[2,", b"\x00" * 10, b"\xc0\x80", b"[2, \"bin\", \"Heartbeat\", {}]",
    '[3, "nobody"]', '[4, "nobody"]', "[3]", "[4]", '[3, "nobody", {}, {}]', "[3, 1, {}]",
    '[4, "nobody", "GenericError", "' + "d" * 70_000 + '", {}]',
    '[3, "nobody", ' + "[" * 100_000 + "]" * 100_000 + "]",
    '[3, "nobody", {"v": ' + "1" * 5000 + "}]",
    '[3.0, "nobody", {}]', '[true, "x", {}]',
]


@st.composite
def calls(draw: st.DrawFn, version: str, handled: frozenset[str]) -> Fuzz:
    """A CALL of one of the version's actions (handled ones more often): valid or mutated."""
    pool = st.sampled_from(sorted(handled)) | st.sampled_from(actions(version))
    action = draw(pool)
    payload = draw(payloads(version, action))
    uid = draw(UNIQUE_IDS)
    how = draw(st.sampled_from(["valid", "valid", "payload", "payload", "payload", "frame"]))
    if how == "valid":
        return Fuzz(f"valid {action}", json.dumps([2, uid, action, payload]), action, True)
    if how == "payload":
        what, bad = draw(mutated(payload))
        return Fuzz(f"{action}: {what}", _frame(2, uid, action, bad), action)
    kind = draw(st.sampled_from(["id", "type", "arity", "action", "payload-type", "binary"]))
    if kind == "id":
        bad_id = draw(st.sampled_from(BAD_IDS))
        return Fuzz(f"{action} with id {str(bad_id)[:20]!r}", _frame(2, bad_id, action, payload))
    if kind == "type":
        t = draw(st.sampled_from(BAD_TYPE_IDS))
        return Fuzz(f"{action} with MessageTypeId {str(t)[:20]!r}", _frame(t, uid, action, payload))
    if kind == "arity":
        parts = draw(st.sampled_from([[2, uid, action], [2, uid], [2],
                                      [2, uid, action, payload, {}]]))
        return Fuzz(f"{action} with {len(parts)} elements", _frame(*parts))
    if kind == "action":
        name = draw(st.sampled_from([action.lower(), action + "Request", action + "Response",
                                     "", " " + action, "../" + action, action + "\x00",
                                     "\ud800", "A" * 5000, None, 42, [action]]))
        return Fuzz(f"action {str(name)[:20]!r}", _frame(2, uid, name, payload),
                    name if isinstance(name, str) else None)
    if kind == "payload-type":
        body = draw(st.sampled_from([None, [], [payload], "{}", 0, True]))
        return Fuzz(f"{action} with payload {str(body)[:20]!r}", _frame(2, uid, action, body))
    return Fuzz(f"{action} as a binary frame", json.dumps([2, uid, action, payload]).encode(),
                action, True)


def fuzz_frames(version: str, handled: frozenset[str]) -> st.SearchStrategy[Fuzz]:
    """Valid CALLs, mutated CALLs and junk, for one OCPP version."""
    junk = st.sampled_from(JUNK).map(lambda j: Fuzz("junk", j))
    return st.one_of(calls(version, handled), calls(version, handled), junk)
