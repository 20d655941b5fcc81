"""Console output shared by every command: rich for people, plain JSON for scripts."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console

console = Console(highlight=False)
# Soft wrap: error lines carry file paths and locations a person copies; the terminal wraps them, not rich.
errors = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON on stdout, with no markup, for scripts."""
    print(json.dumps(data, indent=2, default=str))


def fmt_cpu(millicores: int | None) -> str:
    """``1500`` -> ``1500m``; ``None`` -> an em dash."""
    return "—" if millicores is None else f"{millicores}m"


def fmt_mem(mib: int | None) -> str:
    """``2048`` -> ``2 GiB``; ``384`` -> ``384 MiB``; ``None`` -> an em dash."""
    if mib is None:
        return "—"
    if mib >= 1024 and mib % 1024 == 0:
        return f"{mib // 1024} GiB"
    return f"{mib} MiB"
