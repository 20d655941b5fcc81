"""Exec probes: ``python -m sandbox.ingest.probe live|ready`` exits 0 when the check passes, else 1.

Reads the state file the ingest keeps (see :mod:`sandbox.ingest.statefile`);
prints one line saying why.  ``--max-age S`` overrides the heartbeat age limit
(also ``INGEST_PROBE_MAX_AGE_S``).  Imports only the standard library.
"""

from __future__ import annotations

import os
import sys

from sandbox.ingest.statefile import DEFAULT_MAX_AGE_S, default_path, evaluate, read_state

USAGE = "usage: python -m sandbox.ingest.probe live|ready [--max-age SECONDS]"


def main(argv: list[str] | None = None) -> int:
    """Run one check; returns 0 (pass), 1 (fail) or 2 (bad usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    max_age = float(os.environ.get("INGEST_PROBE_MAX_AGE_S", DEFAULT_MAX_AGE_S))
    if "--max-age" in args:
        i = args.index("--max-age")
        try:
            max_age = float(args[i + 1])
        except (IndexError, ValueError):
            print(USAGE, file=sys.stderr)
            return 2
        del args[i : i + 2]
    if len(args) != 1 or args[0] not in ("live", "ready"):
        print(USAGE, file=sys.stderr)
        return 2
    path = default_path()
    ok, reason = evaluate(read_state(path), args[0], max_age_s=max_age)
    print(f"{args[0]}: {'ok' if ok else 'FAIL'}: {reason} ({path})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
