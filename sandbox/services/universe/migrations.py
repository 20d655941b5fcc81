"""Schema of the universe database (applied by the kit, once, in version order)."""

from __future__ import annotations

from sandbox.services.kit.db import Migration

_V1 = """
CREATE TABLE instruments (
    pair_key            text PRIMARY KEY,
    symbol              text NOT NULL,
    altname             text NOT NULL,
    base                text NOT NULL,
    quote               text NOT NULL,
    venue_base          text NOT NULL,
    venue_quote         text NOT NULL,
    ordermin            numeric NOT NULL CHECK (ordermin >= 0),
    costmin             numeric CHECK (costmin >= 0),
    tick_size           numeric NOT NULL CHECK (tick_size > 0),
    pair_decimals       integer NOT NULL CHECK (pair_decimals BETWEEN 0 AND 30),
    lot_decimals        integer NOT NULL CHECK (lot_decimals BETWEEN 0 AND 30),
    cost_decimals       integer CHECK (cost_decimals BETWEEN 0 AND 30),
    lot_multiplier      integer CHECK (lot_multiplier > 0),
    status              text NOT NULL,
    fee_volume_currency text,
    -- [[volume, percent], ...] as JSON strings: exact decimals, ascending volume
    fees_taker          jsonb NOT NULL,
    fees_maker          jsonb NOT NULL,
    listed              boolean NOT NULL DEFAULT true,
    approval            text NOT NULL DEFAULT 'pending'
                        CHECK (approval IN ('pending', 'approved', 'excluded')),
    approval_reason     text,
    approval_by         text,
    approval_at         timestamptz,
    first_seen_at       timestamptz NOT NULL DEFAULT now(),
    synced_at           timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
-- a delisted pair keeps its row (and its audit trail); names are unique among listed pairs
CREATE UNIQUE INDEX instruments_symbol_listed ON instruments (upper(symbol)) WHERE listed;
CREATE UNIQUE INDEX instruments_altname_listed ON instruments (upper(altname)) WHERE listed;

CREATE TABLE instrument_audit (
    id              bigserial PRIMARY KEY,
    pair_key        text NOT NULL REFERENCES instruments (pair_key),
    symbol          text NOT NULL,
    action          text NOT NULL
                    CHECK (action IN ('listed', 'updated', 'relisted', 'delisted', 'approved', 'excluded')),
    actor           text NOT NULL,
    reason          text,
    changes         jsonb NOT NULL DEFAULT '{}'::jsonb,
    approval_before text,
    approval_after  text,
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instrument_audit_pair_id ON instrument_audit (pair_key, id DESC);

-- the audit trail is append-only, whatever the client
CREATE FUNCTION instrument_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'instrument_audit is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER instrument_audit_append_only
    BEFORE UPDATE OR DELETE ON instrument_audit
    FOR EACH ROW EXECUTE FUNCTION instrument_audit_append_only();
CREATE TRIGGER instrument_audit_no_truncate
    BEFORE TRUNCATE ON instrument_audit
    FOR EACH STATEMENT EXECUTE FUNCTION instrument_audit_append_only();

CREATE TABLE sync_runs (
    id           bigserial PRIMARY KEY,
    trigger      text NOT NULL CHECK (trigger IN ('startup', 'api', 'retry')),
    actor        text NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('ok', 'failed')),
    added        integer NOT NULL DEFAULT 0,
    updated      integer NOT NULL DEFAULT 0,
    unchanged    integer NOT NULL DEFAULT 0,
    delisted     integer NOT NULL DEFAULT 0,
    total        integer NOT NULL DEFAULT 0,
    skipped      jsonb NOT NULL DEFAULT '[]'::jsonb,
    error        text,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL
);

-- bumped by every change; replicas compare it with the revision their cache holds
CREATE TABLE universe_revision (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    revision bigint NOT NULL
);
INSERT INTO universe_revision (id, revision) VALUES (true, 0);
"""

# market capitalisation per asset, written by the coingecko-import workflow
_V2 = """
CREATE TABLE market_caps (
    asset       text PRIMARY KEY,
    coin_id     text,
    market_cap  numeric NOT NULL CHECK (market_cap >= 0),
    rank        integer,
    vs_currency text NOT NULL,
    as_of       timestamptz NOT NULL,
    source      text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
"""

MIGRATIONS: tuple[Migration, ...] = (Migration(1, "universe_initial", _V1), Migration(2, "universe_market_caps", _V2))
