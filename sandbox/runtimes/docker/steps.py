"""Running the long external steps of an image build (debootstrap, docker build) with progress.

A cold offline build takes minutes, so every step streams a throttled view of
its output to a progress callback: each new stage (``Step 4/12``, ``I:
Retrieving``) as it starts, and otherwise one line every few seconds.  A step
that fails raises :class:`ImageBuildFailed` carrying its last output lines.
"""

from __future__ import annotations

import collections
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from sandbox.errors import EnvironmentProblem

Progress = Callable[[str], None]

#: Output lines a failed step's error carries.
TAIL_LINES = 25
#: At most one non-stage line per this many seconds reaches the progress callback.
QUIET_S = 5.0


class ImageBuildFailed(EnvironmentProblem):
    """An image build step failed; carries the step's last output lines."""

    def __init__(self, message: str, *, log_lines: Sequence[str] = (), hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.log_lines = list(log_lines)


#: Output that says nothing about progress (the classic builder's deprecation notice, context upload).
_NOISE = ("DEPRECATED:", "BuildKit is currently disabled", "environment-variable.", "Sending build context",
          "---> Using cache", "Removing intermediate container")


def _is_stage(line: str, previous: str) -> bool:
    if line.startswith("Step ") or line.startswith("Successfully"):
        return True
    # debootstrap: "I: Retrieving libc6 2.36" -> a new stage when the verb changes
    # (it alternates Retrieving/Validating and Unpacking/Configuring per package).
    return line.startswith("I: ") and _verb(line) != _verb(previous)


_SAME_STAGE = {"Validating": "Retrieving", "Configuring": "Unpacking"}


def _verb(line: str) -> str:
    words = line.split()
    verb = words[1] if len(words) > 1 else ""
    return _SAME_STAGE.get(verb, verb)


def run_step(argv: Sequence[str], *, what: str, progress: Progress | None, hint: str = "",
             env: Mapping[str, str] | None = None, prefix: str = "  ") -> list[str]:
    """Run ``argv``, stream a throttled view to ``progress``, return all output lines.

    Raises :class:`ImageBuildFailed` (with the last lines) when it exits non-zero.
    """
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    lines: list[str] = []
    last_shown, last_stage = 0.0, ""
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", env=dict(env) if env is not None else None)
    except OSError as exc:
        raise ImageBuildFailed(f"{what}: cannot run {argv[0]}: {exc.strerror or exc}", hint=hint) from exc
    assert proc.stdout is not None
    with proc:
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line:
                continue
            lines.append(line)
            tail.append(line)
            now = time.monotonic()
            stage = _is_stage(line, last_stage)
            if progress is not None and not line.lstrip().startswith(_NOISE) and (stage or now - last_shown >= QUIET_S):
                progress(prefix + line[:160])
                last_shown = now
                if stage:
                    last_stage = line
    if proc.returncode != 0:
        raise ImageBuildFailed(f"{what} failed (exit {proc.returncode})", log_lines=list(tail), hint=hint)
    return lines
