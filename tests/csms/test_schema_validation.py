"""The compiled schemas (the fast path) never accept what the exact validator refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csms.ocpp.errors import OcppError
from csms.ocpp.framing import _passes_compiled, _validate_exactly, validate
from tests.ocpp_strategies import actions, mutated, payloads

VERSIONS = {"1.6": "1.6", "2.0.1": "2.0.1"}


def exact_accepts(version: str, action: str, payload: dict[str, Any]) -> bool:
    try:
        _validate_exactly(version, action, payload, response=False)
    except OcppError:
        return False
    return True


@st.composite
def valid_or_mutated(draw: st.DrawFn, version: str) -> tuple[str, dict[str, Any]]:
    action = draw(st.sampled_from(actions(version)))
    payload = draw(payloads(version, action))
    if draw(st.booleans()):
        _, payload = draw(mutated(payload))
    return action, payload


@pytest.mark.parametrize("version", list(VERSIONS))
def test_the_compiled_schema_accepts_only_what_the_exact_validator_accepts(
        version: str) -> None:
    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=valid_or_mutated(version))
    def check(case: tuple[str, dict[str, Any]]) -> None:
        action, payload = case
        before = copy.deepcopy(payload)
        if _passes_compiled(version, action, False, payload):
            assert exact_accepts(version, action, payload), (action, payload)
        assert payload == before, "validation changed the payload"

    check()


def test_a_1_6_limit_of_21_4_amps_is_valid_although_floats_miss_multiple_of() -> None:
    profile = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
               "chargingProfileKind": "Absolute", "chargingSchedule": {
                   "chargingRateUnit": "A",
                   "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}]}}
    validate("1.6", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile},
             response=False)
