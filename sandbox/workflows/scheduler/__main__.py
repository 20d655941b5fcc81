"""``python -m sandbox.workflows.scheduler``: the scheduler on ``AETHER_HOST:AETHER_PORT``."""

from __future__ import annotations

import logging
import os


def main() -> None:
    """Read the settings once and serve until stopped."""
    import uvicorn

    from sandbox.workflows.scheduler.app import create_app
    from sandbox.workflows.settings import WorkflowSettings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = WorkflowSettings()  # type: ignore[call-arg] - from the environment
    schedule = os.environ.get("WORKFLOWS_SCHEDULER_ENABLED", "true").lower() not in ("0", "false", "no")
    app = create_app(settings, schedule=schedule)
    uvicorn.run(app, host=os.environ.get("AETHER_HOST", "127.0.0.1"), port=int(os.environ.get("AETHER_PORT", "8000")),
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
