"""Profiles, mixes and objectives: bounded, covering every service, matching the locustfile and the spec."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sandbox.cli.load_cmd import parse_duration
from sandbox.errors import InvalidInput
from sandbox.load import catalog
from sandbox.load.runner import LOCUSTFILE, RunOptions, resolve_profile
from sandbox.spec.budget import budget_of
from sandbox.spec.loader import default_spec


def _locust_classes() -> dict[str, set[str]]:
    tree = ast.parse(Path(LOCUSTFILE).read_text())
    return {node.name: {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
            for node in tree.body if isinstance(node, ast.ClassDef)}


def test_every_service_plan_matches_the_spec_and_the_locustfile():
    spec = default_spec()
    classes = _locust_classes()
    for plan in catalog.SERVICES:
        budget_of(spec.component(plan.component))  # a component with a budget
        assert plan.user_class in classes, plan.user_class
        assert set(plan.mix) <= classes[plan.user_class], (plan.component, set(plan.mix) - classes[plan.user_class])
        assert all(w > 0 for w in plan.mix.values())
        assert plan.objectives.p95_ms <= plan.objectives.p99_ms


def test_every_platform_service_is_covered():
    spec = default_spec()
    services = {c.name for c in spec.components if c.kind.value in ("service", "ingest")}
    assert services <= {p.component for p in catalog.SERVICES}


def test_profiles_are_bounded_and_judged():
    assert set(catalog.PROFILES) == {"smoke", "nominal", "peak", "soak", "step"}
    assert catalog.PROFILES["smoke"].seconds <= 30
    for profile in catalog.PROFILES.values():
        assert 0 < profile.seconds <= 900
        assert any(s.phase in ("nominal", "peak") for s in profile.stages)
    assert {s.phase for s in catalog.PROFILES["peak"].stages} == {"ramp", "nominal", "peak"}
    step = [s.users for s in catalog.PROFILES["step"].stages]
    assert step == sorted(step) and len(set(step)) == len(step)


def test_users_and_duration_rescale_a_profile():
    p = resolve_profile(RunOptions("peak", users=3, duration_s=35))
    assert p.seconds == pytest.approx(35, abs=0.1)
    assert {s.users for s in p.stages} == {3}
    assert [s.phase for s in p.stages] == [s.phase for s in catalog.PROFILES["peak"].stages]
    with pytest.raises(InvalidInput):
        resolve_profile(RunOptions("bogus"))
    with pytest.raises(InvalidInput):
        resolve_profile(RunOptions("smoke", duration_s=1))


def test_durations_parse():
    assert parse_duration("90") == 90 and parse_duration("90s") == 90
    assert parse_duration("2m") == 120 and parse_duration("1m30s") == 90
    with pytest.raises(InvalidInput):
        parse_duration("soon")
