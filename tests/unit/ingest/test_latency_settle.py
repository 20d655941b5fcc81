"""Publish latencies are appended per record and sorted into both histograms in bulk: same result as observe()."""

from __future__ import annotations

import random

from sandbox.ingest.stats import Histogram, RunStats, Stats, observe_all, percentiles


def test_observe_all_equals_one_observe_per_value() -> None:
    rng = random.Random(3)
    values = [0.0005, 0.001, 0.00051, 10.0, 10.5, 0.0] + [rng.expovariate(20) for _ in range(5000)]
    batch, reference = Histogram(sample_cap=1000), Histogram(sample_cap=1000)
    totals, totals_reference = Histogram(sample_cap=0), Histogram(sample_cap=0)
    observe_all((batch, totals), values[:7])
    observe_all((batch, totals), values[7:])
    observe_all((batch, totals), [])
    for value in values:
        reference.observe(value)
        totals_reference.observe(value)
    for got, want in ((batch, reference), (totals, totals_reference)):
        assert (got.counts, got.sum, got.count, got.sample) == (want.counts, want.sum, want.count, want.sample)
    assert batch.sample == values[:1000] and totals.sample == []


def test_settle_feeds_the_run_then_a_new_run_starts_empty() -> None:
    stats = Stats(run=RunStats("a"))
    stats.pending_latency.extend([0.002, 0.2])
    assert stats.run.as_dict()["latency_ms"]["count"] == 0  # not settled yet
    old = stats.run
    new = stats.new_run("b")
    assert old.latency.count == 2 and old.as_dict()["latency_ms"]["p50"] == 2.0
    assert new is stats.run and new.latency.count == 0 and not stats.pending_latency
    stats.pending_latency.append(1.0)
    stats.settle()
    assert new.latency.count == 1 and stats.latency.count == 3 and stats.latency.sum == 0.002 + 0.2 + 1.0


def test_percentiles_asked_between_observations_are_exact() -> None:
    rng = random.Random(9)
    histogram = Histogram(sample_cap=500)
    seen: list[float] = []
    for _ in range(40):
        batch = [rng.random() for _ in range(rng.randrange(0, 30))]
        observe_all((histogram,), batch)
        seen += batch
        assert histogram.percentiles() == percentiles(seen[:500])
