"""What each charger model accepts (`csms.charger_models.ModelRecord`), learned from answers."""

from __future__ import annotations

import structlog

from csms.charger_models import ModelRecord, model_key
from csms.planning.context import PlanContext
from loadmgmt.profiles import ChargingProfile

log = structlog.get_logger("csms.planner")


class ModelBook:
    """The records by model key, and the model each charger booted as."""

    def __init__(self, ctx: PlanContext) -> None:
        self._ctx = ctx
        self.records: dict[str, ModelRecord] = {}
        self.model_of: dict[str, str] = {}

    def record(self, cp_id: str) -> tuple[str, ModelRecord]:
        """The key and (possibly new, empty) record of the model `cp_id` booted as."""
        key = self.model_of.get(cp_id) or model_key(None, None, None, cp_id)
        return key, self.records.setdefault(key, ModelRecord())

    async def learn(self, cp_id: str, profile: ChargingProfile, accepted: bool) -> None:
        """Count the charger model's answer; store the record when the next choice changes."""
        key, record = self.record(cp_id)
        first = not record.answers
        changed = record.learn(profile, accepted)
        if changed:
            log.info("charger_model_learned", cp_id=cp_id, model=key,
                     purpose=profile.purpose, unit=profile.schedule.unit, accepted=accepted)
        # Written on every change of verdict, and on first sight so the record is visible.
        if changed or first:
            await self._ctx.store.save_model_record(key, record.to_json(), self._ctx.clock.now())
