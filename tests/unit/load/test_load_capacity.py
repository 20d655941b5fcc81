"""Capacity from step results: the highest step that held, what binds first, replicas for a target."""

from __future__ import annotations

import pytest

from sandbox.errors import InvalidInput
from sandbox.load.capacity import Step, assess, parse_targets
from sandbox.load.catalog import Objectives
from sandbox.load.verdicts import Stats, judge_phase
from sandbox.spec.budget import Basis, Budget, DimensionBudget

OBJ = Objectives(p95_ms=50, p99_ms=100, max_error_ratio=0.01)
BUDGET = Budget(DimensionBudget(200, 200, Basis.REQUEST_ONLY), DimensionBudget(512, 512, Basis.REQUEST_ONLY))
REPLICAS = {"base": 2, "production": None}


def step(users, rps, p99, cpu, at_limit=0.0, mem=70.0, requests=None, failures=0) -> Step:
    stats = Stats(seconds=17, requests=requests or int(rps * 17), failures=failures, p50_ms=p99 / 4, p95_ms=p99 / 2,
                  p99_ms=p99, rps=rps, cpu_mean_m=cpu, cpu_p95_m=cpu, cpu_at_limit_share=at_limit,
                  memory_max_mib=mem, samples=17)
    return Step(users, users * 10.0, stats, judge_phase("peak", stats, BUDGET, OBJ, tail=0).failures)


def test_cpu_binds_when_the_quota_pins_it():
    steps = [step(1, 10, 20, 20), step(2, 20, 25, 40), step(4, 40, 30, 80), step(8, 80, 60, 160),
             step(16, 95, 400, 199, at_limit=0.9)]
    out = assess("risk-service", steps, BUDGET, OBJ, REPLICAS, target_rps=300)
    assert out["sustained"]["users"] == 8 and out["sustained"]["rps"] == 80
    assert out["binds"] == "cpu" and out["binds_detail"] == "CPU pinned at its quota"
    assert out["cpu_ms_per_request"] == 2.0 and out["rps_at_cpu_limit"] == 100.0  # the busiest step not pinned
    assert out["replicas_needed"] == 4 and out["spec_replicas"] == REPLICAS
    assert out["first_failure"]["failures"][0].startswith("p95 latency 200 ms above")


def test_latency_binds_while_cpu_has_room():
    steps = [step(1, 10, 20, 10), step(2, 20, 300, 15)]
    out = assess("oms-service", steps, BUDGET, OBJ, REPLICAS)
    assert out["sustained"]["rps"] == 10
    assert out["binds"] == "latency" and "waits on something else" in out["binds_detail"]
    assert out["replicas_needed"] is None


def test_memory_binds_first_when_over_the_limit():
    out = assess("svc", [step(1, 10, 20, 10), step(2, 20, 20, 15, mem=600)], BUDGET, OBJ, REPLICAS)
    assert out["binds"] == "memory"


def test_errors_bind_and_nothing_held():
    out = assess("svc", [step(1, 10, 20, 10, requests=100, failures=20)], BUDGET, OBJ, REPLICAS, target_rps=50)
    assert out["sustained"] is None and out["replicas_needed"] is None
    assert out["binds"] == "errors"


def test_a_search_that_never_broke_says_so():
    out = assess("svc", [step(1, 10, 20, 10), step(2, 20, 20, 20)], BUDGET, OBJ, REPLICAS, target_rps=45)
    assert out["sustained"]["rps"] == 20 and out["replicas_needed"] == 3
    assert out["binds"] == "none"


def test_targets_parse():
    assert parse_targets(["oms-service=100", "risk-service=2.5"]) == {"oms-service": 100.0, "risk-service": 2.5}
    for bad in ("oms-service", "oms-service=0", "=5", "oms-service=fast"):
        with pytest.raises(InvalidInput):
            parse_targets([bad])


def test_cpu_cost_is_reported_even_when_no_step_held():
    steps = [step(1, 10, 300, 5), step(2, 20, 300, 10), step(4, 40, 900, 199, at_limit=0.9)]
    out = assess("svc", steps, BUDGET, OBJ, REPLICAS)
    assert out["sustained"] is None and out["binds"] == "latency"
    assert out["cpu_ms_per_request"] == 0.5 and out["rps_at_cpu_limit"] == 400.0


def test_a_noisy_low_step_does_not_hide_the_higher_ones_that_held():
    steps = [step(1, 10, 300, 10), step(2, 20, 30, 15), step(4, 40, 40, 30), step(8, 80, 500, 60)]
    out = assess("svc", steps, BUDGET, OBJ, REPLICAS)
    assert out["sustained"]["users"] == 4 and out["first_failure"]["users"] == 8 and out["binds"] == "latency"
    assert out["cpu_ms_per_request"] == 0.75  # 60m at 80 req/s
