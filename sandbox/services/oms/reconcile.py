"""Reconciliation: the venue's orders, fills and balances against the OMS database, repaired and reported.

One run (at start-up, on ``POST /v1/reconcile``, optionally periodically):

1. **Orders.** Every open OMS order is compared with the venue
   (``OpenOrders``, then ``QueryOrders`` for those no longer open): missing
   fills are applied, orders the venue closed are marked ``filled`` /
   ``canceled`` / ``expired``, unacknowledged ones are looked up by client
   order id. Open venue orders the OMS does not know are adopted.
2. **Fills.** ``TradesHistory`` since the last run (less a margin; the first
   run looks ``OMS_RECONCILE_LOOKBACK_S`` back) against the ``fills`` table:
   missing fills are applied (their orders adopted if unknown).
3. **Balances.** ``Balance`` against the OMS's balances (the venue account's,
   moved by fills since the last run): differences are recorded and the OMS
   takes the venue's figures. The first run only records them.

Each difference is a row of ``reconciliation_differences`` with what was done.
Runs are serialised per process (a lock) and safe to overlap across replicas:
every repair is idempotent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timezone
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sandbox.services.oms import states, store
from sandbox.services.oms.instruments import asset_display
from sandbox.services.oms.kraken_client import KrakenClient
from sandbox.services.oms.store import OrderRecord
from sandbox.services.oms.tracker import OrderTracker
from sandbox.services.oms.venue_reports import ReportError, rest_fill, venue_order

log = logging.getLogger("sandbox.services.oms.reconcile")

#: TradesHistory starts this long before the previous run (fills can be reported late).
MARGIN_S = 300.0
_REC_COLUMNS = "id, trigger, requested_by, started_at, finished_at, status, summary, error"


def balance_places(asset: str) -> int:
    """Decimals the venue shows for an asset's balance (4 for fiat, 10 otherwise)."""
    return 4 if asset_display(asset) in ("USD", "EUR", "GBP", "CAD", "JPY", "CHF", "AUD") else 10


def truncate(value: Decimal, places: int) -> Decimal:
    """``value`` truncated to ``places`` decimals (how the venue writes balances)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def compare_balances(ours: dict[str, Decimal], venue: dict[str, Decimal]) -> list[tuple[str, Decimal, Decimal]]:
    """``(asset, ours, venue)`` for every asset whose balances differ at the venue's precision."""
    out = []
    for asset in sorted(set(ours) | set(venue)):
        places = balance_places(asset)
        mine = truncate(ours.get(asset, Decimal(0)), places)
        theirs = truncate(venue.get(asset, Decimal(0)), places)
        if mine != theirs:
            out.append((asset, mine, theirs))
    return out


class Reconciler:
    """Runs reconciliations and records them."""

    def __init__(self, tracker: OrderTracker, *, resolve: Any, lookback_s: float) -> None:
        """``resolve(order)`` looks up an unacknowledged order (``OrderService.resolve``)."""
        self.tracker = tracker
        self.pool = tracker.pool
        self.resolve = resolve
        self.lookback_s = lookback_s
        self._lock = asyncio.Lock()
        self.last: dict[str, Any] | None = None

    async def run(self, trigger: str, requested_by: str, lookback_s: float | None = None) -> dict[str, Any]:
        """One reconciliation; returns its record (with differences). Never raises for venue trouble."""
        async with self._lock:
            rec_id = await self.pool.fetchval(
                "INSERT INTO reconciliations (trigger, requested_by, status) VALUES ($1, $2, 'running') RETURNING id",
                trigger, requested_by,
            )
            diffs: list[dict[str, Any]] = []
            summary: dict[str, Any] = {}
            status, error = "ok", None
            try:
                client = self.tracker.kraken()
                if client is None:
                    raise RuntimeError("no venue API key pair")
                if not len(self.tracker.catalog()):
                    raise RuntimeError("the venue's instruments are not loaded")
                start = await self._trades_start(lookback_s)
                summary.update(await self._orders(client, diffs))
                summary.update(await self._fills(client, diffs, start))
                summary.update(await self._balances(client, diffs))
            except Exception as exc:  # noqa: BLE001 - recorded as a failed run
                status, error = "failed", f"{type(exc).__name__}: {exc}"
                log.warning("reconciliation failed", extra={"error": error, "trigger": trigger})
            summary["differences"] = len(diffs)
            for d in diffs:
                self.tracker._count("differences", d["kind"])  # noqa: SLF001 - the tracker owns the counters
            summary["repaired"] = sum(1 for d in diffs if d["action"] not in ("none", "reported"))
            await self._save(rec_id, status, summary, error, diffs)
            record = await get_reconciliation(self.pool, rec_id)
            assert record is not None
            self.last = record
            log.info("reconciliation done", extra={"id": rec_id, "status": status, "differences": len(diffs)})
            return record

    async def _trades_start(self, lookback_s: float | None) -> float:
        now = datetime.now(timezone.utc).timestamp()
        if lookback_s is not None:
            return now - lookback_s
        previous = await self.pool.fetchval(
            "SELECT max(started_at) FROM reconciliations WHERE status = 'ok'")
        if previous is None:
            return now - self.lookback_s
        return previous.timestamp() - MARGIN_S

    async def _orders(self, client: KrakenClient, diffs: list[dict[str, Any]]) -> dict[str, Any]:
        venue_open = await client.open_orders(trades=True)
        ours = await store.open_orders(self.pool)
        by_txid = {o.txid: o for o in ours if o.txid}
        gone = [o for o in ours if o.txid and o.txid not in venue_open]
        infos = await client.query_orders([o.txid for o in gone if o.txid], trades=True) if gone else {}
        for order in ours:
            if order.txid is None:
                await self._unacknowledged(order, diffs)
                continue
            info = venue_open.get(order.txid) or infos.get(order.txid)
            if info is None:
                # The venue does not know the txid at all (QueryOrders: EOrder:Invalid order): nothing is live.
                after = await self.tracker.move(order, states.CANCELED, "missing_at_venue",
                                                detail={"source": "reconcile"})
                diffs.append(_diff("order_missing_at_venue", after, expected=order.state, actual=after.state,
                                   action="canceled" if after.state == states.CANCELED else "reported"))
                continue
            before = (order.state, order.filled_qty)
            after, changes = await self.tracker.sync(order, venue_order(order.txid, info), source="reconcile")
            if changes:
                diffs.append(_diff("order_state_mismatch", after, expected=f"{before[0]} {before[1]}",
                                   actual=f"{after.state} {after.filled_qty}", action="repaired",
                                   detail={"changes": changes, "venue_status": info.get("status")}))
        adopted = 0
        for txid, info in venue_open.items():
            if txid in by_txid:
                continue
            report = venue_order(txid, info)
            known = await store.find_venue_order(self.pool, txid, report.cl_ord_id)
            if known is not None:
                if known.txid is None:
                    await self.tracker.sync(known, report, source="reconcile")
                    diffs.append(_diff("order_missing_txid", known, txid=txid, action="repaired"))
                continue
            order = await self.tracker.adopt(report, source="reconcile")
            adopted += order is not None
            diffs.append({"kind": "unknown_venue_order", "order_id": order.id if order else None, "txid": txid,
                          "action": "adopted" if order else "reported",
                          "detail": {"pair": report.pair, "side": report.side, "vol": format(report.vol, "f"),
                                     "cl_ord_id": report.cl_ord_id}})
        return {"venue_open_orders": len(venue_open), "oms_open_orders": len(ours), "adopted": adopted}

    async def _unacknowledged(self, order: OrderRecord, diffs: list[dict[str, Any]]) -> None:
        age = (datetime.now(timezone.utc) - order.created_at).total_seconds() if order.created_at else 1e9
        if age < 10:
            return  # AddOrder may still be in flight
        after = await self.resolve(order)
        diffs.append(_diff("order_unacknowledged", after, expected=states.PENDING_NEW, actual=after.state,
                           action="repaired" if after.state != states.PENDING_NEW else "none"))

    async def _fills(self, client: KrakenClient, diffs: list[dict[str, Any]], start: float) -> dict[str, Any]:
        trades = await client.all_trades(start=start)
        known = await store.known_fill_ids(self.pool, list(trades)) if trades else set()
        missing = sorted(((tid, info) for tid, info in trades.items() if tid not in known),
                         key=lambda kv: Decimal(str(kv[1].get("time", "0"))))
        orders: dict[str, OrderRecord | None] = {}
        applied = 0
        for trade_id, info in missing:
            txid = str(info.get("ordertxid", ""))
            if txid not in orders:
                orders[txid] = await self._order_for_trade(client, txid)
            order = orders[txid]
            inst = self.tracker.instrument(order) if order else None
            if order is None or inst is None:
                diffs.append({"kind": "missing_fill", "txid": txid, "fill_id": trade_id, "action": "reported",
                              "detail": {"error": "the order could not be adopted"}})
                continue
            # the adoption may have recorded this fill already
            if await store.known_fill_ids(self.pool, [trade_id]):
                continue
            try:
                fill = rest_fill(trade_id, info, order, inst, source="reconcile")
            except ReportError as exc:
                diffs.append({"kind": "missing_fill", "txid": txid, "fill_id": trade_id, "action": "reported",
                              "detail": {"error": str(exc)}})
                continue
            outcome = await self.tracker.record_fill(fill, inst)
            if outcome is not None and outcome.fill is not None:
                applied += 1
                diffs.append(_diff("missing_fill", outcome.order, fill_id=trade_id, action="applied",
                                   actual=f"{format(fill.qty, 'f')} @ {format(fill.price, 'f')}",
                                   detail={"state": outcome.order.state, "ts": fill.ts.isoformat()}))
            orders[txid] = outcome.order if outcome else order
        # Orders whose missing fills completed them, or that closed meanwhile: bring the state in line.
        for txid, order in orders.items():
            if order is not None and not states.is_terminal(order.state):
                infos = await client.query_orders([txid], trades=True)
                if txid in infos:
                    await self.tracker.sync(order, venue_order(txid, infos[txid]), source="reconcile")
        return {"venue_trades": len(trades), "missing_fills": applied, "trades_since": start}

    async def _order_for_trade(self, client: KrakenClient, txid: str) -> OrderRecord | None:
        order = await store.get_by_txid(self.pool, txid)
        if order is not None:
            return order
        infos = await client.query_orders([txid], trades=True)
        if txid not in infos:
            return None
        report = venue_order(txid, infos[txid])
        known = await store.find_venue_order(self.pool, txid, report.cl_ord_id)
        if known is not None:
            return known
        return await self.tracker.adopt(report, source="reconcile")

    async def _balances(self, client: KrakenClient, diffs: list[dict[str, Any]]) -> dict[str, Any]:
        venue = await client.balance()
        ours = await store.balances(self.pool)
        if not ours:
            await store.set_balances(self.pool, venue)
            return {"balances": "initialised", "assets": len(venue)}
        mismatches = compare_balances(ours, venue)
        for asset, mine, theirs in mismatches:
            diffs.append({"kind": "balance_mismatch", "asset": asset, "expected": format(mine, "f"),
                          "actual": format(theirs, "f"), "action": "set_to_venue",
                          "detail": {"difference": format(theirs - mine, "f")}})
        if mismatches:
            await store.set_balances(self.pool, {a: venue.get(a, Decimal(0)) for a, _, _ in mismatches})
        return {"balances": "compared", "assets": len(set(ours) | set(venue)), "balance_mismatches": len(mismatches)}

    async def _save(self, rec_id: int, status: str, summary: dict[str, Any], error: str | None,
                    diffs: list[dict[str, Any]]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE reconciliations SET status = $2, summary = $3::jsonb, error = $4, finished_at = now() "
                "WHERE id = $1", rec_id, status, json.dumps(summary, default=str), error,
            )
            if diffs:
                await conn.executemany(
                    "INSERT INTO reconciliation_differences (reconciliation_id, kind, order_id, txid, fill_id, asset, "
                    "expected, actual, action, detail) VALUES ($1, $2, $3::uuid, $4, $5, $6, $7, $8, $9, $10::jsonb)",
                    [(rec_id, d["kind"], d.get("order_id"), d.get("txid"), d.get("fill_id"), d.get("asset"),
                      d.get("expected"), d.get("actual"), d["action"], json.dumps(d.get("detail"), default=str))
                     for d in diffs],
                )


def _diff(kind: str, order: OrderRecord, *, action: str, txid: str | None = None, fill_id: str | None = None,
          expected: str | None = None, actual: str | None = None, detail: Any = None) -> dict[str, Any]:
    return {"kind": kind, "order_id": order.id, "txid": txid or order.txid, "fill_id": fill_id,
            "expected": expected, "actual": actual, "action": action, "detail": detail}


def _record(row: Any, diffs: list[Any]) -> dict[str, Any]:
    summary = row["summary"]
    return {
        "id": row["id"], "trigger": row["trigger"], "requested_by": row["requested_by"],
        "started_at": row["started_at"], "finished_at": row["finished_at"], "status": row["status"],
        "summary": json.loads(summary) if isinstance(summary, str) else summary, "error": row["error"],
        "differences": [
            {"kind": d["kind"], "order_id": str(d["order_id"]) if d["order_id"] else None, "txid": d["txid"],
             "fill_id": d["fill_id"], "asset": d["asset"], "expected": d["expected"], "actual": d["actual"],
             "action": d["action"], "detail": json.loads(d["detail"]) if d["detail"] else None}
            for d in diffs
        ],
    }


async def get_reconciliation(db: Any, rec_id: int) -> dict[str, Any] | None:
    """One run with its differences."""
    row = await db.fetchrow(f"SELECT {_REC_COLUMNS} FROM reconciliations WHERE id = $1", rec_id)
    if row is None:
        return None
    diffs = await db.fetch("SELECT * FROM reconciliation_differences WHERE reconciliation_id = $1 ORDER BY id", rec_id)
    return _record(row, diffs)


async def list_reconciliations(db: Any, limit: int, before: int | None = None) -> list[dict[str, Any]]:
    """Runs newest first, each with its differences."""
    rows = await db.fetch(
        f"SELECT {_REC_COLUMNS} FROM reconciliations WHERE ($1::bigint IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        before, limit,
    )
    if not rows:
        return []
    diffs = await db.fetch(
        "SELECT * FROM reconciliation_differences WHERE reconciliation_id = ANY($1::bigint[]) ORDER BY id",
        [r["id"] for r in rows],
    )
    by_run: dict[int, list[Any]] = {}
    for d in diffs:
        by_run.setdefault(d["reconciliation_id"], []).append(d)
    return [_record(r, by_run.get(r["id"], [])) for r in rows]
