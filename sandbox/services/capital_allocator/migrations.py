"""Schema of the capital_allocator database (applied once, in version order, by the kit's migrator)."""

from __future__ import annotations

from sandbox.services.kit.db import Migration

_V1 = """
-- Every change to the portfolio or a strategy takes the next value: replicas keep
-- the highest version they have seen per row and ignore older notifications.
CREATE SEQUENCE capital_version_seq;

CREATE TABLE portfolio (
    id              boolean PRIMARY KEY DEFAULT true CHECK (id),
    nav             numeric NOT NULL CHECK (nav >= 0),
    cash_buffer_pct numeric NOT NULL CHECK (cash_buffer_pct >= 0 AND cash_buffer_pct <= 100),
    currency        text NOT NULL,
    precision       integer NOT NULL CHECK (precision BETWEEN 0 AND 8),
    version         bigint NOT NULL,
    updated_by      text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE strategies (
    strategy      text PRIMARY KEY,
    weight        numeric NOT NULL CHECK (weight >= 0),
    min_capital   numeric NOT NULL DEFAULT 0 CHECK (min_capital >= 0),
    max_capital   numeric CHECK (max_capital >= min_capital),
    min_weight    numeric CHECK (min_weight >= 0 AND min_weight <= 1),
    max_weight    numeric CHECK (max_weight >= 0 AND max_weight <= 1),
    active        boolean NOT NULL DEFAULT false,
    allocated     numeric NOT NULL DEFAULT 0 CHECK (allocated >= 0),
    -- the sum of what open reservations still hold (amount - consumed, never below 0)
    reserved      numeric NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    allocation_id bigint,
    version       bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    updated_by    text NOT NULL,
    CHECK (min_weight IS NULL OR max_weight IS NULL OR min_weight <= max_weight)
);

CREATE TABLE allocation_runs (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    actor_kind  text NOT NULL,
    trigger     text NOT NULL CHECK (trigger IN ('rebalance', 'allocate', 'release')),
    strategy    text,
    reason      text,
    rebalanced  boolean NOT NULL,
    note        text,
    -- every strategy the run touched (active ones and the one released), for filtering
    strategies  text[] NOT NULL,
    inputs      jsonb NOT NULL,
    outputs     jsonb NOT NULL
);
CREATE INDEX allocation_runs_at ON allocation_runs (at DESC);
CREATE INDEX allocation_runs_strategies ON allocation_runs USING gin (strategies);

-- the allocation history is append-only, whatever the client
CREATE FUNCTION allocation_runs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'allocation_runs is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER allocation_runs_append_only
    BEFORE UPDATE OR DELETE ON allocation_runs
    FOR EACH ROW EXECUTE FUNCTION allocation_runs_append_only();
CREATE TRIGGER allocation_runs_no_truncate
    BEFORE TRUNCATE ON allocation_runs
    FOR EACH STATEMENT EXECUTE FUNCTION allocation_runs_append_only();

-- no foreign key: closed reservations outlive a deleted strategy (they are its audit trail)
CREATE TABLE reservations (
    order_id   text PRIMARY KEY,
    strategy   text NOT NULL,
    account    text,
    amount     numeric NOT NULL CHECK (amount > 0),
    consumed   numeric NOT NULL DEFAULT 0 CHECK (consumed >= 0),
    status     text NOT NULL CHECK (status IN ('open', 'released', 'consumed')),
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    closed_at  timestamptz
);
CREATE INDEX reservations_open ON reservations (strategy) WHERE status = 'open';
CREATE INDEX reservations_strategy_created ON reservations (strategy, created_at DESC, order_id);
"""

# Reservations are the OMS's hot path (one call per order event): each operation is one
# PL/pgSQL call, so one database round trip, instead of a transaction of six statements.
# The outcome codes map to HTTP answers in reservations.py.
_V2 = """
-- the change notification of a strategy row (decimals as text: exact on the way through JSON)
CREATE FUNCTION capital_strategy_notice(s strategies) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT json_build_object('k', 's', 'row', json_build_object(
        'strategy', s.strategy, 'weight', s.weight::text, 'min_capital', s.min_capital::text,
        'max_capital', s.max_capital::text, 'min_weight', s.min_weight::text, 'max_weight', s.max_weight::text,
        'active', s.active, 'allocated', s.allocated::text, 'reserved', s.reserved::text,
        'allocation_id', s.allocation_id, 'version', s.version, 'created_at', s.created_at,
        'updated_at', s.updated_at, 'updated_by', s.updated_by))::text
$$;

CREATE FUNCTION capital_change_reserved(p_strategy text, p_delta numeric) RETURNS strategies
LANGUAGE plpgsql AS $$
DECLARE
    s strategies;
BEGIN
    UPDATE strategies SET reserved = reserved + p_delta, version = nextval('capital_version_seq'), updated_at = now()
        WHERE strategy = p_strategy RETURNING * INTO s;
    PERFORM pg_notify('capital_allocator_changed', capital_strategy_notice(s));
    RETURN s;
END $$;

CREATE FUNCTION capital_reserve(
    p_order text, p_strategy text, p_account text, p_amount numeric, p_actor text,
    OUT outcome text, OUT r reservations, OUT s strategies
) LANGUAGE plpgsql AS $$
BEGIN
    SELECT * INTO s FROM strategies WHERE strategy = p_strategy FOR UPDATE;
    IF NOT FOUND THEN outcome := 'strategy_not_found'; RETURN; END IF;
    SELECT * INTO r FROM reservations WHERE order_id = p_order;
    IF FOUND THEN
        IF r.strategy = p_strategy AND r.amount = p_amount AND r.account IS NOT DISTINCT FROM p_account THEN
            outcome := 'replayed';
        ELSE
            outcome := 'reservation_conflict';
        END IF;
        RETURN;
    END IF;
    IF NOT s.active THEN outcome := 'strategy_inactive'; RETURN; END IF;
    IF p_amount > s.allocated - s.reserved THEN outcome := 'insufficient_capital'; RETURN; END IF;
    INSERT INTO reservations (order_id, strategy, account, amount, status, created_by)
        VALUES (p_order, p_strategy, p_account, p_amount, 'open', p_actor) RETURNING * INTO r;
    s := capital_change_reserved(p_strategy, p_amount);
    outcome := 'created';
END $$;

CREATE FUNCTION capital_release(
    p_order text, p_strategy text, OUT outcome text, OUT r reservations, OUT s strategies
) LANGUAGE plpgsql AS $$
BEGIN
    SELECT * INTO s FROM strategies WHERE strategy = p_strategy FOR UPDATE;
    IF NOT FOUND THEN outcome := 'strategy_not_found'; RETURN; END IF;
    SELECT * INTO r FROM reservations WHERE order_id = p_order AND strategy = p_strategy FOR UPDATE;
    IF NOT FOUND THEN outcome := 'reservation_not_found'; RETURN; END IF;
    IF r.status <> 'open' THEN outcome := 'replayed'; RETURN; END IF;
    UPDATE reservations SET status = 'released', updated_at = now(), closed_at = now()
        WHERE order_id = p_order RETURNING * INTO r;
    s := capital_change_reserved(p_strategy, -greatest(r.amount - r.consumed, 0));
    outcome := 'released';
END $$;

CREATE FUNCTION capital_consume(
    p_order text, p_strategy text, p_total numeric, p_final boolean,
    OUT outcome text, OUT r reservations, OUT s strategies
) LANGUAGE plpgsql AS $$
DECLARE
    new_consumed numeric;
    closing boolean;
    new_status text;
    held_before numeric;
    held_after numeric;
BEGIN
    SELECT * INTO s FROM strategies WHERE strategy = p_strategy FOR UPDATE;
    IF NOT FOUND THEN outcome := 'strategy_not_found'; RETURN; END IF;
    SELECT * INTO r FROM reservations WHERE order_id = p_order AND strategy = p_strategy FOR UPDATE;
    IF NOT FOUND THEN outcome := 'reservation_not_found'; RETURN; END IF;
    new_consumed := greatest(r.consumed, p_total);
    closing := r.status = 'open' AND p_final;
    IF new_consumed = r.consumed AND NOT closing THEN outcome := 'replayed'; RETURN; END IF;
    new_status := CASE WHEN closing THEN 'consumed' ELSE r.status END;
    held_before := CASE WHEN r.status = 'open' THEN greatest(r.amount - r.consumed, 0) ELSE 0 END;
    held_after := CASE WHEN new_status = 'open' THEN greatest(r.amount - new_consumed, 0) ELSE 0 END;
    UPDATE reservations SET consumed = new_consumed, status = new_status, updated_at = now(),
            closed_at = CASE WHEN closing THEN now() ELSE closed_at END
        WHERE order_id = p_order RETURNING * INTO r;
    IF held_before <> held_after THEN
        s := capital_change_reserved(p_strategy, held_after - held_before);
    END IF;
    outcome := 'consumed';
END $$;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "capital_allocator_initial", _V1),
    Migration(2, "capital_reservation_functions", _V2),
)
