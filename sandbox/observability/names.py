"""Metric names: those a PromQL expression reads, and those a registry exposes.

Used by the tests that hold the committed rules and dashboards to metrics the
components really expose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

#: PromQL words that are not metric names (aggregations, operators, modifiers).
KEYWORDS = frozenset({
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values",
    "inf", "nan",
})
#: Series Prometheus itself produces.
BUILTIN = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def promql_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (functions, keywords, labels and durations left out)."""
    s = _GROUPING.sub(" ", _RANGE.sub("", _MATCHERS.sub("", _STRING.sub('""', expr))))
    names = set()
    for m in _IDENT.finditer(s):
        token = m.group(0)
        if s[m.end():].lstrip().startswith("(") or token.lower() in KEYWORDS:
            continue
        if m.start() > 0 and (s[m.start() - 1].isdigit() or s[m.start() - 1] == "."):
            continue  # the exponent of a number such as 1e3
        names.add(token)
    return names


def sample_names(family_name: str, family_type: str) -> set[str]:
    """The sample names a metric family of ``family_type`` exposes."""
    if family_type == "counter":
        base = family_name.removesuffix("_total")
        return {base + "_total", base + "_created"}
    if family_type == "histogram":
        return {family_name + s for s in ("_bucket", "_count", "_sum", "_created")}
    if family_type == "summary":
        return {family_name, family_name + "_count", family_name + "_sum", family_name + "_created"}
    return {family_name}


def registry_names(registry: Any) -> set[str]:
    """Every sample name a ``prometheus_client`` registry can expose (labelled families without children too)."""
    out: set[str] = set()
    for family in registry.collect():
        out |= sample_names(family.name, family.type)
    return out


def rule_names(groups: Iterable[dict[str, Any]]) -> tuple[set[str], set[str]]:
    """(names the rules record, names the rules read) of rule groups."""
    recorded, read = set(), set()
    for group in groups:
        for rule in group["rules"]:
            if "record" in rule:
                recorded.add(rule["record"])
            read |= promql_names(rule["expr"])
    return recorded, read


def dashboard_exprs(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, data source uid, expression) of every query of a dashboard."""
    out = []
    for panel in board.get("panels", []):
        for target in panel.get("targets", []):
            ds = (target.get("datasource") or panel.get("datasource") or {}).get("uid", "")
            out.append((panel.get("title", ""), ds, target.get("expr", "")))
    return out
