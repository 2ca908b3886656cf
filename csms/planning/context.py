"""What every part of the planner shares: its dependencies, the live state and what is held."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from csms.clock import Clock
from csms.commands import Commands
from csms.config import LoadConfig
from csms.delivery import default_presets
from csms.live import LiveState
from csms.planning.held import Held
from csms.planning.placed import Placed
from csms.sites import SiteDirectory
from csms.store import Store
from loadmgmt.profiles import DeliveryPreset, SendPolicy

# Ask for a re-plan of a site: (site_id, trigger, *, urgent=False), as `Planner.request`.
Request = Callable[..., None]
# A session's id tag -> its priority, or None for the connector's (csms.id_tags).
TagPriority = Callable[[str | None], int | None]
# A charger -> its (TxProfile, TxDefaultProfile) delivery presets (csms.delivery).
PresetsFor = Callable[[str], tuple[DeliveryPreset, DeliveryPreset]]


class PlanContext:
    """One per planner; the parts read `directory` from here, as a site change replaces it."""

    def __init__(self, directory: SiteDirectory, store: Store, commands: Commands, clock: Clock,
                 config: LoadConfig, *, tag_priority: TagPriority | None = None,
                 presets: PresetsFor | None = None) -> None:
        self.directory = directory
        self.tag_priority: TagPriority = tag_priority or (lambda id_tag: None)
        self.presets: PresetsFor = presets or default_presets
        self.store = store
        self.commands = commands
        self.clock = clock
        self.config = config
        self.live = LiveState(clock, config.connector_silent_after_s)
        self.held: dict[str, Held] = {}
        self._placed = Placed()
        # The planner's task group while it runs: site loops and follow-up work are its children.
        self.tasks: asyncio.TaskGroup | None = None
        self.policy = SendPolicy(
            hysteresis_a=config.hysteresis_a, hysteresis_w=config.hysteresis_kw * 1000.0,
            min_interval_s=config.min_update_interval_s,
            renew_before_s=config.profile_validity_s / 2,
        )

    def placed(self) -> Placed:
        """Known chargers by site and by the node they hang from (rebuilt only on change)."""
        return self._placed.update(self.directory, self.live.chargers)

    def held_for(self, key: str) -> Held:
        """The held record of connector `key`, created empty on first use."""
        if key not in self.held:
            self.held[key] = Held()
        return self.held[key]
