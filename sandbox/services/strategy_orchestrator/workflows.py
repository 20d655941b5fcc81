"""The orchestration workflows: ``start`` (capital) and ``stop`` (orders, capital), run in the background.

A workflow is opened in the same transaction as the transition into
``starting`` / ``stopping`` and leased to the replica that made it. Its steps
run in order; each attempt is recorded in ``workflow_steps`` with its outcome.
A step that cannot reach the other service is retried with exponential
back-off up to ``STRATEGY_CALL_ATTEMPTS`` times; a refusal (4xx) or running
out of attempts ends the workflow ``failed`` and moves the strategy to
``failed`` with the reason. The lease is renewed before every attempt; a
replica whose lease was lost (a caller cancelled the workflow with ``fail``,
or another replica took it over) stops at once.

Recovery: every replica sweeps for running workflows whose lease expired and
resumes them, skipping the steps already done (every step is idempotent at the
other end, so repeating one after a crash is safe). At start-up a replica also
takes back at once the workflows its previous incarnation held (the owner id
is ``host:port``, which only one live process can hold).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from sandbox.services.strategy_orchestrator import repository
from sandbox.services.strategy_orchestrator.cache import CacheSync
from sandbox.services.strategy_orchestrator.clients import CallResult, Peer
from sandbox.services.strategy_orchestrator.settings import StrategySettings
from sandbox.services.strategy_orchestrator.telemetry import Metrics

log = logging.getLogger("sandbox.services.strategy_orchestrator.workflows")

DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


@dataclass
class Attempt:
    """One attempt of a step: ``ok`` / ``skipped`` (done), ``retry`` or ``refused``, and what to record."""

    outcome: str
    summary: str
    status_code: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What a step needs: the workflow, the strategy, its capital target and the peers."""

    workflow_id: uuid.UUID
    strategy_id: str
    capital: dict[str, Any] | None
    allocator: Peer
    oms: Peer


StepFn = Callable[[Context], Awaitable[Attempt]]


def _from_call(res: CallResult, who: str, ok_summary: str, **detail: Any) -> Attempt:
    """The attempt of a plain call: done when 2xx, else retry / refused with the other side's reason."""
    if res.outcome == "ok":
        return Attempt("ok", ok_summary, res.status_code, detail)
    return Attempt(res.outcome, f"{who}: {res.error}", res.status_code, res.detail())


async def set_target(ctx: Context) -> Attempt:
    """``PUT /v1/strategies/{id}/target`` at capital-allocator with the registered capital target.

    capital-allocator lets only risk officers set targets; when it refuses the
    service account (403) but already holds a target for the strategy (set by a
    risk officer), that target is used and the step is ``skipped`` with a note.
    """
    path = f"/v1/strategies/{ctx.strategy_id}/target"
    res = await ctx.allocator.call("PUT", path, ctx.capital)
    if res.outcome == "refused" and res.status_code == 403:
        existing = await ctx.allocator.call("GET", f"/v1/strategies/{ctx.strategy_id}")
        if existing.outcome == "ok" and isinstance(existing.body, dict):
            note = "capital-allocator refuses targets from this service account; its existing target is used"
            return Attempt("skipped", "capital target kept as set at capital-allocator", 403,
                           {"note": note, "target": existing.body.get("target"), "error": res.error})
        if existing.outcome == "retry":
            return Attempt("retry", f"capital-allocator: {existing.error}", existing.status_code, existing.detail())
        return Attempt(
            "refused",
            f"capital-allocator refuses to set the target ({res.error}) and has no target for "
            f"{ctx.strategy_id!r}: a risk officer must PUT {path} at capital-allocator",
            403, res.detail(),
        )
    return _from_call(res, "capital-allocator", "capital target set", target=ctx.capital)


async def allocate(ctx: Context) -> Attempt:
    """``POST /v1/strategies/{id}/allocate``: activate the strategy and rebalance."""
    res = await ctx.allocator.call(
        "POST", f"/v1/strategies/{ctx.strategy_id}/allocate",
        {"reason": f"strategy-orchestrator: start (workflow {ctx.workflow_id})"},
    )
    if res.outcome != "ok":
        return _from_call(res, "capital-allocator", "")
    capital = (res.body or {}).get("capital") or {}
    allocation = (res.body or {}).get("allocation") or {}
    amount, currency = capital.get("allocated"), capital.get("currency")
    return Attempt(
        "ok", f"capital allocated: {amount} {currency or ''}".rstrip() + f" (allocation run {allocation.get('id')})",
        res.status_code, {"allocated": amount, "currency": currency, "allocation_id": allocation.get("id")},
    )


async def cancel_orders(ctx: Context) -> Attempt:
    """``POST /v1/strategies/{id}/cancel-all`` at oms-service: cancel every open order of the strategy.

    Orders the venue could not cancel (``failed``) make the attempt a retry:
    the next one re-reads the strategy's open orders, so the ones cancelled
    meanwhile drop out. Orders whose cancel is sent but not yet acknowledged
    (``pending``) count as done: the OMS cancels them on acknowledgement.
    """
    res = await ctx.oms.call(
        "POST", f"/v1/strategies/{ctx.strategy_id}/cancel-all",
        {"reason": f"strategy-orchestrator: stop (workflow {ctx.workflow_id})"},
    )
    if res.outcome != "ok":
        return _from_call(res, "oms-service", "")
    body = res.body if isinstance(res.body, dict) else {}
    counts = {k: len(body[k]) for k in ("canceled", "pending", "already_done", "failed") if isinstance(body.get(k), list)}
    detail = {"requested": body.get("requested"), **counts, "failed_orders": body.get("failed") or []}
    if counts.get("failed"):
        errors = "; ".join(f"{f.get('order_id')}: {f.get('error')}" for f in body["failed"][:5] if isinstance(f, dict))
        return Attempt("retry", f"oms-service could not cancel {counts['failed']} order(s): {errors}",
                       res.status_code, detail)
    summary = f"open orders cancelled ({counts.get('canceled', 0)} cancelled"
    if counts.get("pending"):
        summary += f", {counts['pending']} awaiting the venue's acknowledgement"
    return Attempt("ok", summary + ")", res.status_code, detail)


async def release(ctx: Context) -> Attempt:
    """``POST /v1/strategies/{id}/release``: the strategy's capital goes back (404 / no NAV: nothing to release)."""
    res = await ctx.allocator.call(
        "POST", f"/v1/strategies/{ctx.strategy_id}/release",
        {"reason": f"strategy-orchestrator: stop (workflow {ctx.workflow_id})"},
    )
    if res.outcome == "refused" and res.code in ("strategy_not_found", "nav_not_set"):
        return Attempt("skipped", f"no capital to release ({res.code})", res.status_code, res.detail())
    if res.outcome != "ok":
        return _from_call(res, "capital-allocator", "")
    allocation = (res.body or {}).get("allocation") or {}
    return Attempt("ok", "capital released", res.status_code, {"allocation_id": allocation.get("id")})


STEPS: dict[str, list[tuple[str, StepFn]]] = {
    "start": [("set_target", set_target), ("allocate", allocate)],
    "stop": [("cancel_orders", cancel_orders), ("release", release)],
}


def backoff(attempt: int, base_s: float, max_s: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): base, 2*base, 4*base, ... capped."""
    return min(max_s, base_s * (2 ** (attempt - 1)))


def replica_id(port: int) -> str:
    """This replica's stable owner id: ``host:port`` (a restarted process takes back its own workflows)."""
    return f"{socket.gethostname()}:{port}"


class Orchestrator:
    """Runs this replica's workflows and sweeps for abandoned ones."""

    def __init__(
        self, pool: asyncpg.Pool, settings: StrategySettings, *, owner: str, actor: str,
        allocator: Peer, oms: Peer, sync: CacheSync, metrics: Metrics,
    ) -> None:
        """``owner`` identifies this replica in leases; ``actor`` names it in transitions."""
        self.pool = pool
        self.settings = settings
        self.owner = owner
        self.actor = actor
        self.allocator = allocator
        self.oms = oms
        self.sync = sync
        self.metrics = metrics
        self.tasks: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Resume this replica's and abandoned workflows, then sweep periodically."""
        await self.sweep(include_own=True)
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="strategy-workflow-sweeper")

    async def stop(self) -> None:
        """Stop sweeping and running; hand the unfinished workflows' leases back for another replica."""
        tasks = [t for t in [self._sweeper, *self.tasks.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        unfinished = list(self.tasks)
        self.tasks.clear()
        with contextlib.suppress(*DB_ERRORS):
            await repository.release_leases(self.pool, self.owner, unfinished)

    def spawn(self, workflow_id: uuid.UUID, strategy_id: str, kind: str) -> None:
        """Run a workflow this replica holds the lease of."""
        if workflow_id in self.tasks:
            return
        task = asyncio.create_task(self._run(workflow_id, strategy_id, kind), name=f"workflow-{workflow_id}")
        self.tasks[workflow_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(workflow_id, None))

    async def sweep(self, *, include_own: bool = False) -> int:
        """Claim running workflows with an expired lease (at start-up also our own) and run them."""
        claimed = await repository.claim_workflows(
            self.pool, self.owner, self.settings.lease_s, include_own=include_own, exclude=list(self.tasks)
        )
        for row in claimed:
            log.info("resuming workflow", extra={"workflow": str(row["id"]), "strategy": row["strategy_id"],
                                                 "kind": row["kind"]})
            self.spawn(row["id"], row["strategy_id"], row["kind"])
        return len(claimed)

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_s)
            try:
                await self.sweep()
            except DB_ERRORS as exc:
                log.warning("workflow sweep failed", extra={"error": str(exc)})

    async def _run(self, workflow_id: uuid.UUID, strategy_id: str, kind: str) -> None:
        try:
            capital = await repository.strategy_capital(self.pool, strategy_id)
            ctx = Context(workflow_id, strategy_id, capital, self.allocator, self.oms)
            done = await repository.completed_steps(self.pool, workflow_id)
            summaries: list[str] = []
            for name, fn in STEPS[kind]:
                if name in done:
                    summaries.append(str((done[name] or {}).get("summary", f"{name} done")))
                    continue
                attempt = await self._step(ctx, kind, name, fn)
                if attempt is None:
                    self.metrics.workflows.labels(kind, "lost").inc()
                    return
                if attempt.outcome not in ("ok", "skipped"):
                    await self._finish(ctx, kind, "failed", f"{name} failed: {attempt.summary}")
                    return
                summaries.append(attempt.summary)
            await self._finish(ctx, kind, "succeeded", "; ".join(summaries))
        except asyncio.CancelledError:
            raise
        except Exception:
            # The database went away, say: the lease lapses and a sweep (here or elsewhere) resumes the workflow.
            log.exception("workflow interrupted; it resumes when its lease expires",
                          extra={"workflow": str(workflow_id), "strategy": strategy_id})

    async def _step(self, ctx: Context, kind: str, name: str, fn: StepFn) -> Attempt | None:
        """Run one step with retries; ``None`` when the lease was lost. The last attempt's outcome is final."""
        settings = self.settings
        for number in range(1, settings.call_attempts + 1):
            if not await repository.renew_lease(self.pool, ctx.workflow_id, self.owner, settings.lease_s):
                log.info("workflow lease lost (cancelled or taken over)",
                         extra={"workflow": str(ctx.workflow_id), "step": name})
                return None
            attempt = await fn(ctx)
            last = number == settings.call_attempts
            outcome = attempt.outcome
            if outcome == "retry" and last:
                outcome = "exhausted"
                attempt.summary = f"{attempt.summary} (gave up after {number} attempts)"
            await repository.record_step(
                self.pool, ctx.workflow_id, name, number, outcome, attempt.status_code,
                {**attempt.detail, "summary": attempt.summary},
            )
            self.metrics.steps.labels(kind, name, outcome).inc()
            if outcome != "retry":
                attempt.outcome = outcome
                return attempt
            await asyncio.sleep(backoff(number, settings.retry_base_s, settings.retry_max_s))
        raise AssertionError("unreachable: the last attempt always returns")

    async def _finish(self, ctx: Context, kind: str, status: str, reason: str) -> None:
        row = await repository.finish_workflow(self.pool, ctx.workflow_id, status, reason[:500], actor=self.actor)
        if row is None:
            self.metrics.workflows.labels(kind, "lost").inc()
            return
        self.sync.local(row)
        self.metrics.workflows.labels(kind, status).inc()
        src, dst = ("starting", "running") if kind == "start" else ("stopping", "stopped")
        if status == "failed":
            dst = "failed"
        self.metrics.transitions.labels(f"workflow:{kind}", src, dst).inc()
        log.info("workflow finished", extra={"workflow": str(ctx.workflow_id), "strategy": ctx.strategy_id,
                                             "kind": kind, "status": status, "reason": reason})
