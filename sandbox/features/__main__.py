"""``python -m sandbox.features``: the feast component of the local runtime.

Installs Feast on first use, renders the feature repository, applies it and
materialises once (a failed materialisation is logged, not fatal: the
definitions are then applied alone, and the scheduler or ``aether-sandbox
features materialize`` can materialise later), then runs the
feature server until SIGTERM, re-materialising every
``FEATURES_MATERIALIZE_INTERVAL_SECONDS`` when that is set.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from sandbox.errors import SandboxError
from sandbox.features.materialize import materialize, run_pipeline
from sandbox.features.server import FeatureServer
from sandbox.features.settings import FeatureSettings

log = logging.getLogger("sandbox.features")


def main() -> int:
    """Run the component; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    settings = FeatureSettings()  # type: ignore[call-arg] - from the environment
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def refresh() -> bool:
        try:
            report = materialize(settings, progress=log.info)
        except SandboxError as exc:
            log.error("materialisation failed: %s", exc)
            return False
        log.info("materialised %d rows in %.1f s", report.rows, report.seconds)
        return True

    # Materialising applies the definitions too; when it fails (no database yet), apply alone so the server starts.
    if not refresh():
        try:
            run_pipeline("apply", settings.repo_dir, redis_url=settings.redis_url, progress=log.info)
        except SandboxError as exc:
            log.error("%s", exc)
            return 1
    with FeatureServer(settings.home, settings.repo_dir, settings.port, bind=settings.host) as server:
        log.info("feature server ready on %s (pid %s)", server.url, server.pid)
        while not stop.wait(settings.materialize_interval_s or 1.0):
            if not server.is_running():
                log.error("feast serve exited (status %s)", server.exit_status())
                return 1
            if settings.materialize_interval_s:
                refresh()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
