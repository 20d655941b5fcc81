"""Schema of strategy-orchestrator.

``strategies`` holds each strategy's definition and current state; ``version``
comes from one sequence, so every write gives a row a higher version (ETags,
If-Match, and the replicas' caches compare versions). ``transitions`` is the
append-only lifecycle history. ``workflows`` are the orchestration runs
(start: capital; stop: orders and capital) with the lease of the replica
running them, and ``workflow_steps`` every attempt of every step with its
outcome.
"""

from __future__ import annotations

from sandbox.services.kit.db import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "strategies, transitions and workflows",
        """
        CREATE SEQUENCE strategy_version_seq;

        CREATE TABLE strategies (
            id               text        PRIMARY KEY,
            name             text        NOT NULL,
            kind             text        NOT NULL,
            params           jsonb       NOT NULL,
            accounts         text[]      NOT NULL,
            symbols          text[]      NOT NULL,
            capital          jsonb       NOT NULL,
            state            text        NOT NULL CHECK (state IN
                ('registered', 'starting', 'running', 'paused', 'stopping', 'stopped', 'failed')),
            state_reason     text,
            state_changed_at timestamptz NOT NULL DEFAULT now(),
            workflow_id      uuid,
            version          bigint      NOT NULL DEFAULT nextval('strategy_version_seq'),
            created_by       text        NOT NULL,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_by       text        NOT NULL,
            updated_at       timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE workflows (
            id          uuid        PRIMARY KEY,
            strategy_id text        NOT NULL REFERENCES strategies (id),
            kind        text        NOT NULL CHECK (kind IN ('start', 'stop')),
            status      text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
            outcome     text,
            owner       text,
            lease_until timestamptz,
            started_at  timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            CONSTRAINT workflows_lease CHECK ((status = 'running') = (lease_until IS NOT NULL))
        );
        CREATE INDEX workflows_strategy ON workflows (strategy_id, started_at DESC);
        CREATE INDEX workflows_running ON workflows (lease_until) WHERE status = 'running';

        ALTER TABLE strategies ADD CONSTRAINT strategies_workflow FOREIGN KEY (workflow_id) REFERENCES workflows (id);

        CREATE TABLE workflow_steps (
            id          bigserial   PRIMARY KEY,
            workflow_id uuid        NOT NULL REFERENCES workflows (id),
            step        text        NOT NULL,
            attempt     integer     NOT NULL CHECK (attempt > 0),
            outcome     text        NOT NULL CHECK (outcome IN ('ok', 'skipped', 'retry', 'refused', 'exhausted')),
            status_code integer,
            detail      jsonb,
            at          timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX workflow_steps_workflow ON workflow_steps (workflow_id, id);

        CREATE TABLE transitions (
            id          bigserial   PRIMARY KEY,
            strategy_id text        NOT NULL REFERENCES strategies (id),
            from_state  text,
            to_state    text        NOT NULL,
            action      text        NOT NULL,
            who         text        NOT NULL,
            who_kind    text        NOT NULL,
            at          timestamptz NOT NULL DEFAULT now(),
            reason      text,
            workflow_id uuid        REFERENCES workflows (id)
        );
        CREATE INDEX transitions_strategy ON transitions (strategy_id, id);
        """,
    ),
)
