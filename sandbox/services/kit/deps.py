"""``Annotated`` dependencies for route handlers: the clients the lifespan opened.

The getters are ``async def`` on purpose: FastAPI runs plain functions in its
thread pool, a hop that costs more than the lookup itself on every request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request

from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.kafka import KafkaProducer
from sandbox.services.kit.settings import KitSettings


def _state(request: Request, name: str) -> Any:
    value = getattr(request.app.state, name, None)
    if value is None:
        raise ServiceError(503, "unavailable", f"{name} is not available in this service")
    return value


async def get_db(request: Request) -> asyncpg.Pool:
    """The app's asyncpg pool."""
    return _state(request, "db")


async def get_redis(request: Request) -> aioredis.Redis:
    """The app's Redis client."""
    return _state(request, "redis")


async def get_sessions(request: Request) -> aioredis.Redis:
    """The session Redis client (auth sessions)."""
    return _state(request, "sessions")


async def get_nats(request: Request) -> Any:
    """The app's NATS client."""
    return _state(request, "nats")


async def get_kafka(request: Request) -> KafkaProducer:
    """The app's Kafka producer."""
    return _state(request, "kafka")


async def get_kit_settings(request: Request) -> KitSettings:
    """The kit settings the app was built with."""
    return request.app.state.kit


async def get_app_settings(request: Request) -> Any:
    """The service's own settings (``create_service_app(settings=...)``), else the kit settings."""
    settings = getattr(request.app.state, "settings", None)
    return settings if settings is not None else request.app.state.kit


Db = Annotated[asyncpg.Pool, Depends(get_db)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
SessionsDep = Annotated[aioredis.Redis, Depends(get_sessions)]
if TYPE_CHECKING:  # importing nats costs ~0.2 s at start-up; only NATS users pay it
    import nats.aio.client

    NatsDep = Annotated[nats.aio.client.Client, Depends(get_nats)]
else:
    NatsDep = Annotated[Any, Depends(get_nats)]
KafkaDep = Annotated[KafkaProducer, Depends(get_kafka)]
KitSettingsDep = Annotated[KitSettings, Depends(get_kit_settings)]
AppSettings = Annotated[Any, Depends(get_app_settings)]
