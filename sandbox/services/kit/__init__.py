"""The shared service kit: every platform service is built with it.

See ``README.md`` in this package for how to build a service on the kit.
"""

from sandbox.services.kit.app import create_service_app
from sandbox.services.kit.auth import (
    CurrentPrincipal,
    Principal,
    ServiceClient,
    TokenVerifier,
    authenticated,
    require_roles,
)
from sandbox.services.kit.db import Migration, apply_migrations, make_time_series
from sandbox.services.kit.deps import AppSettings, Db, KafkaDep, NatsDep, RedisDep
from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.settings import KitSettings

__all__ = [
    "AppSettings",
    "CurrentPrincipal",
    "Db",
    "KafkaDep",
    "KitSettings",
    "Migration",
    "NatsDep",
    "Principal",
    "RedisDep",
    "ServiceClient",
    "ServiceError",
    "TokenVerifier",
    "apply_migrations",
    "authenticated",
    "create_service_app",
    "make_time_series",
    "require_roles",
]
