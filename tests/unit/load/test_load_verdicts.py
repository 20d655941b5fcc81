"""Verdict logic: latency and errors against objectives, CPU and memory against the spec's budget."""

from __future__ import annotations

import json

from sandbox.load.catalog import Objectives
from sandbox.load.sampling import Sample
from sandbox.load.verdicts import Bucket, Window, judge, judgeable, percentile, read_timeline, window_stats
from sandbox.spec.budget import Basis, Budget, DimensionBudget, budget_of
from sandbox.spec.loader import default_spec

OBJ = Objectives(p95_ms=50, p99_ms=100, max_error_ratio=0.01)
T0 = 1_000_000


def budget(cpu_req=200, cpu_lim=200, mem_req=512, mem_lim=512) -> Budget:
    return Budget(DimensionBudget(cpu_req, cpu_lim, Basis.REQUEST_AND_LIMIT),
                  DimensionBudget(mem_req, mem_lim, Basis.REQUEST_AND_LIMIT))


def steady(service="svc", seconds=20, rps=10, ms=10, fail=0, cpu=50.0, mem=60.0, start=T0):
    buckets = [Bucket(start + i, service, rps, fail, {ms: rps}) for i in range(seconds)]
    samples = [Sample(start + i + 0.5, service, cpu, mem) for i in range(seconds)]
    return buckets, samples


def test_percentile_of_histogram():
    hist = {5: 90, 40: 9, 300: 1}
    assert percentile(hist, 0.5) == 5
    assert percentile(hist, 0.95) == 40
    assert percentile(hist, 0.99) == 40
    assert percentile(hist, 1.0) == 300
    assert percentile({}, 0.5) is None


def test_within_objectives_and_budget_passes():
    buckets, samples = steady()
    v = judge("svc", [Window(T0, T0 + 20, "nominal")], buckets, samples, budget(), OBJ, settle_s=0)
    assert v.passed, v.reasons
    stats = v.phases[0].stats
    assert (stats.requests, stats.failures, stats.rps) == (200, 0, 10.0)
    assert stats.cpu_mean_m == 50.0 and stats.memory_max_mib == 60.0


def test_lowered_memory_budget_fails_with_its_reason():
    buckets, samples = steady(mem=62.0)
    v = judge("svc", [Window(T0, T0 + 20, "nominal")], buckets, samples, budget(mem_req=40, mem_lim=40), OBJ, settle_s=0)
    assert not v.passed
    assert v.reasons == ["nominal: memory 62 MiB at its peak above its request of 40 MiB "
                         "(nominal load must stay within the request)"]


def test_nominal_cpu_above_request_but_peak_within_limit():
    buckets, samples = steady(seconds=40, cpu=150.0)
    windows = [Window(T0, T0 + 20, "nominal"), Window(T0 + 20, T0 + 40, "peak")]
    v = judge("svc", windows, buckets, samples, budget(cpu_req=100, cpu_lim=600), OBJ, settle_s=0)
    by_phase = {p.phase: p.failures for p in v.phases}
    assert by_phase["nominal"] == ["CPU 150m on average above its request of 100m (nominal load must stay within the request)"]
    assert by_phase["peak"] == []


def test_cpu_pinned_at_an_enforced_limit_fails_unless_only_measured():
    buckets, samples = steady(cpu=198.0)
    windows = [Window(T0, T0 + 20, "peak")]
    v = judge("svc", windows, buckets, samples, budget(), OBJ, settle_s=0)
    assert any("CPU pinned at its 200m limit (100% of samples)" in r for r in v.reasons)
    assert judge("svc", windows, buckets, samples, budget(), OBJ, settle_s=0, enforced=False).passed


def test_one_cpu_spike_is_not_pinned():
    buckets, samples = steady(cpu=20.0)
    samples[5] = Sample(samples[5].t, "svc", 210.0, 60.0)
    assert judge("svc", [Window(T0, T0 + 20, "peak")], buckets, samples, budget(), OBJ, settle_s=0).passed


def test_latency_and_errors_fail_with_figures():
    buckets, samples = steady(rps=15, ms=120, fail=1)
    v = judge("svc", [Window(T0, T0 + 20, "nominal")], buckets, samples, budget(), OBJ, settle_s=0)
    assert v.reasons == [
        "nominal: error ratio 6.67% above the objective 1.00% (20 of 300 requests failed)",
        "nominal: p95 latency 120 ms above the objective 50 ms",
        "nominal: p99 latency 120 ms above the objective 100 ms",
    ]
    assert v.notes == []


def test_a_percentile_with_too_few_requests_behind_it_is_noted_not_judged():
    # 199 requests: under two above the 99th percentile, so its "p99" is an outlier; 60 are enough for p95.
    buckets, samples = steady(rps=10, ms=10)
    buckets[-1] = Bucket(buckets[-1].t, "svc", 9, 0, {10: 7, 400: 2})
    v = judge("svc", [Window(T0, T0 + 20, "nominal")], buckets, samples, budget(), OBJ, settle_s=0)
    assert v.phases[0].stats.requests == 199 and v.phases[0].stats.p99_ms == 400
    assert v.passed and v.reasons == []
    assert v.notes == ["nominal: p99 latency not judged: 199 requests put fewer than 3 above it "
                       "(measured 400 ms, objective 100 ms)"]
    few, more = steady(seconds=5, rps=10, ms=90)  # 50 requests: neither percentile judged
    assert len(judge("svc", [Window(T0, T0 + 5, "nominal")], few, more, budget(), OBJ, settle_s=0).notes) == 2
    assert [judgeable(n, 0.99) for n in (299, 300)] == [False, True]
    assert [judgeable(n, 0.95) for n in (59, 60)] == [False, True]


def test_nothing_measured_fails():
    v = judge("svc", [Window(T0, T0 + 20, "nominal")], [], [], budget(), OBJ)
    assert v.reasons == ["nominal: no requests completed",
                         "nominal: no resource samples: CPU and memory could not be judged"]
    assert not judge("svc", [Window(T0, T0 + 5, "ramp")], [], [], budget(), OBJ).passed  # nothing judged


def test_ramp_and_settle_time_are_not_judged():
    slow, samples = steady(seconds=5, ms=900)
    fast, more = steady(seconds=20, start=T0 + 5)
    windows = [Window(T0, T0 + 5, "ramp"), Window(T0 + 5, T0 + 25, "nominal")]
    v = judge("svc", windows, slow + fast, samples + more, budget(), OBJ, settle_s=2)
    assert v.passed and v.phases[0].stats.requests == 180


def test_timelines_of_several_processes_merge(tmp_path):
    for pid, n in ((1, 3), (2, 5)):
        (tmp_path / f"timeline-{pid}.jsonl").write_text(
            json.dumps({"t": T0, "service": "svc", "n": n, "fail": 1, "h": {"7": n - 1, "300": 1}}) + "\n")
    [bucket] = read_timeline(sorted(tmp_path.glob("timeline-*.jsonl")))
    assert (bucket.n, bucket.fail, dict(bucket.hist)) == (8, 2, {7: 6, 300: 2})
    assert window_stats("svc", [Window(T0, T0 + 1, "peak")], [bucket], []).p99_ms == 300


def test_verdict_uses_the_spec_budget_policy():
    spec = default_spec()
    oms = budget_of(spec.component("oms-service"))
    buckets, samples = steady(service="oms-service", cpu=float(oms.cpu_m.request) * 0.5)
    v = judge("oms-service", [Window(T0, T0 + 20, "nominal")], buckets, samples, oms, OBJ, settle_s=0)
    assert v.passed and (v.cpu_request_m, v.memory_limit_mib) == (oms.cpu_m.request, oms.memory_mib.limit)
