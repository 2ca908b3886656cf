"""What the HTTP relay takes as a frame to send: a CALL, and a clear refusal of anything else."""

from __future__ import annotations

from typing import Any

import pytest

from csms.relay import RelayError, parse_call


@pytest.mark.parametrize("frame", [[[2], "id", "Heartbeat", {}], [{"a": 1}, "id", "X", {}],
                                   [3, "id", {}], [True, "id", "Heartbeat", {}], [], "text"])
def test_a_frame_that_is_not_a_call_is_refused_with_a_reason_never_a_crash(frame: Any) -> None:
    with pytest.raises(RelayError):
        parse_call(frame)


def test_a_call_is_taken_apart() -> None:
    call = parse_call([2, "m-1", "Heartbeat", {}])
    assert (call.unique_id, call.action, call.payload) == ("m-1", "Heartbeat", {})
