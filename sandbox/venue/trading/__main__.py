"""``python -m sandbox.venue.trading``: the trading side alone, against synthetic books (no replay).

Serves public and private REST, the admin API and the executions WebSocket
(``/ws-auth/v2``) on one loopback port, for developing a client before the full
venue process runs.  Options: ``--host`` / ``--port`` (``AETHER_HOST`` /
``AETHER_PORT``, default 127.0.0.1:8080), ``--assetpairs FILE``, ``--seed N``,
``--id-epoch N`` (default: the start time in microseconds, so ids differ from a previous run's),
``--credentials-dir DIR`` (``KRAKEN_CREDENTIALS_DIR``: create an account for
that key pair), ``--admin-allow CIDR`` (repeatable; loopback always).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from sandbox.errors import SandboxError

DEFAULT_ASSETPAIRS = Path(__file__).resolve().parents[3] / "fixtures" / "kraken" / "assetpairs.json"


def main(argv: list[str] | None = None) -> int:
    """Run uvicorn until SIGINT/SIGTERM; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.venue.trading", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("AETHER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("AETHER_PORT", "8080")))
    parser.add_argument("--assetpairs", type=Path, default=DEFAULT_ASSETPAIRS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--id-epoch", type=int, default=time.time_ns() // 1000)
    parser.add_argument("--credentials-dir", type=Path, default=os.environ.get("KRAKEN_CREDENTIALS_DIR") or None)
    parser.add_argument("--admin-allow", action="append", default=[], metavar="CIDR")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    import uvicorn

    from sandbox.venue.trading.admin import LOOPBACK
    from sandbox.venue.trading.app import create_trading_app

    try:
        app = create_trading_app(args.assetpairs, seed=args.seed, id_epoch=args.id_epoch, admin_networks=[*LOOPBACK, *args.admin_allow])
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.credentials_dir is not None and app.state.trading.account_from_credentials(args.credentials_dir) is None:
        print(f"warning: no api_key/api_secret in {args.credentials_dir}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
