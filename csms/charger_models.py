"""What each charger model accepts, learned from its answers to our charging profiles.

Chargers report the units they take (ChargingScheduleAllowedChargingRateUnit, RateUnit), but
firmware does not always do what it reports: some refuse amps, some refuse a numberPhases they
do not expect. A model record counts, per purpose and profile shape (unit, numberPhases on the
wire, connector 0 or one connector), how often profiles were accepted and rejected, and picks the
shape to send next: the one that was accepted, else the first one not yet refused. Pure: the
planner loads and saves records through the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loadmgmt.profiles import ChargingProfile, Unit

# A shape counts as refused after this many rejections without a single acceptance: one
# rejection may be a race (the transaction ended while the profile was on its way).
REFUSED_AFTER = 2


def model_key(vendor: str | None, model: str | None, firmware: str | None,
              cp_id: str) -> str:
    """Vendor, model and firmware identify what a charger accepts; the id stands in if unknown."""
    if not vendor and not model:
        return f"charger:{cp_id}"
    return f"{vendor or ''}|{model or ''}|{firmware or ''}"


def profile_shape(profile: ChargingProfile) -> str:
    """The parts of a profile a charger may refuse on their own: unit, numberPhases, target."""
    phases = profile.send_number_phases and any(
        p.number_phases is not None for p in profile.schedule.periods)
    target = "cp" if profile.connector_id.endswith("/0") else "connector"
    return f"{profile.schedule.unit}/{'np' if phases else 'no-np'}/{target}"


@dataclass
class ModelRecord:
    """Answers per purpose and shape: {"TxProfile": {"A/np/connector": {"accepted": 3}}}."""

    answers: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    # A TxProfile of this model was once seen in its composite schedule.
    composite_matches: bool = False

    def learn(self, profile: ChargingProfile, accepted: bool) -> bool:
        """Count one answer; True when what `choose` returns may have changed."""
        counts = self.answers.setdefault(profile.purpose, {}).setdefault(
            profile_shape(profile), {})
        outcome = "accepted" if accepted else "rejected"
        before = self._verdict(profile_shape(profile))
        counts[outcome] = counts.get(outcome, 0) + 1
        return before != self._verdict(profile_shape(profile))

    def _totals(self, shape: str) -> tuple[int, int]:
        accepted = rejected = 0
        for shapes in self.answers.values():
            for name, counts in shapes.items():
                # The target (cp or connector) is recorded but does not decide unit or phases.
                if name.rsplit("/", 1)[0] == shape.rsplit("/", 1)[0]:
                    accepted += counts.get("accepted", 0)
                    rejected += counts.get("rejected", 0)
        return accepted, rejected

    def _verdict(self, shape: str) -> str:
        accepted, rejected = self._totals(shape)
        if accepted:
            return "accepted"
        return "refused" if rejected >= REFUSED_AFTER else "unknown"

    def choose(self, preferred: Unit, ac: bool) -> tuple[Unit, bool]:
        """Unit and whether to send numberPhases: accepted first, else the first not refused."""
        other: Unit = "W" if preferred == "A" else "A"
        units: list[Unit] = [preferred, other] if ac else ["W"]
        candidates = [(u, np) for np in (True, False) for u in units]
        verdicts = [self._verdict(f"{u}/{'np' if np else 'no-np'}/connector")
                    for u, np in candidates]
        for wanted in ("accepted", "unknown"):
            for candidate, verdict in zip(candidates, verdicts, strict=True):
                if verdict == wanted:
                    return candidate
        return candidates[0]

    def to_json(self) -> dict[str, Any]:
        return {"answers": self.answers, "composite_matches": self.composite_matches}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelRecord:
        return cls(answers=data.get("answers", {}),
                   composite_matches=bool(data.get("composite_matches", False)))
