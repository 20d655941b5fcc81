"""PostgreSQL access: strategies, their transitions, workflows and step outcomes.

Every state change happens in one transaction that locks the strategy's row
(``SELECT ... FOR UPDATE``), checks the transition against :mod:`.machine`,
writes the new state, appends the transition, opens or closes the workflow,
and notifies the other replicas (``pg_notify``, delivered at commit). Two
replicas racing to start the same strategy serialise on the row lock: the
second sees ``starting`` and gets a 409.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from sandbox.services.kit.auth import Principal
from sandbox.services.kit.errors import ServiceError
from sandbox.services.strategy_orchestrator.machine import (
    CAPITAL_EDITABLE_STATES,
    EDITABLE_STATES,
    WORKFLOW_TABLE,
    Action,
    State,
    allowed_actions,
    target_of,
    workflow_for,
)
from sandbox.services.strategy_orchestrator.models import (
    StrategyCreate,
    StrategyUpdate,
    StepPublic,
    TransitionPublic,
    WorkflowPublic,
)
from sandbox.services.strategy_orchestrator.params import encode_params

CHANNEL = "strategy_orchestrator_changed"

STRATEGY_SELECT = """
SELECT s.id, s.name, s.kind, s.params::text AS params, s.accounts, s.symbols, s.capital::text AS capital,
       s.state, s.state_reason, s.state_changed_at, s.version, s.created_by, s.created_at, s.updated_by,
       s.updated_at, w.id AS wf_id, w.kind AS wf_kind, w.status AS wf_status, w.outcome AS wf_outcome,
       w.started_at AS wf_started_at, w.finished_at AS wf_finished_at
FROM strategies s LEFT JOIN workflows w ON w.id = s.workflow_id
"""
TRANSITION_COLUMNS = "id, strategy_id, from_state, to_state, action, who, who_kind, at, reason, workflow_id"
WORKFLOW_COLUMNS = "id, strategy_id, kind, status, outcome, owner, lease_until, started_at, finished_at"


def strategy_not_found(strategy_id: str) -> ServiceError:
    """The 404 for an unknown strategy."""
    return ServiceError(404, "strategy_not_found", f"no strategy {strategy_id!r} is registered")


def invalid_transition(strategy_id: str, state: State, action: Action) -> ServiceError:
    """The 409 for an action not allowed from ``state``, listing the allowed ones."""
    allowed = [{"action": a.action, "to": a.to} for a in allowed_actions(state)]
    names = ", ".join(f"{a['action']} -> {a['to']}" for a in allowed) or "none"
    return ServiceError(
        409, "invalid_transition",
        f"cannot {action} strategy {strategy_id!r} while it is {state}; allowed: {names}",
        detail={"state": state, "action": action, "allowed": allowed},
    )


async def notify(conn: asyncpg.Connection, strategy_id: str) -> None:
    """Tell every replica (at commit) that ``strategy_id`` changed."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, strategy_id)


async def fetch_strategy(conn: asyncpg.Connection | asyncpg.Pool, strategy_id: str) -> asyncpg.Record | None:
    """One strategy row with its latest workflow (``None`` when unknown)."""
    return await conn.fetchrow(STRATEGY_SELECT + " WHERE s.id = $1", strategy_id)


async def fetch_strategies(conn: asyncpg.Connection | asyncpg.Pool, ids: list[str] | None = None) -> list[asyncpg.Record]:
    """Every strategy row (or those of ``ids``)."""
    if ids is None:
        return await conn.fetch(STRATEGY_SELECT + " ORDER BY s.id")
    return await conn.fetch(STRATEGY_SELECT + " WHERE s.id = ANY($1::text[]) ORDER BY s.id", ids)


async def fetch_versions(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """``id -> version`` of every strategy (what the cache compares itself with)."""
    return {r["id"]: r["version"] for r in await conn.fetch("SELECT id, version FROM strategies")}


async def _record_transition(
    conn: asyncpg.Connection, strategy_id: str, src: State | None, dst: State, action: str,
    who: str, who_kind: str, reason: str | None, workflow_id: uuid.UUID | None,
) -> None:
    await conn.execute(
        """INSERT INTO transitions (strategy_id, from_state, to_state, action, who, who_kind, reason, workflow_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
        strategy_id, src, dst, action, who, who_kind, reason, workflow_id,
    )


async def create_strategy(pool: asyncpg.Pool, body: StrategyCreate, who: Principal) -> asyncpg.Record:
    """Register a strategy in ``registered`` (409 ``strategy_exists`` when the id is taken)."""
    async with pool.acquire() as conn, conn.transaction():
        inserted = await conn.fetchval(
            """INSERT INTO strategies (id, name, kind, params, accounts, symbols, capital, state, state_reason,
                                       created_by, updated_by)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7::jsonb, 'registered', NULL, $8, $8)
               ON CONFLICT (id) DO NOTHING RETURNING id""",
            body.id, body.name, body.kind, encode_params(body.params).decode(), body.accounts, body.symbols,
            json.dumps(body.capital.wire()), who.subject,
        )
        if inserted is None:
            raise ServiceError(409, "strategy_exists", f"strategy {body.id!r} is already registered")
        await _record_transition(conn, body.id, None, "registered", "register", who.subject, who.kind, None, None)
        await notify(conn, body.id)
        row = await fetch_strategy(conn, body.id)
    assert row is not None
    return row


async def update_strategy(
    pool: asyncpg.Pool, strategy_id: str, body: StrategyUpdate, who: Principal, if_match: int | None
) -> asyncpg.Record:
    """Change the given fields while the state allows it (409 ``not_editable``; 412 on a stale If-Match)."""
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow("SELECT state, version FROM strategies WHERE id = $1 FOR UPDATE", strategy_id)
        if current is None:
            raise strategy_not_found(strategy_id)
        if if_match is not None and if_match != current["version"]:
            raise ServiceError(
                412, "version_mismatch",
                f"strategy {strategy_id!r} is at version {current['version']}, not {if_match}",
                detail={"version": current["version"]},
            )
        state = current["state"]
        editable = CAPITAL_EDITABLE_STATES if body.capital is not None else EDITABLE_STATES
        if state not in editable:
            what = "the capital target" if body.capital is not None else "a strategy"
            raise ServiceError(
                409, "not_editable", f"cannot change {what} while it is {state}; allowed in: "
                + ", ".join(sorted(editable)),
                detail={"state": state, "editable_in": sorted(editable)},
            )
        sets, args = [], [strategy_id, who.subject]
        fields: dict[str, tuple[str, Any]] = {
            "name": ("name = ${}", body.name),
            "params": ("params = ${}::jsonb", None if body.params is None else encode_params(body.params).decode()),
            "accounts": ("accounts = ${}", body.accounts),
            "symbols": ("symbols = ${}", body.symbols),
            "capital": ("capital = ${}::jsonb", None if body.capital is None else json.dumps(body.capital.wire())),
        }
        for name, (sql, value) in fields.items():
            if name in body.model_fields_set:
                args.append(value)
                sets.append(sql.format(len(args)))
        await conn.execute(
            f"""UPDATE strategies SET {', '.join(sets)}, version = nextval('strategy_version_seq'),
                    updated_by = $2, updated_at = now() WHERE id = $1""",
            *args,
        )
        await notify(conn, strategy_id)
        row = await fetch_strategy(conn, strategy_id)
    assert row is not None
    return row


async def apply_action(
    pool: asyncpg.Pool, strategy_id: str, action: Action, who: Principal, reason: str | None,
    *, owner: str, lease_s: float,
) -> tuple[asyncpg.Record, uuid.UUID | None, State]:
    """Make a caller's transition atomically; return the new row, the workflow it opened (if any) and the old state.

    Leaving ``starting`` / ``stopping`` by a caller action (``fail``) cancels the
    running workflow; entering one opens a new workflow leased to ``owner``.
    """
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow(
            "SELECT state, workflow_id FROM strategies WHERE id = $1 FOR UPDATE", strategy_id
        )
        if current is None:
            raise strategy_not_found(strategy_id)
        src: State = current["state"]
        dst = target_of(src, action)
        if dst is None:
            raise invalid_transition(strategy_id, src, action)
        if workflow_for(src) and current["workflow_id"] is not None:
            await conn.execute(
                """UPDATE workflows SET status = 'cancelled', outcome = $2, owner = NULL, lease_until = NULL,
                       finished_at = now() WHERE id = $1 AND status = 'running'""",
                current["workflow_id"], f"cancelled: {action} by {who.subject}",
            )
        workflow_id = None
        kind = workflow_for(dst)
        if kind is not None:
            workflow_id = uuid.uuid4()
            await conn.execute(
                """INSERT INTO workflows (id, strategy_id, kind, status, owner, lease_until)
                   VALUES ($1, $2, $3, 'running', $4, now() + make_interval(secs => $5))""",
                workflow_id, strategy_id, kind, owner, lease_s,
            )
        await conn.execute(
            """UPDATE strategies SET state = $2, state_reason = $3, state_changed_at = now(),
                   workflow_id = COALESCE($4, workflow_id), version = nextval('strategy_version_seq')
               WHERE id = $1""",
            strategy_id, dst, reason, workflow_id,
        )
        await _record_transition(conn, strategy_id, src, dst, action, who.subject, who.kind, reason, workflow_id)
        await notify(conn, strategy_id)
        row = await fetch_strategy(conn, strategy_id)
    assert row is not None
    return row, workflow_id, src


async def finish_workflow(
    pool: asyncpg.Pool, workflow_id: uuid.UUID, status: str, reason: str, *, actor: str
) -> asyncpg.Record | None:
    """End a running workflow with ``succeeded`` / ``failed`` and make its transition atomically.

    Returns the strategy row, or ``None`` when the workflow is no longer the
    strategy's running one (cancelled by a caller meanwhile): nothing changes then.
    """
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow(
            """SELECT s.id, s.state, s.workflow_id FROM strategies s
               WHERE s.id = (SELECT strategy_id FROM workflows WHERE id = $1) FOR UPDATE OF s""",
            workflow_id,
        )
        if current is None or current["workflow_id"] != workflow_id:
            return None
        wf = await conn.fetchrow("SELECT kind, status FROM workflows WHERE id = $1 FOR UPDATE", workflow_id)
        src, dst = WORKFLOW_TABLE[wf["kind"]][status]
        if wf["status"] != "running" or current["state"] != src:
            return None
        await conn.execute(
            """UPDATE workflows SET status = $2, outcome = $3, owner = NULL, lease_until = NULL, finished_at = now()
               WHERE id = $1""",
            workflow_id, status, reason,
        )
        await conn.execute(
            """UPDATE strategies SET state = $2, state_reason = $3, state_changed_at = now(),
                   version = nextval('strategy_version_seq') WHERE id = $1""",
            current["id"], dst, reason,
        )
        await _record_transition(
            conn, current["id"], src, dst, f"workflow:{wf['kind']}", actor, "system", reason, workflow_id
        )
        await notify(conn, current["id"])
        return await fetch_strategy(conn, current["id"])


async def renew_lease(pool: asyncpg.Pool, workflow_id: uuid.UUID, owner: str, lease_s: float) -> bool:
    """Extend ``owner``'s lease on a running workflow; ``False`` when it was cancelled or taken over."""
    found = await pool.fetchval(
        """UPDATE workflows SET lease_until = now() + make_interval(secs => $3)
           WHERE id = $1 AND status = 'running' AND owner = $2 RETURNING id""",
        workflow_id, owner, lease_s,
    )
    return found is not None


async def claim_workflows(
    pool: asyncpg.Pool, owner: str, lease_s: float, *, include_own: bool, exclude: list[uuid.UUID], limit: int = 50
) -> list[asyncpg.Record]:
    """Take over running workflows whose lease expired (and, at start-up, those ``owner`` held before a restart)."""
    return await pool.fetch(
        """UPDATE workflows SET owner = $1, lease_until = now() + make_interval(secs => $2)
           WHERE id IN (
               SELECT id FROM workflows
               WHERE status = 'running' AND (lease_until < now() OR ($3 AND owner = $1))
                 AND NOT (id = ANY($4::uuid[]))
               ORDER BY started_at LIMIT $5 FOR UPDATE SKIP LOCKED)
           RETURNING id, strategy_id, kind""",
        owner, lease_s, include_own, exclude, limit,
    )


async def release_leases(pool: asyncpg.Pool, owner: str, workflow_ids: list[uuid.UUID]) -> None:
    """On shutdown: let another replica take over at once instead of after the lease expires."""
    if workflow_ids:
        await pool.execute(
            """UPDATE workflows SET lease_until = now() - interval '1 second'
               WHERE id = ANY($1::uuid[]) AND status = 'running' AND owner = $2""",
            workflow_ids, owner,
        )


async def record_step(
    pool: asyncpg.Pool, workflow_id: uuid.UUID, step: str, attempt: int, outcome: str,
    status_code: int | None, detail: dict[str, Any] | None,
) -> None:
    """Append one step attempt and its outcome."""
    await pool.execute(
        """INSERT INTO workflow_steps (workflow_id, step, attempt, outcome, status_code, detail)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb)""",
        workflow_id, step, attempt, outcome, status_code, None if detail is None else json.dumps(detail),
    )


async def completed_steps(pool: asyncpg.Pool, workflow_id: uuid.UUID) -> dict[str, dict[str, Any] | None]:
    """Steps of a workflow that already succeeded (``ok`` / ``skipped``) with their detail: skipped on resume."""
    rows = await pool.fetch(
        "SELECT step, detail::text AS detail FROM workflow_steps WHERE workflow_id = $1 AND outcome IN ('ok', 'skipped')",
        workflow_id,
    )
    return {r["step"]: json.loads(r["detail"]) if r["detail"] else None for r in rows}


async def strategy_capital(pool: asyncpg.Pool, strategy_id: str) -> dict[str, Any] | None:
    """The stored capital target of a strategy (what ``set_target`` sends)."""
    text = await pool.fetchval("SELECT capital::text FROM strategies WHERE id = $1", strategy_id)
    return None if text is None else json.loads(text)


async def list_transitions(
    pool: asyncpg.Pool, strategy_id: str, *, limit: int, after: int | None
) -> list[TransitionPublic]:
    """Transitions of a strategy, oldest first (``after``: only ids above it); 404 when unknown."""
    rows = await pool.fetch(
        f"""SELECT {TRANSITION_COLUMNS} FROM transitions WHERE strategy_id = $1 AND id > $2
            ORDER BY id LIMIT $3""",
        strategy_id, after or 0, limit,
    )
    if not rows and not await pool.fetchval("SELECT 1 FROM strategies WHERE id = $1", strategy_id):
        raise strategy_not_found(strategy_id)
    return [
        TransitionPublic.model_validate({
            "id": r["id"], "strategy": r["strategy_id"], "from": r["from_state"], "to": r["to_state"],
            "action": r["action"], "who": r["who"], "who_kind": r["who_kind"], "when": r["at"],
            "reason": r["reason"], "workflow_id": str(r["workflow_id"]) if r["workflow_id"] else None,
        })
        for r in rows
    ]


async def list_workflows(pool: asyncpg.Pool, strategy_id: str, *, limit: int) -> list[WorkflowPublic]:
    """A strategy's workflows newest first, each with its step attempts; 404 when unknown."""
    rows = await pool.fetch(
        f"SELECT {WORKFLOW_COLUMNS} FROM workflows WHERE strategy_id = $1 ORDER BY started_at DESC, id LIMIT $2",
        strategy_id, limit,
    )
    if not rows and not await pool.fetchval("SELECT 1 FROM strategies WHERE id = $1", strategy_id):
        raise strategy_not_found(strategy_id)
    steps = await pool.fetch(
        """SELECT workflow_id, step, attempt, outcome, status_code, detail::text AS detail, at
           FROM workflow_steps WHERE workflow_id = ANY($1::uuid[]) ORDER BY id""",
        [r["id"] for r in rows],
    )
    by_workflow: dict[uuid.UUID, list[StepPublic]] = {}
    for s in steps:
        by_workflow.setdefault(s["workflow_id"], []).append(StepPublic(
            step=s["step"], attempt=s["attempt"], outcome=s["outcome"], status_code=s["status_code"],
            detail=json.loads(s["detail"]) if s["detail"] else None, at=s["at"],
        ))
    return [
        WorkflowPublic(
            id=str(r["id"]), strategy=r["strategy_id"], kind=r["kind"], status=r["status"], outcome=r["outcome"],
            owner=r["owner"], lease_until=r["lease_until"], started_at=r["started_at"],
            finished_at=r["finished_at"], steps=by_workflow.get(r["id"], []),
        )
        for r in rows
    ]
