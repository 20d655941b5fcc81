"""Workflow settings from a running sandbox (``aether-sandbox workflow run``, ``backup``, ``restore``).

Addresses come from the runtime's status (like ``replay`` finds the venue);
the PostgreSQL superuser and the service account come from the sandbox's state
directory, where the local runtime keeps them.  Reports and backups go to the
workflow-scheduler's data directory, the same place the scheduler (whose working
directory that is) writes them.
"""

from __future__ import annotations

from typing import Any

from sandbox.errors import EnvironmentProblem
from sandbox.workflows.settings import WorkflowSettings

SCHEDULER = "workflow-scheduler"


def _running(status: Any) -> dict[str, int]:
    return {c.name: c.port for c in status.components if c.state == "running" and c.port is not None}


def settings_for(sandbox: str = "default", runtime: str = "auto") -> WorkflowSettings:
    """The settings that point a workflow run at sandbox ``sandbox``; :class:`EnvironmentProblem` when it is down."""
    from sandbox.infra.postgres import EmbeddedPostgres
    from sandbox.runtimes.factory import RuntimeChoice, choose
    from sandbox.runtimes.local.runtime import LocalRuntime
    from sandbox.spec.loader import default_spec

    rt, _ = choose(default_spec(), RuntimeChoice(runtime), sandbox)
    ports = _running(rt.status())
    if "timescaledb" not in ports:
        raise EnvironmentProblem(
            f"sandbox '{sandbox}' has no running timescaledb",
            hint="run `aether-sandbox up` (or `aether-sandbox up timescaledb kafka` for the mirror alone)",
        )
    if isinstance(rt, LocalRuntime):
        dsn = EmbeddedPostgres(rt.state.data("timescaledb"), ports["timescaledb"]).dsn
    elif (host_dsn := getattr(rt, "postgres_dsn", None)) is not None:  # the docker runtime: the published port
        def dsn(database: str) -> str:
            return host_dsn(database, ports["timescaledb"])
    else:  # pragma: no cover - every runtime of this version is one of the above
        raise EnvironmentProblem(f"the {rt.name} runtime does not expose its database credentials")
    # The offline docker broker advertises kafka:9092 only: no Kafka from the host (see in_network_scheduler).
    kafka_from_host = "kafka" in ports and getattr(rt, "kafka_counter", lambda: None)() is None
    creds, _ = rt.state.credentials()
    data = rt.state.data(SCHEDULER)

    def url(name: str) -> str | None:
        return f"http://127.0.0.1:{ports[name]}" if name in ports else None

    return WorkflowSettings(
        postgres_url=dsn("postgres"),
        workflows_database_url=dsn("workflows"),
        marketdata_database_url=dsn("marketdata"),
        oms_database_url=dsn("oms"),
        kafka_bootstrap=f"127.0.0.1:{ports['kafka']}" if kafka_from_host else None,
        coingecko_url=url("coingecko-sim"),
        universe_url=url("universe-service"),
        auth_url=url("auth-service"),
        service_client_id=creds.get("service_client_id"),
        service_client_secret=creds.get("service_client_secret"),
        reports_dir=data / "reports",
        backup_dir=data / "backups",
    )


def scheduler_url(sandbox: str = "default", runtime: str = "auto") -> str | None:
    """The scheduler's base URL when it runs in sandbox ``sandbox``."""
    from sandbox.runtimes.factory import RuntimeChoice, choose
    from sandbox.spec.loader import default_spec

    rt, _ = choose(default_spec(), RuntimeChoice(runtime), sandbox)
    port = _running(rt.status()).get(SCHEDULER)
    return f"http://127.0.0.1:{port}" if port else None



def in_network_scheduler(sandbox: str = "default", runtime: str = "auto") -> str | None:
    """The scheduler's base URL when a run must happen inside the sandbox (the docker runtime), else ``None``.

    In containers the workflows reach what only the sandbox network resolves
    (the offline broker advertises ``kafka:9092``), and their reports and
    backups land in the scheduler's volume, as its scheduled runs' do.  So
    ``workflow run`` asks the running scheduler (``POST /runs/NAME?wait=true``)
    instead of running the workflow on the host.
    """
    from sandbox.runtimes.factory import RuntimeChoice, choose
    from sandbox.runtimes.local.runtime import LocalRuntime
    from sandbox.spec.loader import default_spec

    rt, _ = choose(default_spec(), RuntimeChoice(runtime), sandbox)
    if isinstance(rt, LocalRuntime):
        return None
    port = _running(rt.status()).get(SCHEDULER)
    if port is None:
        raise EnvironmentProblem(
            f"sandbox '{sandbox}' ({rt.name} runtime) runs no {SCHEDULER}: workflows run inside the sandbox there",
            hint=f"run `aether-sandbox up {SCHEDULER} --runtime {rt.name}`",
        )
    return f"http://127.0.0.1:{port}"


def run_in_scheduler(url: str, workflow: str, timeout: float = 3600.0) -> dict[str, Any]:
    """Run ``workflow`` now in the scheduler at ``url`` and return its history row (as ``runner.run`` does)."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    request = urllib.request.Request(f"{url}/runs/{urllib.parse.quote(workflow)}?wait=true", data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail")
        except ValueError:
            detail = exc.reason
        raise EnvironmentProblem(f"the scheduler refused the run of {workflow}: {exc.code} {detail}") from exc
    except OSError as exc:
        raise EnvironmentProblem(f"the scheduler at {url} did not answer: {exc}") from exc
