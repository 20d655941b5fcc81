"""The HTML report: self-contained, with SVG charts carrying the run's data, readable by a headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from sandbox.load.catalog import Objectives
from sandbox.load.report import render
from sandbox.load.sampling import Sample
from sandbox.load.verdicts import Bucket, Window, judge
from sandbox.spec.budget import Basis, Budget, DimensionBudget

T0 = 1_800_000_000
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SERVICES = ("risk-service", "oms-service")


def _run() -> tuple[dict, str]:
    budget = Budget(DimensionBudget(200, 200, Basis.REQUEST_ONLY), DimensionBudget(512, 512, Basis.REQUEST_ONLY))
    windows = [Window(T0, T0 + 5, "ramp"), Window(T0 + 5, T0 + 25, "nominal"), Window(T0 + 25, T0 + 40, "peak")]
    buckets = [Bucket(T0 + i, s, 10 + i, int(i == 30), {5 + i: 8, 40 + i: 2 + i}) for i in range(40) for s in SERVICES]
    samples = [Sample(T0 + i + 0.3, s, 20.0 + 3 * i, 60.0 + i / 10) for i in range(40) for s in SERVICES]
    obj = Objectives(50, 100, 0.01)
    verdicts = [judge(s, windows, buckets, samples, budget, obj) for s in SERVICES]
    result = {"profile": "peak", "runtime": "local", "run_dir": "/tmp/run", "notes": ["a note <escaped>"]}
    return result, render(result, verdicts, windows, buckets, samples)


def test_report_has_a_chart_per_dimension_with_the_data_points():
    _, page = _run()
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "a note &lt;escaped&gt;" in page
    for service in SERVICES:
        section = page.split(f'<section class="service" id="{service}">', 1)[1].split("</section>", 1)[0]
        assert section.count('<svg class="chart"') == 4
        series = dict(re.findall(r'data-series="([^"]+)" data-points="(\d+)"', section))
        assert {"CPU (m)", "memory (MiB)", "p50", "p95", "p99", "ok/s"} <= set(series)
        assert int(series["CPU (m)"]) == 40 and int(series["p99"]) == 20  # 2-second latency windows
        assert 'data-rule="request = limit"' in section and 'data-rule="p99 objective"' in section
    assert page.count('class="stage nominal"') == 8 and page.count('class="stage peak"') == 8


def test_headless_chromium_renders_the_plots(tmp_path: Path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/system-deps.sh installs it)")
    _, page = _run()
    report = tmp_path / "report.html"
    report.write_text(page)
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", report.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    paths = re.findall(r'<path class="series" data-series="([^"]+)" data-points="(\d+)" d="(M[^"]+)"', dom)
    assert len(paths) >= 2 * 6, dom[:500]
    for _, points, d in paths:
        assert d.count("L") + 1 == int(points) > 0
    assert dom.count("<svg") == 8 and "Load run" in dom
