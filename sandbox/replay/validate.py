"""Checking a session: every problem as ``file:line: message``, nothing silently skipped.

Checks, per frame line: the line is a JSON record (``t``, ``dir``, ``frame``);
the frame is JSON and a Kraken frame of the session's API version; its channel
(or method / event) is one Kraken has; receive times do not go backwards; book
updates follow a snapshot, books never cross and every checksum verifies
(rebuilt from the raw tokens with :mod:`sandbox.replay.book`).  For the whole
file: gzip is complete, and a header's manifest matches what the file holds.

A bad line is reported and the next one checked: lines are independent, so one
broken frame never hides the rest.  After a checksum mismatch the symbol's book
is unknown; its later messages are counted as unchecked until the next snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.replay.book import V1Books, V2Books, parse_frame
from sandbox.replay.fixture import FixtureError, Manifest, ManifestBuilder, Record, iter_lines, parse_header, parse_record, problem
from sandbox.replay.protocol import UnknownFrame, classify

#: Problems listed before the rest are only counted.
MAX_PROBLEMS = 200


@dataclass
class ValidationReport:
    """The outcome of validating one file or record stream."""

    path: str
    problems: list[str] = field(default_factory=list)
    frames: int = 0
    #: book messages whose checksum was verified (and matched)
    checksums_ok: int = 0
    checksum_mismatches: int = 0
    #: book messages not checked because their book was unknown (after a mismatch)
    unchecked: int = 0
    manifest: Manifest | None = None
    suppressed: int = 0

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def add(self, line: int, message: str) -> None:
        """Record a problem at ``line`` (counted only, past :data:`MAX_PROBLEMS`)."""
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem(self.path, line, message))
        else:
            self.suppressed += 1

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready summary for ``--json`` output."""
        return {
            "path": self.path,
            "ok": self.ok,
            "frames": self.frames,
            "checksums_ok": self.checksums_ok,
            "checksum_mismatches": self.checksum_mismatches,
            "unchecked": self.unchecked,
            "problems": self.problems,
            "problems_not_listed": self.suppressed,
            "manifest": self.manifest.model_dump(mode="json") if self.manifest else None,
        }


class _Checker:
    """Frame-by-frame checks shared by :func:`validate_file` and :func:`validate_records`."""

    def __init__(self, report: ValidationReport, api: str | None, manifest: Manifest | None, checksums: bool) -> None:
        self.report = report
        self.api = api
        self.checksums = checksums
        # manifest precisions are informational: exact tokens never need re-formatting
        self.v2 = V2Books()
        if manifest:
            self.v2.depths.update(manifest.depths)
        self.v1 = V1Books()
        self.broken: set[str] = set()
        self.last_t: float | None = None
        self.builder = ManifestBuilder()

    def record(self, rec: Record) -> None:
        report = self.report
        report.frames += 1
        if self.last_t is not None and rec.t < self.last_t:
            report.add(rec.line, f"receive time goes backwards ({rec.t:.6f} after {self.last_t:.6f})")
        self.last_t = rec.t if self.last_t is None else max(self.last_t, rec.t)
        try:
            msg = parse_frame(rec.frame)
        except ValueError as exc:
            self.builder.add(rec)
            report.add(rec.line, f"frame is not JSON ({exc})")
            return
        try:
            info = classify(msg)
        except UnknownFrame as exc:
            self.builder.add(rec)
            report.add(rec.line, str(exc))
            return
        self.builder.add(rec, msg, info)
        if self.api is None:
            self.api = info.api
        elif info.api != self.api:
            report.add(rec.line, f"a {info.api} frame in a {self.api} session")
            return
        if not info.known:
            what = "channel" if info.api == "v2" and "channel" in msg or isinstance(msg, list) else "message kind"
            report.add(rec.line, f"unknown {what} {info.kind!r}")
            return
        if rec.dir == "recv" and self.checksums and info.kind in ("book", "subscribe", "unsubscribe", "subscriptionStatus"):
            self._book(rec, msg, info)

    def _book(self, rec: Record, msg: Any, info: Any) -> None:
        report = self.report
        books = self.v2 if info.api == "v2" else self.v1
        if info.kind == "book" and info.msg_type == "update":
            missing = [s for s in info.symbols if s not in books.books]
            if missing:
                report.add(rec.line, f"book update for {', '.join(missing)} before any snapshot")
                return
        try:
            checks = books.handle(msg)
        except (KeyError, TypeError, ValueError, IndexError, ArithmeticError) as exc:
            report.add(rec.line, f"malformed book message ({type(exc).__name__}: {exc})")
            return
        for check in checks:
            if check.kind == "snapshot":
                self.broken.discard(check.symbol)
            if check.symbol in self.broken:
                report.unchecked += 1
                continue
            if check.crossed:
                report.add(rec.line, f"{check.symbol} book is crossed after this {check.kind}")
            if check.expected is None:
                continue
            if check.expected == check.computed:
                report.checksums_ok += 1
                continue
            report.checksum_mismatches += 1
            report.add(
                rec.line,
                f"{check.symbol} book checksum mismatch: frame says {check.expected}, book gives {check.computed}",
            )
            self.broken.add(check.symbol)

    def finish(self, manifest: Manifest | None, header_line: int) -> None:
        if manifest is None:
            return
        actual = self.builder.build()
        for field_name in ("frames", "channel_counts", "symbol_counts", "depths"):
            said, found = getattr(manifest, field_name), getattr(actual, field_name)
            if said != found:
                self.report.add(header_line, f"manifest {field_name} says {said}, the file holds {found}")
        if self.api and manifest.api != self.api:
            self.report.add(header_line, f"manifest api says {manifest.api}, the frames are {self.api}")


def validate_records(
    records: Iterable[Record], path: str | Path = "<records>", *, api: str | None = None, checksums: bool = True,
    manifest: Manifest | None = None,
) -> ValidationReport:
    """Validate records already in memory (an import in progress, say)."""
    report = ValidationReport(str(path), manifest=manifest)
    checker = _Checker(report, api, manifest, checksums)
    for rec in records:
        checker.record(rec)
    return report


def validate_file(path: str | Path, *, checksums: bool = True) -> ValidationReport:
    """Validate the fixture at ``path`` line by line."""
    path = Path(path)
    report = ValidationReport(str(path))
    manifest: Manifest | None = None
    checker: _Checker | None = None
    try:
        for lineno, text in iter_lines(path):
            if lineno == 1:
                try:
                    manifest = parse_header(text)
                except ValueError as exc:
                    report.add(1, f"bad header ({exc})")
                    checker = _Checker(report, None, None, checksums)
                    continue
                report.manifest = manifest
                checker = _Checker(report, manifest.api if manifest else None, manifest, checksums)
                if manifest is not None:
                    continue
            if not text.strip():
                continue
            try:
                rec = parse_record(text, lineno)
            except ValueError as exc:
                report.add(lineno, str(exc))
                continue
            assert checker is not None
            checker.record(rec)
    except FixtureError as exc:  # truncated gzip or bad UTF-8: nothing after it can be read
        report.problems.extend(exc.problems or [str(exc)])
        return report
    if checker is None:
        report.add(1, "the file is empty")
        return report
    checker.finish(manifest, 1)
    if report.manifest is None:
        report.manifest = checker.builder.build(source=f"file {path.name}")
    return report
