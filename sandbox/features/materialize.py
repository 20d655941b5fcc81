"""Materialisation: export the features from PostgreSQL and write them to the Redis online store.

:func:`materialize` is the step the scheduler (and ``aether-sandbox features
materialize``) calls.  It runs ``feature_repo/pipeline.py`` with the Feast
virtualenv's interpreter, so the calling process never imports Feast.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.features import repo as feature_repo
from sandbox.features import venv as feast_venv
from sandbox.features.settings import FeatureSettings


class MaterializeError(SandboxError):
    """The export or the Feast materialisation failed."""


@dataclass
class MaterializeReport:
    """What one run did: rows per feature view, or why a view had none."""

    action: str
    views: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0
    """Wall time, Feast's start-up included."""

    @property
    def rows(self) -> int:
        """Rows written to the online store over every view."""
        return sum(int(v.get("rows", 0)) for v in self.views.values())

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {**asdict(self), "rows": self.rows}


def run_pipeline(
    action: str,
    repo_dir: Path,
    *,
    redis_url: str,
    marketdata_url: str | None = None,
    oms_url: str | None = None,
    progress: Callable[[str], None] = lambda line: None,
    timeout_s: float = 300.0,
) -> MaterializeReport:
    """Render the repository into ``repo_dir`` and run ``pipeline.py ACTION`` (``apply`` or ``materialize``)."""
    venv = feast_venv.ensure_feast(progress)
    feature_repo.render(repo_dir, redis_url)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
    env["AETHER_FEATURES_DATA"] = str(repo_dir / "data")
    if marketdata_url:
        env["FEATURES_MARKETDATA_URL"] = marketdata_url
    if oms_url:
        env["FEATURES_OMS_URL"] = oms_url
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(feast_venv.python(venv)), str(repo_dir / "pipeline.py"), action, "--repo", str(repo_dir)],
            capture_output=True, text=True, env=env, timeout=timeout_s, check=False, cwd=repo_dir,
        )
    except subprocess.TimeoutExpired as exc:
        raise MaterializeError(f"feature {action} took longer than {timeout_s:.0f} s") from exc
    for line in proc.stderr.splitlines():
        if ": " in line and " rows" in line:
            progress(line)
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-3:]
        raise MaterializeError(
            f"feature {action} failed: {' | '.join(tail) or f'exit {proc.returncode}'}",
            hint="the full output: run feature_repo/pipeline.py with the Feast venv's python",
        )
    try:
        doc = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError) as exc:
        raise MaterializeError(f"feature {action} printed no report") from exc
    return MaterializeReport(action=doc["action"], views=doc["views"], seconds=round(time.monotonic() - started, 3))


def materialize(settings: FeatureSettings, progress: Callable[[str], None] = lambda line: None) -> MaterializeReport:
    """Export every feature view and materialise it into the online store of ``settings``."""
    return run_pipeline(
        "materialize", settings.repo_dir, redis_url=settings.redis_url, marketdata_url=settings.marketdata_url,
        oms_url=settings.oms_url, progress=progress,
    )
