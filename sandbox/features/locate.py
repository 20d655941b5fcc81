"""Feature-store settings from a running sandbox (``aether-sandbox features materialize``).

The databases and Redis come from the runtime's status; the working directory
is the feast component's own (``<state>/components/feast/cache``), so the CLI
applies to the registry the running feature server reads.
"""

from __future__ import annotations

from sandbox.errors import EnvironmentProblem
from sandbox.features.settings import FeatureSettings

COMPONENT = "feast"


def settings_for(sandbox: str = "default", runtime: str = "auto") -> FeatureSettings:
    """Settings pointing at sandbox ``sandbox``; :class:`EnvironmentProblem` when Redis or PostgreSQL is down."""
    from sandbox.infra.postgres import EmbeddedPostgres
    from sandbox.runtimes.factory import RuntimeChoice, choose
    from sandbox.runtimes.local.runtime import LocalRuntime
    from sandbox.spec.loader import default_spec

    rt, _ = choose(default_spec(), RuntimeChoice(runtime), sandbox)
    ports = {c.name: c.port for c in rt.status().components if c.state == "running" and c.port is not None}
    missing = [name for name in ("redis", "timescaledb") if name not in ports]
    if missing:
        raise EnvironmentProblem(
            f"sandbox '{sandbox}' has no running {' and '.join(missing)}",
            hint="run `aether-sandbox up` (or `aether-sandbox up feast`)",
        )
    if not isinstance(rt, LocalRuntime):  # pragma: no cover - the only runtime exposing credentials
        raise EnvironmentProblem(f"the {rt.name} runtime does not expose its database credentials yet")
    pg = EmbeddedPostgres(rt.state.data("timescaledb"), ports["timescaledb"])
    return FeatureSettings(
        redis_url=f"redis://127.0.0.1:{ports['redis']}/0",
        marketdata_url=pg.dsn("marketdata"),
        oms_url=pg.dsn("oms"),
        home=rt.state.data(COMPONENT) / "cache",
    )
