"""Reports of a suite run: JUnit XML for CI, the normalised result for comparing runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from sandbox.scenarios.runner import SuiteResult


def junit(suite: SuiteResult) -> ET.ElementTree:
    """JUnit XML: one ``testsuite`` per scenario directory, one ``testcase`` per scenario."""
    root = ET.Element("testsuites", name="aether-sandbox scenarios", tests=str(len(suite.results)),
                      failures=str(suite.failed), errors=str(suite.errors), time=f"{suite.seconds:.3f}")
    groups: dict[str, list[Any]] = {}
    for result in suite.results:
        groups.setdefault(result.suite, []).append(result)
    for name, results in groups.items():
        node = ET.SubElement(root, "testsuite", name=name, tests=str(len(results)),
                             failures=str(sum(r.outcome == "failed" for r in results)),
                             errors=str(sum(r.outcome == "error" for r in results)), skipped="0",
                             time=f"{sum(r.seconds for r in results):.3f}")
        for result in results:
            case = ET.SubElement(node, "testcase", classname=f"scenarios.{name}", name=result.name,
                                 file=result.path, time=f"{result.seconds:.3f}")
            if result.outcome == "failed":
                first = result.failures[0]
                failure = ET.SubElement(case, "failure", message=f"{first.expectation}: {first.happened}",
                                        type="ExpectationFailed")
                failure.text = explain(result.failures)
            elif result.outcome == "error":
                ET.SubElement(case, "error", message=result.error or "error", type="ScenarioError").text = result.error
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(suite: SuiteResult, path: str | Path) -> None:
    """Write the JUnit XML file."""
    junit(suite).write(str(path), encoding="utf-8", xml_declaration=True)


def explain(failures: list[Any]) -> str:
    """Failures as a person reads them: the expectation, what happened, the relevant events."""
    lines = []
    for f in failures:
        lines.append(f"[{f.where}] expected: {f.expectation}")
        lines.append(f"  happened: {f.happened}")
        if f.events:
            lines.append("  relevant events:")
            lines += [f"    {e}" for e in f.events]
    return "\n".join(lines)


def normalised_json(suite: SuiteResult) -> str:
    """The run's normalised result (no times or ids), for comparing two runs byte for byte."""
    return json.dumps([r.normalised() for r in suite.results], indent=1, sort_keys=True)
