"""Schema of secrets-service (applied by the kit, once per version, serialised across replicas)."""

from __future__ import annotations

from sandbox.services.kit.db import Migration

_KEYS = """
CREATE TABLE kraken_keys (
    key_id         uuid PRIMARY KEY,
    account        text NOT NULL,
    label          text NOT NULL,
    permissions    text[] NOT NULL DEFAULT '{}',
    api_key_last4  text NOT NULL,
    api_key_sha256 bytea NOT NULL,
    key_version    integer NOT NULL CHECK (key_version > 0),
    wrapped_key    bytea NOT NULL,
    ciphertext     bytea NOT NULL,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT kraken_keys_account_api_key UNIQUE (account, api_key_sha256),
    CONSTRAINT kraken_keys_account_label UNIQUE (account, label)
);
CREATE INDEX kraken_keys_by_version ON kraken_keys (key_version);
"""

# Append-only: rows can be inserted and read, never changed or removed through SQL.
_AUDIT = """
CREATE TABLE audit_events (
    id         bigserial PRIMARY KEY,
    ts         timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor      text NOT NULL,
    actor_kind text NOT NULL,
    action     text NOT NULL,
    outcome    text NOT NULL CHECK (outcome IN ('success', 'denied', 'failed')),
    account    text,
    key_id     text,
    reason     text,
    request_id text
);
CREATE INDEX audit_events_by_account ON audit_events (account, id DESC);
CREATE INDEX audit_events_by_key ON audit_events (key_id, id DESC);
CREATE INDEX audit_events_by_ts ON audit_events (ts DESC);
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END $$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
"""

_ROTATIONS = """
CREATE TABLE rotation_jobs (
    job_id           uuid PRIMARY KEY,
    status           text NOT NULL CHECK (status IN ('running', 'completed', 'completed_with_errors', 'failed', 'abandoned')),
    target_version   integer NOT NULL,
    rotate_data_keys boolean NOT NULL,
    batch_size       integer NOT NULL,
    pause_ms         integer NOT NULL DEFAULT 0,
    started_by       text NOT NULL,
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    records_rotated  integer NOT NULL DEFAULT 0,
    records_failed   integer NOT NULL DEFAULT 0,
    batches          integer NOT NULL DEFAULT 0,
    failed_key_ids   uuid[] NOT NULL DEFAULT '{}',
    error            text
);
CREATE INDEX rotation_jobs_by_start ON rotation_jobs (started_at DESC);
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "kraken_keys", _KEYS),
    Migration(2, "audit_events", _AUDIT),
    Migration(3, "rotation_jobs", _ROTATIONS),
)
