"""The per-app state of universe-service and its dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from sandbox.services.kit.errors import ServiceError
from sandbox.services.universe.cache import Snapshot
from sandbox.services.universe.catalog import Catalog
from sandbox.services.universe.settings import UniverseSettings
from sandbox.services.universe.sync import Syncer


@dataclass
class UniverseState:
    """What the routes need: settings, the cache catalogue, the syncer, decision counters."""

    settings: UniverseSettings
    catalog: Catalog
    syncer: Syncer
    decisions: object  # prometheus Counter labelled by decision

    @property
    def snapshot(self) -> Snapshot:
        """The current instrument snapshot."""
        return self.catalog.snapshot


async def get_universe(request: Request) -> UniverseState:
    """The app's :class:`UniverseState` (503 before start-up finished)."""
    state = getattr(request.app.state, "universe", None)
    if state is None:
        raise ServiceError(503, "starting", "universe-service is still starting")
    return state


Universe = Annotated[UniverseState, Depends(get_universe)]
