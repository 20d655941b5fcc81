"""The service's runtime objects on ``app.state.strategy`` and the route dependency that hands them out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from sandbox.services.kit.errors import ServiceError
from sandbox.services.strategy_orchestrator.cache import CacheSync, StrategyCache
from sandbox.services.strategy_orchestrator.clients import Peer
from sandbox.services.strategy_orchestrator.settings import StrategySettings
from sandbox.services.strategy_orchestrator.telemetry import Metrics
from sandbox.services.strategy_orchestrator.workflows import Orchestrator


@dataclass
class ServiceState:
    """Settings, metrics and cache from construction; sync and orchestrator once started."""

    settings: StrategySettings
    metrics: Metrics
    cache: StrategyCache
    sync: CacheSync | None = None
    orchestrator: Orchestrator | None = None
    peers: tuple[Peer, ...] = field(default_factory=tuple)


def get_state(request: Request) -> ServiceState:
    """The started service state (503 while starting or stopping)."""
    state: ServiceState | None = getattr(request.app.state, "strategy", None)
    if state is None or state.sync is None or state.orchestrator is None:
        raise ServiceError(503, "unavailable", "strategy-orchestrator is starting or stopping")
    return state


Service = Annotated[ServiceState, Depends(get_state)]
