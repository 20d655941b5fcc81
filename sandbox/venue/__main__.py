"""``python -m sandbox.venue``: serve the venue's public REST API on a loopback port.

Options: ``--assetpairs FILE`` (Kraken AssetPairs response; default the
project's ``fixtures/kraken/assetpairs.json``), ``--host`` (default
127.0.0.1), ``--port`` (default 8080, the kraken-venue port in the platform spec)
and ``--system-status`` (what ``SystemStatus`` reports).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sandbox.errors import SandboxError

DEFAULT_ASSETPAIRS = Path(__file__).resolve().parents[2] / "fixtures" / "kraken" / "assetpairs.json"


def main(argv: list[str] | None = None) -> int:
    """Parse options and run uvicorn until SIGINT/SIGTERM; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.venue", description=__doc__.splitlines()[0])
    parser.add_argument("--assetpairs", type=Path, default=DEFAULT_ASSETPAIRS)
    # The runtimes pass the component's address as AETHER_HOST / AETHER_PORT, as for every component.
    parser.add_argument("--host", default=os.environ.get("AETHER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("AETHER_PORT", "8080")))
    parser.add_argument("--system-status", default="online")
    args = parser.parse_args(argv)

    import uvicorn

    from sandbox.venue.public_rest import create_public_app

    try:
        app = create_public_app(args.assetpairs, system_status=args.system_status)
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
