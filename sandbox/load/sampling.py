"""Resource samples during a run, per component, from whichever runtime is in use.

A thread asks :meth:`Runtime.stats` once a second (cgroup accounting or the
process tree for the local runtime, container stats for docker) and appends
one JSON line per component to ``resources.jsonl`` in the run's directory.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.runtimes.base import Runtime


@dataclass(frozen=True)
class Sample:
    """One component's use at one moment."""

    t: float
    component: str
    cpu_m: float | None
    memory_mib: float | None


class Sampler:
    """Samples ``components`` every ``interval`` seconds until stopped; a context manager."""

    def __init__(self, runtime: Runtime, components: list[str], path: Path, interval: float = 1.0) -> None:
        self.runtime = runtime
        self.components = set(components)
        self.path = path
        self.interval = interval
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _run(self) -> None:
        with self.path.open("a") as handle:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    for c in self.runtime.stats():
                        if c.name in self.components:
                            handle.write(json.dumps({"t": round(time.time(), 3), "component": c.name,
                                                     "cpu_m": c.usage.cpu_m, "memory_mib": c.usage.memory_mib}) + "\n")
                    handle.flush()
                except Exception as exc:  # noqa: BLE001 - a failed sample is recorded, the run goes on
                    if len(self.errors) < 20:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))


def read_samples(path: Path) -> list[Sample]:
    """The samples kept in ``path`` (an absent file has none)."""
    if not path.exists():
        return []
    samples = []
    for line in path.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            samples.append(Sample(d["t"], d["component"], d.get("cpu_m"), d.get("memory_mib")))
    return samples
