"""Typed errors, reported once at the CLI boundary.

Every error a user can meet is a :class:`SandboxError`: a one-line reason (the
message), what to do next (``hint``) and a documented exit code.  The CLI turns
them into a red line plus the hint; tracebacks appear only with ``--debug``.

Exit codes (documented in the README):

===  =====================================================
0    success
1    a check or verdict failed (doctor, validate, load, scenarios)
2    bad usage or an invalid input file (spec, scenario, fixture)
3    an environment problem: engine, binary or port unavailable
4    a component failed to start or become healthy
===  =====================================================
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every error the sandbox reports to its user."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class CheckFailed(SandboxError):
    """A check or verdict the user asked for came out negative."""

    exit_code = 1


class InvalidInput(SandboxError):
    """A file or argument the user supplied is not valid."""

    exit_code = 2

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []


class EnvironmentProblem(SandboxError):
    """Something this machine lacks: an engine, a binary, a free port."""

    exit_code = 3


class StartFailed(SandboxError):
    """A component did not start or did not become healthy."""

    exit_code = 4
