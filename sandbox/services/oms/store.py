"""PostgreSQL access of oms-service: orders and their transitions, fills, positions, balances.

Every write that changes an order's state inserts its transition in the same
statement or transaction, so the history never misses a step and never shows
one that did not happen. State changes are conditional on the state read
(``UPDATE ... WHERE state = $expected``) or made under ``SELECT ... FOR UPDATE``,
so replicas processing the same venue events cannot apply one twice.
The hot path (create, acknowledge) is one round trip per write.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.services.oms import states
from sandbox.services.oms.ownership import tagged_order_id

ZERO = Decimal(0)

ORDER_COLUMNS = (
    "id, account, strategy, client_order_id, symbol, pair, side, type, qty, price, post_only, userref, "
    "reference_price, state, txid, filled_qty, filled_cost, fees, fee_currency, estimated_fee, reasons, "
    "capital_reserved, capital_state, cancel_requested, source, created_by, created_at, updated_at"
)


_FIELDS = tuple(c.strip() for c in ORDER_COLUMNS.split(","))


# Order ids are passed to asyncpg as the canonical strings this module made (``new_order_id``, ``from_row``):
# its uuid codec parses a str in C, where a ``uuid.UUID`` costs a Python object and its ``bytes`` property.


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, separators=(",", ":"))


@dataclass
class OrderRecord:
    """One order row."""

    id: str
    account: str
    client_order_id: str
    symbol: str
    pair: str
    side: str
    type: str
    qty: Decimal
    created_by: str
    strategy: str | None = None
    price: Decimal | None = None
    post_only: bool = False
    userref: int | None = None
    reference_price: Decimal | None = None
    state: str = states.PENDING_NEW
    txid: str | None = None
    filled_qty: Decimal = ZERO
    filled_cost: Decimal = ZERO
    fees: Decimal = ZERO
    fee_currency: str | None = None
    estimated_fee: Decimal | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    capital_reserved: Decimal | None = None
    capital_state: str | None = None
    cancel_requested: bool = False
    source: str = "api"
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def remaining_qty(self) -> Decimal:
        """What is still to be executed (zero once terminal)."""
        return ZERO if states.is_terminal(self.state) else max(ZERO, self.qty - self.filled_qty)

    @property
    def avg_price(self) -> Decimal | None:
        """Average execution price (None before the first fill)."""
        return self.filled_cost / self.filled_qty if self.filled_qty > 0 else None

    @classmethod
    def from_row(cls, row: Any) -> OrderRecord:
        """From a row selected with :data:`ORDER_COLUMNS`."""
        data = {k: row[k] for k in _FIELDS}  # every field: the dataclass __init__ (29 arguments) is skipped
        data["id"] = str(data["id"])
        data["reasons"] = json.loads(data["reasons"]) if isinstance(data["reasons"], str) else data["reasons"] or []
        order = object.__new__(cls)
        order.__dict__ = data
        return order

    def public(self, transitions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """The ``OrderPublic`` document."""
        return {
            "id": self.id, "account": self.account, "strategy": self.strategy,
            "client_order_id": self.client_order_id, "symbol": self.symbol, "side": self.side, "type": self.type,
            "qty": self.qty, "price": self.price, "post_only": self.post_only, "userref": self.userref,
            "reference_price": self.reference_price, "state": self.state, "txid": self.txid,
            "filled_qty": self.filled_qty, "remaining_qty": self.remaining_qty, "avg_price": self.avg_price,
            "fees": self.fees, "fee_currency": self.fee_currency, "estimated_fee": self.estimated_fee,
            "reasons": self.reasons, "capital_reserved": self.capital_reserved, "source": self.source,
            "created_by": self.created_by, "created_at": self.created_at, "updated_at": self.updated_at,
            "transitions": transitions,
        }


@dataclass(frozen=True)
class Transition:
    """A recorded state change (``id`` orders the events of ``oms.orders``)."""

    id: int
    order_id: str
    from_state: str | None
    to_state: str
    reason: str
    at: datetime
    detail: Any = None


@dataclass(frozen=True)
class FillRecord:
    """One execution."""

    fill_id: str
    order_id: str
    account: str
    strategy: str | None
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    cost: Decimal
    fee: Decimal
    fee_currency: str
    fee_asset: str
    liquidity: str
    ts: datetime
    source: str

    def event(self, client_order_id: str) -> dict[str, Any]:
        """The ``oms.fills`` message."""
        return {
            "fill_id": self.fill_id, "order_id": self.order_id, "client_order_id": client_order_id,
            "account": self.account, "strategy": self.strategy, "symbol": self.symbol, "side": self.side,
            "qty": format(self.qty, "f"), "price": format(self.price, "f"), "cost": format(self.cost, "f"),
            "fee": format(self.fee, "f"), "fee_currency": self.fee_currency, "liquidity": self.liquidity,
            "ts": self.ts.isoformat(),
        }


@dataclass
class FillOutcome:
    """What recording a fill did."""

    order: OrderRecord
    fill: FillRecord | None  # None: already recorded (a duplicate report)
    transition: Transition | None = None


def new_order_id(tag: str | None = None) -> str:
    """A fresh order id (a random UUID; also the venue ``cl_ord_id``), ending in the placing replica's ``tag``
    when given (:mod:`.ownership`)."""
    return tagged_order_id(tag) if tag else str(uuid.uuid4())


# -- orders ------------------------------------------------------------------------------------

_INSERT_ORDER = f"""
WITH o AS (
    INSERT INTO orders (id, account, strategy, client_order_id, symbol, pair, side, type, qty, price, post_only,
                        userref, reference_price, state, txid, filled_qty, filled_cost, fees, fee_currency,
                        estimated_fee, reasons, capital_reserved, capital_state, source, created_by)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21::jsonb,
            $22, $23, $24, $25)
    ON CONFLICT DO NOTHING
    RETURNING {ORDER_COLUMNS}
), t AS (
    INSERT INTO order_transitions (order_id, from_state, to_state, reason, detail)
    SELECT o.id, s.f, s.t, s.r, s.d::jsonb
    FROM o, unnest($26::text[], $27::text[], $28::text[], $29::text[]) WITH ORDINALITY AS s(f, t, r, d, n)
    ORDER BY s.n
    RETURNING id, from_state, to_state, reason, detail, at
)
SELECT o.*, (SELECT json_agg(t ORDER BY t.id) FROM t)::text AS steps FROM o
"""


def _transitions_from_json(order_id: str, items: list[dict[str, Any]] | None) -> list[Transition]:
    return [Transition(int(t["id"]), order_id, t["from_state"], t["to_state"], t["reason"],
                       datetime.fromisoformat(t["at"]), t.get("detail")) for t in items or []]


async def insert_order(db: Any, rec: OrderRecord,
                       steps: list[tuple[str | None, str, str, Any]]) -> tuple[OrderRecord, list[Transition]] | None:
    """Insert ``rec`` and its first transitions ``(from, to, reason, detail)`` in one statement.

    Returns None when an order with the same id or ``(account, client_order_id)`` exists.
    """
    row = await db.fetchrow(
        _INSERT_ORDER, rec.id, rec.account, rec.strategy, rec.client_order_id, rec.symbol, rec.pair,
        rec.side, rec.type, rec.qty, rec.price, rec.post_only, rec.userref, rec.reference_price, rec.state, rec.txid,
        rec.filled_qty, rec.filled_cost, rec.fees, rec.fee_currency, rec.estimated_fee, _json(rec.reasons),
        rec.capital_reserved, rec.capital_state, rec.source, rec.created_by,
        [s[0] for s in steps], [s[1] for s in steps], [s[2] for s in steps], [_json(s[3]) for s in steps],
    )
    if row is None:
        return None
    order = OrderRecord.from_row(row)
    return order, _transitions_from_json(order.id, json.loads(row["steps"]) if row["steps"] else [])


async def get_order(db: Any, order_id: str) -> OrderRecord | None:
    """An order by id (None for an unknown or malformed id)."""
    try:
        key = uuid.UUID(order_id)
    except ValueError:
        return None
    row = await db.fetchrow(f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1", key)
    return OrderRecord.from_row(row) if row else None


async def get_by_client_id(db: Any, account: str, client_order_id: str) -> OrderRecord | None:
    """An order by its account and client order id."""
    row = await db.fetchrow(f"SELECT {ORDER_COLUMNS} FROM orders WHERE account = $1 AND client_order_id = $2",
                            account, client_order_id)
    return OrderRecord.from_row(row) if row else None


async def get_by_txid(db: Any, txid: str) -> OrderRecord | None:
    """An order by the venue's txid."""
    row = await db.fetchrow(f"SELECT {ORDER_COLUMNS} FROM orders WHERE txid = $1", txid)
    return OrderRecord.from_row(row) if row else None


async def find_venue_order(db: Any, txid: str | None, cl_ord_id: str | None) -> OrderRecord | None:
    """The OMS order a venue report is about: by txid, else by ``cl_ord_id`` (= the OMS order id)."""
    if txid:
        found = await get_by_txid(db, txid)
        if found is not None:
            return found
    if cl_ord_id:
        return await get_order(db, cl_ord_id)
    return None


async def list_orders(db: Any, *, account: str | None = None, state: str | None = None, strategy: str | None = None,
                      symbol: str | None = None, limit: int = 100, before: OrderRecord | None = None) -> list[OrderRecord]:
    """Orders newest first, filtered; ``before`` continues after that order."""
    clauses, args = [], []
    for column, value in (("account", account), ("state", state), ("strategy", strategy), ("symbol", symbol)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    if before is not None:
        args.extend([before.created_at, uuid.UUID(before.id)])
        clauses.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = await db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders {where} ORDER BY created_at DESC, id DESC LIMIT ${len(args)}", *args
    )
    return [OrderRecord.from_row(r) for r in rows]


async def open_orders(db: Any, *, account: str | None = None, strategy: str | None = None,
                      symbol: str | None = None) -> list[OrderRecord]:
    """Every non-terminal order, optionally of one account / strategy / symbol, oldest first."""
    clauses, args = ["state IN ('pending_new', 'new', 'partially_filled')"], []
    for column, value in (("account", account), ("strategy", strategy), ("symbol", symbol)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    rows = await db.fetch(
        f"SELECT {ORDER_COLUMNS} FROM orders WHERE {' AND '.join(clauses)} ORDER BY created_at", *args
    )
    return [OrderRecord.from_row(r) for r in rows]


async def known_accounts(db: Any) -> list[str]:
    """Accounts with at least one order (for the kill-switch state at start-up)."""
    return [r["account"] for r in await db.fetch("SELECT DISTINCT account FROM orders")]


async def transitions_of(db: Any, order_id: str) -> list[Transition]:
    """An order's state history, oldest first."""
    rows = await db.fetch(
        "SELECT id, order_id, from_state, to_state, reason, detail, at FROM order_transitions "
        "WHERE order_id = $1 ORDER BY id", uuid.UUID(order_id),
    )
    return [Transition(r["id"], str(r["order_id"]), r["from_state"], r["to_state"], r["reason"], r["at"],
                       json.loads(r["detail"]) if r["detail"] else None) for r in rows]


_TRANSITION = f"""
WITH u AS (
    UPDATE orders SET state = $3, updated_at = now(), txid = COALESCE($6, txid),
           reasons = CASE WHEN $7::jsonb IS NULL THEN reasons ELSE reasons || $7::jsonb END
    WHERE id = $1 AND state = $2
    RETURNING {ORDER_COLUMNS}
), t AS (
    INSERT INTO order_transitions (order_id, from_state, to_state, reason, detail)
    SELECT id, $2, $3, $4, $5::jsonb FROM u
    RETURNING id, at
)
SELECT u.*, t.id AS tid, t.at AS tat FROM u, t
"""


async def transition(db: Any, order: OrderRecord, target: str, reason: str, *, detail: Any = None,
                     txid: str | None = None, add_reasons: list[dict[str, Any]] | None = None,
                     ) -> tuple[OrderRecord, Transition] | None:
    """Move ``order`` (as read) to ``target`` and record it; None when its state changed meanwhile.

    Raises :class:`~sandbox.services.oms.states.InvalidTransition` for a move the machine forbids.
    """
    states.check_transition(order.state, target)
    row = await db.fetchrow(_TRANSITION, order.id, order.state, target, reason, _json(detail), txid,
                            _json(add_reasons) if add_reasons else None)
    if row is None:
        return None
    return OrderRecord.from_row(row), Transition(row["tid"], order.id, order.state, target, reason, row["tat"], detail)


async def set_txid(db: Any, order_id: str, txid: str) -> None:
    """Record the venue txid of an order that has none yet."""
    await db.execute("UPDATE orders SET txid = $2, updated_at = now() WHERE id = $1 AND txid IS NULL",
                     uuid.UUID(order_id), txid)


async def set_cancel_requested(db: Any, order_id: str) -> None:
    """Remember that a cancel was asked for before the venue acknowledged the order."""
    await db.execute("UPDATE orders SET cancel_requested = true, updated_at = now() WHERE id = $1",
                     uuid.UUID(order_id))


async def set_capital(db: Any, order_id: str, state: str, reserved: Decimal | None = None) -> None:
    """Record the allocator reservation's state (and amount when given)."""
    await db.execute(
        "UPDATE orders SET capital_state = $2, capital_reserved = COALESCE($3, capital_reserved) WHERE id = $1",
        uuid.UUID(order_id), state, reserved,
    )


# -- fills -------------------------------------------------------------------------------------

async def record_fill(pool: Any, fill: FillRecord, *, base: str, quote: str, txid: str | None = None,
                      venue_state: str | None = None) -> FillOutcome | None:
    """Record one execution: the fill, the order's quantities and state, the position and balances.

    One call of the database function ``oms_record_fill`` (one round trip, one
    transaction, under the order's row lock). A fill already recorded changes
    nothing (``FillOutcome.fill`` is None). ``txid`` is recorded on an order
    that has none yet; ``venue_state`` is what the venue reported with the fill.
    Returns None when the order does not exist.
    """
    row = await pool.fetchrow(
        "SELECT r_inserted, r_from_state, r_transition_id, r_transition_at, r_order FROM oms_record_fill("
        "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        fill.fill_id, fill.order_id, txid, fill.side, fill.qty, fill.price, fill.cost, fill.fee,
        fill.fee_currency, fill.fee_asset, fill.liquidity, fill.ts, fill.source, base, quote, venue_state,
    )
    if row is None:
        return None
    order = OrderRecord.from_row(row["r_order"])
    if not row["r_inserted"]:
        return FillOutcome(order, None)
    step = None
    if row["r_transition_id"] is not None:
        detail = {"fill_id": fill.fill_id, "filled_qty": format(order.filled_qty, "f"), "venue_state": venue_state}
        step = Transition(row["r_transition_id"], order.id, row["r_from_state"], order.state, "fill",
                          row["r_transition_at"], detail)
    return FillOutcome(order, fill, step)


async def fills_of(db: Any, order_id: str) -> list[FillRecord]:
    """An order's fills, oldest first."""
    rows = await db.fetch(
        "SELECT fill_id, order_id, account, strategy, symbol, side, qty, price, cost, fee, fee_currency, fee_asset, "
        "liquidity, ts, source FROM fills WHERE order_id = $1 ORDER BY ts, fill_id", uuid.UUID(order_id),
    )
    return [FillRecord(**{**dict(r), "order_id": str(r["order_id"])}) for r in rows]


async def order_progress(db: Any, order_ids: list[str]) -> dict[str, tuple[str, Decimal]]:
    """``{order id: (state, filled_qty)}`` of those of ``order_ids`` (canonical UUID strings) that exist."""
    rows = await db.fetch("SELECT id::text, state, filled_qty FROM orders WHERE id = ANY($1::uuid[])", order_ids)
    return {r[0]: (r[1], r[2]) for r in rows}


async def known_fill_ids(db: Any, fill_ids: list[str]) -> set[str]:
    """Which of ``fill_ids`` are recorded."""
    rows = await db.fetch("SELECT fill_id FROM fills WHERE fill_id = ANY($1::text[])", fill_ids)
    return {r["fill_id"] for r in rows}


# -- positions and balances --------------------------------------------------------------------

async def positions(db: Any, account: str) -> list[dict[str, Any]]:
    """An account's positions by symbol."""
    rows = await db.fetch(
        "SELECT symbol, qty, avg_price, realized_pnl, fees, bought, sold, fills, updated_at FROM positions "
        "WHERE account = $1 ORDER BY symbol", account,
    )
    return [dict(r) for r in rows]


async def balances(db: Any) -> dict[str, Decimal]:
    """The OMS's view of the venue balances (empty before the first reconciliation)."""
    return {r["asset"]: r["amount"] for r in await db.fetch("SELECT asset, amount FROM balances")}


async def set_balances(db: Any, values: dict[str, Decimal]) -> None:
    """Replace the balances of the given assets."""
    await db.execute(
        """INSERT INTO balances (asset, amount, updated_at)
           SELECT a, v, now() FROM unnest($1::text[], $2::numeric[]) AS x(a, v)
           ON CONFLICT (asset) DO UPDATE SET amount = EXCLUDED.amount, updated_at = now()""",
        list(values), list(values.values()),
    )


# -- publication flags -------------------------------------------------------------------------

_MARK_PUBLISHED = """
WITH f AS (UPDATE fills SET published_at = now() WHERE fill_id = ANY($1::text[]))
UPDATE order_transitions SET published_at = now() WHERE id = ANY($2::bigint[])
"""


async def mark_published(db: Any, *, fill_ids: list[str] | None = None, transition_ids: list[int] | None = None) -> None:
    """Record that these events reached Kafka (one statement for both kinds: one round trip per flush)."""
    if fill_ids or transition_ids:
        await db.execute(_MARK_PUBLISHED, fill_ids or [], transition_ids or [])


async def unpublished_transitions(db: Any, older_than_s: float, limit: int = 500) -> list[Transition]:
    """Transitions not yet on Kafka, recorded more than ``older_than_s`` ago."""
    rows = await db.fetch(
        "SELECT id, order_id, from_state, to_state, reason, detail, at FROM order_transitions "
        "WHERE published_at IS NULL AND at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2",
        older_than_s, limit,
    )
    return [Transition(r["id"], str(r["order_id"]), r["from_state"], r["to_state"], r["reason"], r["at"],
                       json.loads(r["detail"]) if r["detail"] else None) for r in rows]


async def unpublished_fills(db: Any, older_than_s: float, limit: int = 500) -> list[tuple[FillRecord, str]]:
    """Fills not yet on Kafka (with their client order id), recorded more than ``older_than_s`` ago."""
    rows = await db.fetch(
        "SELECT f.fill_id, f.order_id, f.account, f.strategy, f.symbol, f.side, f.qty, f.price, f.cost, f.fee, "
        "f.fee_currency, f.fee_asset, f.liquidity, f.ts, f.source, o.client_order_id FROM fills f "
        "JOIN orders o ON o.id = f.order_id WHERE f.published_at IS NULL "
        "AND f.recorded_at < now() - make_interval(secs => $1) ORDER BY f.recorded_at LIMIT $2",
        older_than_s, limit,
    )
    out = []
    for r in rows:
        data = dict(r)
        cid = data.pop("client_order_id")
        out.append((FillRecord(**{**data, "order_id": str(data["order_id"])}), cid))
    return out
