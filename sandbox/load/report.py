"""The run's HTML report: one self-contained file, inline SVG charts, no script, no network.

Per service: CPU and memory over time against the request and limit lines,
latency percentiles over time against the objectives, throughput, and the
verdict table at the top with the reason for every failure.  Stages are
shaded (nominal, peak) so a reader sees what each stretch was judged against.
"""

from __future__ import annotations

import html
import time
from collections import defaultdict
from dataclasses import dataclass

from sandbox.load.sampling import Sample
from sandbox.load.verdicts import Bucket, Verdict, Window, percentile

WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 560, 200, 52, 12, 22, 28
PHASE_FILL = {"nominal": "#e8f1fb", "peak": "#fdeee4", "ramp": "#f4f4f4"}
COLOURS = {"p50": "#4c78a8", "p95": "#f58518", "p99": "#e45756", "cpu": "#4c78a8", "memory": "#54a24b",
           "ok": "#4c78a8", "failed": "#e45756"}


@dataclass
class Series:
    """One line of a chart: ``(seconds since the start, value)`` points."""

    name: str
    colour: str
    points: list[tuple[float, float]]


@dataclass
class Rule:
    """A horizontal line: a request, a limit or an objective."""

    name: str
    colour: str
    value: float


def chart(title: str, unit: str, series: list[Series], rules: list[Rule], x_max: float,
          windows: list[tuple[float, float, str]]) -> str:
    """An SVG line chart; every series is a ``<path class="series">`` carrying its point count."""
    values = [v for s in series for _, v in s.points] + [r.value for r in rules]
    y_max = max(values + [1.0]) * 1.1
    x_max = max(x_max, 1.0)
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    x = lambda t: PAD_L + plot_w * t / x_max  # noqa: E731
    y = lambda v: PAD_T + plot_h * (1 - v / y_max)  # noqa: E731
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{PAD_L}" y="14" class="title">{html.escape(title)}</text>']
    for start, end, phase in windows:
        parts.append(f'<rect class="stage {phase}" x="{x(start):.1f}" y="{PAD_T}" width="{max(0.0, x(end) - x(start)):.1f}" '
                     f'height="{plot_h}" fill="{PHASE_FILL.get(phase, "#fff")}"><title>{phase}</title></rect>')
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        v = y_max * frac
        parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{PAD_L - 4}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">{v:,.0f}</text>')
    for t in range(0, int(x_max) + 1, max(1, int(x_max // 6) or 1)):
        parts.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 10}" class="tick" text-anchor="middle">{t}s</text>')
    parts.append(f'<text x="6" y="{PAD_T + plot_h / 2:.0f}" class="tick" transform="rotate(-90 6 {PAD_T + plot_h / 2:.0f})" '
                 f'text-anchor="middle">{html.escape(unit)}</text>')
    for r in rules:
        parts.append(f'<line class="rule" data-rule="{html.escape(r.name)}" x1="{PAD_L}" x2="{WIDTH - PAD_R}" '
                     f'y1="{y(r.value):.1f}" y2="{y(r.value):.1f}" stroke="{r.colour}" stroke-dasharray="6 4"/>'
                     f'<text x="{WIDTH - PAD_R - 2}" y="{y(r.value) - 3:.1f}" class="tick" text-anchor="end" '
                     f'fill="{r.colour}">{html.escape(r.name)} {r.value:,.0f}</text>')
    legend_x = PAD_L + 4
    for s in series:
        s = Series(s.name, s.colour, [(t, v) for t, v in s.points if 0 <= t <= x_max])
        if s.points:
            d = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(s.points))
            parts.append(f'<path class="series" data-series="{html.escape(s.name)}" data-points="{len(s.points)}" '
                         f'd="{d}" fill="none" stroke="{s.colour}" stroke-width="1.6"/>')
        parts.append(f'<text x="{legend_x}" y="{PAD_T + 12}" class="tick" fill="{s.colour}">{html.escape(s.name)}</text>')
        legend_x += 8 + 7 * len(s.name)
    parts.append("</svg>")
    return "".join(parts)


def _latency_series(service: str, buckets: list[Bucket], t0: float, step: int = 2) -> list[Series]:
    grouped: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for b in buckets:
        if b.service == service:
            for ms, c in b.hist.items():
                grouped[int((b.t - t0) // step) * step][ms] += c
    out = []
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        pts = [(t + step / 2, percentile(h, q) or 0.0) for t, h in sorted(grouped.items())]
        out.append(Series(name, COLOURS[name], pts))
    return out


def _throughput_series(service: str, buckets: list[Bucket], t0: float) -> list[Series]:
    mine = [b for b in buckets if b.service == service]
    return [Series("ok/s", COLOURS["ok"], [(b.t - t0 + 0.5, float(b.n - b.fail)) for b in mine]),
            Series("failed/s", COLOURS["failed"], [(b.t - t0 + 0.5, float(b.fail)) for b in mine])]


def _resource_series(service: str, samples: list[Sample], t0: float, field: str) -> list[Series]:
    pts = [(s.t - t0, getattr(s, field)) for s in samples if s.component == service and getattr(s, field) is not None]
    return [Series("CPU (m)" if field == "cpu_m" else "memory (MiB)", COLOURS["cpu" if field == "cpu_m" else "memory"], pts)]


def _budget_rules(request: float, limit: float) -> list[Rule]:
    if request == limit:
        return [Rule("request = limit", "#e45756", limit)]
    return [Rule("request", "#b279a2", request), Rule("limit", "#e45756", limit)]


def _fmt(v: float | None, unit: str = "") -> str:
    return "—" if v is None else f"{v:,.0f}{unit}"


def _verdict_rows(verdicts: list[Verdict]) -> str:
    rows = []
    for v in verdicts:
        for p in v.phases or [None]:
            st = p.stats if p else None
            ok = p is not None and not p.failures
            reasons = "<br>".join(html.escape(r) for r in (p.failures if p else v.reasons)) or "within objectives and budget"
            rows.append(
                f'<tr class="{"pass" if ok else "fail"}"><td>{html.escape(v.service)}</td><td>{p.phase if p else "—"}</td>'
                f'<td class="verdict">{"PASS" if ok else "FAIL"}</td>'
                f'<td>{_fmt(st.rps if st else None)}</td><td>{_fmt(st.p95_ms if st else None)} / {_fmt(st.p99_ms if st else None)}'
                f' <small>(≤ {v.objectives.p95_ms:.0f} / {v.objectives.p99_ms:.0f})</small></td>'
                f'<td>{(f"{st.error_ratio:.2%}" if st else "—")}</td>'
                f'<td>{_fmt(st.cpu_mean_m if st else None, "m")} <small>(req {v.cpu_request_m}m, lim {v.cpu_limit_m}m)</small></td>'
                f'<td>{_fmt(st.memory_max_mib if st else None, " MiB")} <small>(req {v.memory_request_mib}, lim {v.memory_limit_mib})</small></td>'
                f'<td class="reasons">{reasons}</td></tr>')
    return "\n".join(rows)


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
tr.pass td.verdict{color:#1a7f37;font-weight:bold} tr.fail td.verdict{color:#cf222e;font-weight:bold}
.charts{display:flex;flex-wrap:wrap;gap:8px} svg.chart{border:1px solid #eee;background:#fff}
svg .title{font-size:12px;font-weight:600} svg .tick{font-size:10px;fill:#555}
.notes li{font-size:13px} small{color:#666}
"""


def render(result: dict, verdicts: list[Verdict], windows: list[Window], buckets: list[Bucket],
           samples: list[Sample]) -> str:
    """The whole report as one HTML string (``result`` is :meth:`RunResult.as_dict`)."""
    t0 = windows[0].start if windows else (buckets[0].t if buckets else 0.0)
    x_max = (windows[-1].end - t0) if windows else 60.0
    spans = [(w.start - t0, w.end - t0, w.phase) for w in windows]
    passed = all(v.passed for v in verdicts)
    sections = []
    for v in verdicts:
        s = v.service
        cpu_rules = _budget_rules(v.cpu_request_m, v.cpu_limit_m)
        mem_rules = _budget_rules(v.memory_request_mib, v.memory_limit_mib)
        lat_rules = [Rule("p95 objective", COLOURS["p95"], v.objectives.p95_ms),
                     Rule("p99 objective", COLOURS["p99"], v.objectives.p99_ms)]
        charts = [
            chart(f"{s}: CPU", "millicores", _resource_series(s, samples, t0, "cpu_m"), cpu_rules, x_max, spans),
            chart(f"{s}: memory", "MiB", _resource_series(s, samples, t0, "memory_mib"), mem_rules, x_max, spans),
            chart(f"{s}: latency", "ms", _latency_series(s, buckets, t0), lat_rules, x_max, spans),
            chart(f"{s}: throughput", "requests/s", _throughput_series(s, buckets, t0), [], x_max, spans),
        ]
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in v.notes)
        sections.append(f'<section class="service" id="{html.escape(s)}"><h2>{html.escape(s)} — '
                        f'{"PASS" if v.passed else "FAIL"}</h2><ul class="notes">{notes}</ul>'
                        f'<div class="charts">{"".join(charts)}</div></section>')
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.get("notes", []))
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t0)) if t0 else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>aether-sandbox load run: {html.escape(result['profile'])}</title>
<style>{CSS}</style></head><body>
<h1>Load run <code>{html.escape(result['profile'])}</code> — {"PASS" if passed else "FAIL"}</h1>
<p>{when}; runtime {html.escape(result.get('runtime', ''))}; {len(verdicts)} service(s); run directory
<code>{html.escape(result.get('run_dir', ''))}</code>. Nominal stages (blue) are judged against each service's
request, peak stages (orange) against its limit, ramps (grey) are not judged.</p>
<table class="verdicts"><thead><tr><th>service</th><th>phase</th><th>verdict</th><th>ok req/s</th>
<th>p95 / p99 ms</th><th>errors</th><th>CPU mean</th><th>memory max</th><th>reasons</th></tr></thead>
<tbody>
{_verdict_rows(verdicts)}
</tbody></table>
<ul class="notes">{notes}</ul>
{"".join(sections)}
</body></html>
"""
