"""A malformed spec gives `file:line location: message` problems, never a traceback."""

from __future__ import annotations

import re

import pytest
import yaml

from sandbox.errors import InvalidInput
from sandbox.spec.graph import closure, find_cycle, start_order
from sandbox.spec.loader import bundled_spec_path, parse_spec


def _bundled() -> dict:
    return yaml.safe_load(bundled_spec_path().read_text())


def _problems(data_or_text) -> list[str]:
    text = data_or_text if isinstance(data_or_text, str) else yaml.safe_dump(data_or_text, sort_keys=False)
    with pytest.raises(InvalidInput) as info:
        parse_spec(text, source="edited.yaml")
    assert info.value.exit_code == 2
    return info.value.problems


def _component(data: dict, name: str) -> dict:
    return next(c for c in data["components"] if c["name"] == name)


def test_bundled_spec_is_valid():
    spec = parse_spec(bundled_spec_path().read_text())
    assert len(spec.components) == 25


def test_negative_figure_is_located():
    data = _bundled()
    _component(data, "auth-service")["requests"]["cpu_m"] = -100
    (problem,) = _problems(data)
    assert re.fullmatch(r"edited\.yaml:\d+ components\[auth-service\]\.requests\.cpu_m: .*greater than 0.*", problem)


def test_line_number_points_at_the_field():
    text = bundled_spec_path().read_text().replace("requests: {cpu_m: 500, memory_mib: 1024}", "requests: {cpu_m: 0, memory_mib: 1024}")
    (problem,) = _problems(text)
    line = int(problem.split(":")[1].split()[0])
    assert "cpu_m: 0" in text.splitlines()[line - 1]
    assert "components[kafka].requests.cpu_m" in problem


def test_unknown_dependency():
    data = _bundled()
    _component(data, "oms-service")["depends_on"].append("ledger-service")
    (problem,) = _problems(data)
    assert "components[oms-service].depends_on[10]: unknown component 'ledger-service'" in problem


def test_dependency_cycle():
    data = _bundled()
    _component(data, "timescaledb")["depends_on"] = ["auth-service"]
    problems = _problems(data)
    assert any("dependency cycle: " in p and "timescaledb" in p and "auth-service" in p for p in problems)


def test_request_above_limit():
    data = _bundled()
    _component(data, "nats")["requests"]["cpu_m"] = 900
    (problem,) = _problems(data)
    assert "components[nats].requests.cpu_m: request 900 exceeds limit 500" in problem


def test_missing_budget():
    data = _bundled()
    del _component(data, "feast")["sandbox_budget"]
    (problem,) = _problems(data)
    assert "components[feast]: no documented cpu_m figure and no sandbox_budget.cpu_m" in problem


def test_sandbox_budget_cannot_override_documented_figure():
    data = _bundled()
    _component(data, "redis")["sandbox_budget"] = {"cpu_m": 1000}
    (problem,) = _problems(data)
    assert "components[redis].sandbox_budget.cpu_m" in problem


def test_unknown_field_and_placeholder():
    data = _bundled()
    _component(data, "fees-service")["replica"] = 2
    _component(data, "fees-service")["env"]["FEES_DATABASE_URL"] = "{postgres:nowhere}"
    problems = _problems(data)
    assert any("components[fees-service].replica: unknown field" in p for p in problems)


def test_bad_placeholder():
    data = _bundled()
    _component(data, "fees-service")["env"]["FEES_DATABASE_URL"] = "{postgres:nowhere}"
    (problem,) = _problems(data)
    assert "components[fees-service].env.FEES_DATABASE_URL: database 'nowhere'" in problem


def test_duplicate_host_port():
    data = _bundled()
    _component(data, "fees-service")["host_port"] = 18001
    problems = _problems(data)
    assert any("components[fees-service].host_port: host port 18001" in p for p in problems)


def test_yaml_syntax_error_has_a_line():
    (problem,) = _problems("version: 1\ncomponents: [\n  - oops: {\n")
    assert re.match(r"edited\.yaml:\d+: ", problem)


def test_top_level_not_a_mapping():
    with pytest.raises(InvalidInput):
        parse_spec("- a\n- b\n")


def test_graph_helpers():
    edges = {"a": ["b"], "b": ["c"], "c": [], "d": ["a"]}
    assert find_cycle(edges) is None
    assert start_order(edges, ["d", "a", "b", "c"]) == ["c", "b", "a", "d"]
    assert closure(edges, ["a"]) == {"a", "b", "c"}
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]


def test_bundled_start_order_respects_dependencies():
    from sandbox.spec.loader import default_spec

    spec = default_spec()
    edges = {c.name: c.depends_on for c in spec.components}
    order = start_order(edges, spec.names())
    for c in spec.components:
        for dep in c.depends_on:
            assert order.index(dep) < order.index(c.name)
