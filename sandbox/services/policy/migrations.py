"""Schema of the policy database (applied by the kit, once, in version order)."""

from __future__ import annotations

from sandbox.services.kit.db import Migration

_V1 = """
CREATE TABLE account_rules (
    account            text PRIMARY KEY,
    -- NULL = any symbol; '{}' = none
    allowed_symbols    text[],
    -- {"USD": "10000", ...}: decimal strings keyed by quote asset; NULL = no limit
    max_order_notional jsonb,
    version            bigint NOT NULL CHECK (version > 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    updated_by         text NOT NULL
);

CREATE TABLE rules_audit (
    id          bigserial PRIMARY KEY,
    account     text NOT NULL,
    action      text NOT NULL CHECK (action IN ('created', 'replaced', 'deleted')),
    actor       text NOT NULL,
    reason      text,
    before      jsonb,
    after       jsonb,
    version     bigint NOT NULL,
    request_id  text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rules_audit_account_id ON rules_audit (account, id DESC);

-- the audit trail is append-only, whatever the client
CREATE FUNCTION rules_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'rules_audit is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER rules_audit_append_only
    BEFORE UPDATE OR DELETE ON rules_audit
    FOR EACH ROW EXECUTE FUNCTION rules_audit_append_only();
CREATE TRIGGER rules_audit_no_truncate
    BEFORE TRUNCATE ON rules_audit
    FOR EACH STATEMENT EXECUTE FUNCTION rules_audit_append_only();

-- one row: bumped by every rules write, polled by replicas as a fallback to NOTIFY
CREATE TABLE rules_revision (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    revision bigint NOT NULL
);
INSERT INTO rules_revision (id, revision) VALUES (true, 0);
"""

MIGRATIONS = [Migration(1, "account rules, audit trail, revision", _V1)]
