"""``python -m sandbox.ingest``: run kraken-ws-ingest until SIGTERM or SIGINT.

Settings come from the environment (:class:`~sandbox.ingest.settings.IngestSettings`);
an invalid setting exits with code 2 and one line naming it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys


def main() -> int:
    """Build the settings once, then run the service; returns the exit code."""
    from pydantic import ValidationError

    from sandbox.ingest.settings import IngestSettings

    try:
        settings = IngestSettings()
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "settings"
            print(f"error: INGEST_{where.upper()}: {error['msg']}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    from sandbox.ingest.service import IngestService

    try:
        import uvloop  # noqa: PLC0415 - optional: a faster event loop where installed

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    service = IngestService(settings)
    # Everything built so far (modules, settings, clients) lives as long as the process: moved out of
    # the collector's generations, a full collection no longer walks it while frames are handled.
    gc.freeze()
    runner(service.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
