"""Reading an ingest run back from Kafka inside the sandbox's network, for host-side commands.

The offline broker (Tansu) has one listener and advertises ``kafka:9092``: a
client on the host reaches the published port for its bootstrap request, is
then told to connect to ``kafka:9092``, and cannot resolve it.  Tansu cannot
advertise a second address (``tansu broker --help``: one ``--listener-url``,
one ``--advertised-listener-url``), and an address both the host and the
containers reach would need the ports published beyond loopback.  So
``aether-sandbox replay`` counts the records where ``kafka:9092`` resolves:
in a short-lived container of the project image on the sandbox's network,
running :func:`sandbox.replay.verify.consume_run` (the same code as on the
host), with the request on stdin and the counts on stdout as JSON.

    echo '{"bootstrap": "kafka:9092", "topics": {...}, "run": "r1"}' | python -m sandbox.runtimes.docker.kafkacount

The container is removed when it exits (``docker run --rm``); it carries no
compose labels, so ``status`` and ``down`` never see it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from sandbox.errors import EnvironmentProblem

if TYPE_CHECKING:
    from sandbox.replay.verify import TopicCount
    from sandbox.runtimes.docker.runtime import DockerRuntime

#: Label of the one-off container (for `docker ps --filter label=...` while it runs).
ONEOFF_LABEL = "io.aether-sandbox.oneoff"
#: The component whose image (the project image in use) runs the count.
RUNS_IN = "kraken-ws-ingest"


def main() -> int:
    """Count the run described on stdin; print ``{topic: TopicCount fields}`` as JSON."""
    from sandbox.replay.verify import consume_run

    request = json.load(sys.stdin)
    counts = consume_run(request["bootstrap"], request["topics"], request["run"],
                         expected=request.get("expected"), timeout=float(request.get("timeout", 60.0)))
    json.dump({topic: asdict(count) for topic, count in counts.items()}, sys.stdout)
    return 0


def consume_in_network(runtime: DockerRuntime, topics: Mapping[str, Mapping[str, Any]], run: str, *,
                       expected: Mapping[str, int] | None = None, timeout: float = 60.0) -> dict[str, TopicCount]:
    """:func:`~sandbox.replay.verify.consume_run` against the sandbox's broker, from a container on its network."""
    from sandbox.replay.verify import TopicCount
    from sandbox.runtimes.docker.api import SERVICE_LABEL, Engine

    engine = Engine()
    by_service = {c["Labels"].get(SERVICE_LABEL): c for c in engine.containers(runtime.project)}
    if "kafka" not in by_service or RUNS_IN not in by_service:
        raise EnvironmentProblem(f"sandbox '{runtime.state.name}' runs no kafka or {RUNS_IN} container to count from",
                                 hint="run `aether-sandbox up kraken-ws-ingest --runtime docker`")
    networks = list(engine.inspect(by_service["kafka"]["Id"])["NetworkSettings"]["Networks"])
    image = engine.inspect(by_service[RUNS_IN]["Id"])["Config"]["Image"]
    request = {"bootstrap": f"kafka:{runtime.spec.component('kafka').port}", "topics": dict(topics), "run": run,
               "expected": dict(expected or {}), "timeout": timeout}
    argv = ["docker", "run", "--rm", "-i", "--network", networks[0], "--label", f"{ONEOFF_LABEL}=kafka-count",
            image, "python", "-m", "sandbox.runtimes.docker.kafkacount"]
    proc = subprocess.run(argv, input=json.dumps(request), capture_output=True, text=True,  # noqa: S603
                          timeout=timeout + 60, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise EnvironmentProblem(f"counting the Kafka records in the sandbox network failed: {' | '.join(tail)}",
                                 hint=f"the image {image} must hold this module: rebuild it with `aether-sandbox images build`")
    return {topic: TopicCount(**fields) for topic, fields in json.loads(proc.stdout).items()}


if __name__ == "__main__":
    sys.exit(main())
