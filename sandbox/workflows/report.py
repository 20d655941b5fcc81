"""report-generation: the daily trading report as self-contained HTML and CSV.

Trading (from the OMS database): orders by state, fills, notional, fees and
realised P&L (average cost, fees in the quote currency) per account, strategy
and symbol.  Market data (from the mirrored tables): per symbol, trades, top-of-
book rows and 1-minute bars, their first and last exchange time, and the gaps:
trade-id jumps, missing bars, silences in the book longer than
:data:`BOOK_SILENCE_S`.

The day is ``report_date`` (UTC), by default the day of the latest activity
(fill, order or mirrored record).  Files: ``trading-report-<day>.html``,
``-pnl.csv`` and ``-coverage.csv`` in the reports directory (rewritten by a rerun).
"""

from __future__ import annotations

import csv
import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandbox.workflows.base import WorkflowResult
from sandbox.workflows.marketdata import ensure_schema
from sandbox.workflows.pnl import Book, pnl_books
from sandbox.workflows.settings import WorkflowSettings

log = logging.getLogger("sandbox.workflows.report")

#: A book with no update for longer than this (seconds) counts as a gap.
BOOK_SILENCE_S = 60

COVERAGE_COLUMNS = (
    "symbol", "trades", "first_trade", "last_trade", "trade_id_gaps", "missing_trades",
    "book_rows", "first_book", "last_book", "book_silences", "longest_book_silence_s",
    "ohlc_bars", "missing_bars",
)
PNL_COLUMNS = ("account", "strategy", "symbol", "orders", "fills", "bought", "sold", "notional", "fees", "fee_currencies",
               "realised_pnl", "net_pnl", "position")

_COVERAGE_SQL = """
WITH t AS (
    SELECT symbol, ts, trade_id, trade_id - lag(trade_id) OVER (PARTITION BY symbol ORDER BY trade_id) AS step
    FROM market_trades WHERE ts >= %(start)s AND ts < %(end)s
), trades AS (
    SELECT symbol, count(*) AS n, min(ts) AS first, max(ts) AS last,
           count(*) FILTER (WHERE step > 1) AS gaps, coalesce(sum(step - 1) FILTER (WHERE step > 1), 0) AS missing
    FROM t GROUP BY symbol
), b AS (
    SELECT symbol, ts, extract(epoch FROM ts - lag(ts) OVER (PARTITION BY symbol ORDER BY ts)) AS gap
    FROM market_top_of_book WHERE ts >= %(start)s AND ts < %(end)s
), books AS (
    SELECT symbol, count(*) AS n, min(ts) AS first, max(ts) AS last,
           count(*) FILTER (WHERE gap > %(silence)s) AS silences, coalesce(max(gap), 0) AS longest
    FROM b GROUP BY symbol
), bars AS (
    SELECT symbol, count(DISTINCT ts) AS n,
           CASE WHEN count(*) = 0 THEN 0 ELSE
               (extract(epoch FROM max(ts) - min(ts)) / 60)::bigint + 1 - count(DISTINCT ts) END AS missing
    FROM market_ohlc WHERE interval_min = 1 AND ts >= %(start)s AND ts < %(end)s GROUP BY symbol
), symbols AS (SELECT symbol FROM trades UNION SELECT symbol FROM books UNION SELECT symbol FROM bars)
SELECT s.symbol, coalesce(trades.n, 0), trades.first, trades.last, coalesce(trades.gaps, 0), coalesce(trades.missing, 0),
       coalesce(books.n, 0), books.first, books.last, coalesce(books.silences, 0), coalesce(books.longest, 0),
       coalesce(bars.n, 0), coalesce(bars.missing, 0)
FROM symbols s LEFT JOIN trades USING (symbol) LEFT JOIN books USING (symbol) LEFT JOIN bars USING (symbol)
ORDER BY s.symbol
"""


@dataclass
class Report:
    """Everything the report shows."""

    day: date
    generated_at: datetime
    oms_available: bool
    orders_by_state: dict[str, int] = field(default_factory=dict)
    books: list[Book] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, Any]:
        """Fills, notional, fees and P&L over every book."""
        return {
            "orders": sum(self.orders_by_state.values()),
            "fills": sum(b.fills for b in self.books),
            "notional": sum((b.notional for b in self.books), Decimal(0)),
            "fees": sum((b.fees for b in self.books), Decimal(0)),
            "realised_pnl": sum((b.realised_pnl for b in self.books), Decimal(0)),
            "net_pnl": sum((b.net_pnl for b in self.books), Decimal(0)),
            "trades": sum(c["trades"] for c in self.coverage),
            "book_rows": sum(c["book_rows"] for c in self.coverage),
            "ohlc_bars": sum(c["ohlc_bars"] for c in self.coverage),
        }


def _bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), UTC)
    return start, start + timedelta(days=1)


def _connect_oms(settings: WorkflowSettings) -> Any | None:
    import psycopg

    if not settings.oms_database_url:
        return None
    try:
        conn = psycopg.connect(settings.oms_database_url, connect_timeout=10)
    except psycopg.OperationalError as exc:
        log.info("no OMS database: %s", exc)
        return None
    if conn.execute("SELECT to_regclass('public.fills') IS NOT NULL AND to_regclass('public.orders') IS NOT NULL").fetchone()[0]:
        return conn
    conn.close()
    return None


def latest_day(md: Any, oms: Any | None) -> date:
    """The UTC day of the latest fill, order or mirrored record (today when there is none)."""
    stamps = [md.execute(f"SELECT max(ts) FROM {t}").fetchone()[0] for t in ("market_trades", "market_top_of_book", "market_ohlc")]  # noqa: S608
    if oms is not None:
        stamps += [oms.execute("SELECT max(ts) FROM fills").fetchone()[0], oms.execute("SELECT max(created_at) FROM orders").fetchone()[0]]
    known = [s for s in stamps if s is not None]
    return max(known).astimezone(UTC).date() if known else datetime.now(UTC).date()


def collect(settings: WorkflowSettings, day: date | None = None) -> Report:
    """Query the databases for the report of ``day`` (default: the latest day with activity)."""
    import psycopg

    oms = _connect_oms(settings)
    try:
        with psycopg.connect(settings.marketdata_database_url, connect_timeout=10) as md:
            ensure_schema(md)
            day = day or latest_day(md, oms)
            start, end = _bounds(day)
            rows = md.execute(_COVERAGE_SQL, {"start": start, "end": end, "silence": BOOK_SILENCE_S}).fetchall()
        report = Report(day, datetime.now(UTC), oms is not None)
        report.coverage = [dict(zip(COVERAGE_COLUMNS, r, strict=True)) for r in rows]
        for c in report.coverage:
            c["longest_book_silence_s"] = round(float(c["longest_book_silence_s"]), 3)
        if oms is None:
            report.notes.append("no OMS database with orders and fills in this sandbox (oms-service never ran): no trading to report")
            return report
        report.orders_by_state = dict(oms.execute(
            "SELECT state, count(*) FROM orders WHERE created_at >= %s AND created_at < %s GROUP BY state ORDER BY state", (start, end)
        ).fetchall())
        fills = oms.execute(
            "SELECT ts, account, strategy, symbol, side, qty, price, cost, fee, fee_currency FROM fills WHERE ts < %s ORDER BY ts, fill_id",
            (end,),
        ).fetchall()
        books = pnl_books(fills, start, end)
        for account, strategy, symbol, n in oms.execute(
            "SELECT account, coalesce(strategy, '—'), symbol, count(*) FROM orders WHERE created_at >= %s AND created_at < %s "
            "GROUP BY 1, 2, 3", (start, end)
        ).fetchall():
            books.setdefault((account, strategy, symbol), Book(account, strategy, symbol)).orders = int(n)
        report.books = [b for _, b in sorted(books.items()) if b.orders or b.fills]
        return report
    finally:
        if oms is not None:
            oms.close()


def pnl_rows(report: Report) -> list[dict[str, Any]]:
    """The P&L table's rows (per account, strategy and symbol)."""
    return [
        {"account": b.account, "strategy": b.strategy, "symbol": b.symbol, "orders": b.orders, "fills": b.fills,
         "bought": b.bought, "sold": b.sold, "notional": b.notional, "fees": b.fees,
         "fee_currencies": " ".join(sorted(b.fee_currencies)), "realised_pnl": b.realised_pnl, "net_pnl": b.net_pnl,
         "position": b.position.qty}
        for b in report.books
    ]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() or abs(value) >= 1 else format(value, "f")
    return str(value)


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """One CSV with a header row."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row[c]) for c in columns])


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1b1f24}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem}th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:right}td{white-space:nowrap}
th{background:#f6f8fa}td.l,th.l{text-align:left}.neg{color:#b42318}.pos{color:#067647}.note{color:#7a5a00}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{color:#57606a}
"""


def _cls(name: str) -> str:
    return f' class="{name}"' if name else ""


def _table(columns: tuple[str, ...], rows: list[dict[str, Any]], left: tuple[str, ...], signed: tuple[str, ...] = ()) -> str:
    head = "".join(f'<th{_cls("l" if c in left else "")}>{html.escape(c.replace("_", " "))}</th>' for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row[c]
            cls = "l" if c in left else ""
            if c in signed and isinstance(value, Decimal) and value:
                cls = "neg" if value < 0 else "pos"
            cells.append(f"<td{_cls(cls)}>{html.escape(_cell(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        body.append(f'<tr><td class="l" colspan="{len(columns)}">none</td></tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page (inline CSS, no scripts, no external resources)."""
    t = report.totals
    summary = "".join(f"<dt>{html.escape(k.replace('_', ' '))}</dt><dd>{html.escape(_cell(v))}</dd>" for k, v in t.items())
    states = ", ".join(f"{html.escape(s)}: {n}" for s, n in report.orders_by_state.items()) or "none"
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in report.notes)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Trading report {report.day}</title>'
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Aether daily trading report — {report.day} (UTC)</h1>"
        f"<p>Generated {html.escape(_cell(report.generated_at))} by the sandbox's report-generation workflow.</p>{notes}"
        f"<h2>Summary</h2><dl>{summary}</dl><p>Orders by state: {states}</p>"
        f"<h2>Orders, fills, fees and P&amp;L per account, strategy and symbol</h2>"
        + _table(PNL_COLUMNS, pnl_rows(report), ("account", "strategy", "symbol", "fee_currencies"), ("realised_pnl", "net_pnl"))
        + "<p>P&amp;L is realised by average cost over every fill to the end of the day; fees are in the quote currency.</p>"
        "<h2>Market-data coverage and gaps (mirrored Kraken data)</h2>"
        + _table(COVERAGE_COLUMNS, report.coverage, ("symbol", "first_trade", "last_trade", "first_book", "last_book"))
        + f"<p>Gaps: trade-id jumps (trades Kraken numbered but the mirror never saw), missing 1-minute bars between "
        f"the first and the last, and book silences longer than {BOOK_SILENCE_S} s.</p></body></html>"
    )


def write(report: Report, directory: Path) -> dict[str, Path]:
    """Write the HTML and the two CSVs; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"trading-report-{report.day.isoformat()}"
    paths = {"html": directory / f"{stem}.html", "pnl_csv": directory / f"{stem}-pnl.csv", "coverage_csv": directory / f"{stem}-coverage.csv"}
    paths["html"].write_text(render_html(report), encoding="utf-8")
    write_csv(paths["pnl_csv"], PNL_COLUMNS, pnl_rows(report))
    write_csv(paths["coverage_csv"], COVERAGE_COLUMNS, report.coverage)
    return paths


def generate(settings: WorkflowSettings, progress: Callable[[str], None] | None = None) -> WorkflowResult:
    """Collect, render and write the report of ``settings.report_date`` (or the latest day with activity)."""
    report = collect(settings, settings.report_date)
    paths = write(report, settings.reports_dir.absolute())
    if progress:
        progress(f"report for {report.day} written to {paths['html']}")
    totals = {k: _cell(v) for k, v in report.totals.items()}
    return WorkflowResult(
        records=len(report.books) + len(report.coverage),
        detail={"day": report.day.isoformat(), **{k: str(p) for k, p in paths.items()}, "totals": totals, "notes": report.notes},
    )
