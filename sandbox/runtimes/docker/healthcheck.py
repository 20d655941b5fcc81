"""A compose healthcheck for images without curl: ``python -m sandbox.runtimes.docker.healthcheck URL``.

Exits 0 when ``URL`` answers with a 2xx status within the timeout, 1 otherwise
(printing why on stderr, which Docker keeps in the container's health log).
Standard library only and nothing else imported, so a probe costs a bare
interpreter start (~30 ms), not the service's imports.

Usage in a compose file::

    healthcheck:
      test: ["CMD", "python", "-m", "sandbox.runtimes.docker.healthcheck", "http://127.0.0.1:8000/healthz"]
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

DEFAULT_TIMEOUT_S = 3.0
USAGE = "usage: python -m sandbox.runtimes.docker.healthcheck URL [--timeout SECONDS]"


def probe(url: str, timeout: float = DEFAULT_TIMEOUT_S) -> str | None:
    """``None`` when ``url`` answers 2xx, else the reason it did not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a URL the compose file gives
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"{url} did not answer: {getattr(exc, 'reason', exc)}"
    return None if 200 <= status < 300 else f"{url} answered HTTP {status}"


def main(argv: list[str]) -> int:
    """Probe ``argv[0]`` (optional ``--timeout SECONDS``); 0 healthy, 1 not, 2 on bad usage."""
    timeout = DEFAULT_TIMEOUT_S
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if len(argv) == 3 and argv[1] == "--timeout":
        try:
            timeout = float(argv[2])
        except ValueError:
            argv = []
        argv = argv[:1]
    if len(argv) != 1:
        print(USAGE, file=sys.stderr)
        return 2
    reason = probe(argv[0], timeout)
    if reason is not None:
        print(reason, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
