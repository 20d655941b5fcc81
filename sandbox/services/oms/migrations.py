"""Schema of oms-service (PostgreSQL, the simulation-mode database).

* ``orders`` – one row per order; ``(account, client_order_id)`` is unique (the
  idempotency backstop behind the Redis key) and so is the venue ``txid``.
* ``order_transitions`` – every state change with time, reason and detail;
  ``published_at`` is set once the event reached Kafka (unpublished ones are
  sent again, so ``oms.orders`` is at-least-once).
* ``fills`` – one row per venue execution (``fill_id`` = the venue's trade id);
  ``published_at`` as above for ``oms.fills``.
* ``positions`` – per account and symbol, updated with each fill.
* ``balances`` – the OMS's view of the venue account's balances (set by
  reconciliation, moved by fills), compared with the venue's ``Balance``.
* ``reconciliations`` / ``reconciliation_differences`` – the history.
* ``oms_record_fill(...)`` – records one fill in one round trip (the hot path
  of every execution): the fill (idempotent on ``fill_id``), the order's
  quantities and state with its transition, the position (average cost, the
  rules of :mod:`sandbox.services.oms.positions`) and the tracked balances,
  under the order's row lock.
"""

from __future__ import annotations

from sandbox.services.kit.db import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "orders, transitions, fills, positions, balances, reconciliations",
        """
        CREATE TABLE orders (
            id               uuid PRIMARY KEY,
            account          text NOT NULL,
            strategy         text,
            client_order_id  text NOT NULL,
            symbol           text NOT NULL,
            pair             text NOT NULL,
            side             text NOT NULL CHECK (side IN ('buy', 'sell')),
            type             text NOT NULL CHECK (type IN ('market', 'limit')),
            qty              numeric NOT NULL CHECK (qty > 0),
            price            numeric CHECK (price > 0),
            post_only        boolean NOT NULL DEFAULT false,
            userref          integer,
            reference_price  numeric,
            state            text NOT NULL CHECK (state IN ('pending_new', 'new', 'partially_filled', 'filled',
                                                            'canceled', 'rejected', 'expired')),
            txid             text UNIQUE,
            filled_qty       numeric NOT NULL DEFAULT 0,
            filled_cost      numeric NOT NULL DEFAULT 0,
            fees             numeric NOT NULL DEFAULT 0,
            fee_currency     text,
            estimated_fee    numeric,
            reasons          jsonb NOT NULL DEFAULT '[]',
            capital_reserved numeric,
            capital_state    text CHECK (capital_state IN ('reserved', 'released', 'consumed')),
            cancel_requested boolean NOT NULL DEFAULT false,
            source           text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'adopted')),
            created_by       text NOT NULL,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now(),
            UNIQUE (account, client_order_id)
        );
        CREATE INDEX orders_account_created ON orders (account, created_at DESC, id DESC);
        CREATE INDEX orders_created ON orders (created_at DESC, id DESC);
        CREATE INDEX orders_open ON orders (state) WHERE state IN ('pending_new', 'new', 'partially_filled');
        CREATE INDEX orders_strategy_open ON orders (strategy)
            WHERE state IN ('pending_new', 'new', 'partially_filled');

        CREATE TABLE order_transitions (
            id           bigserial PRIMARY KEY,
            order_id     uuid NOT NULL REFERENCES orders (id),
            from_state   text,
            to_state     text NOT NULL,
            reason       text NOT NULL,
            detail       jsonb,
            at           timestamptz NOT NULL DEFAULT clock_timestamp(),
            published_at timestamptz
        );
        CREATE INDEX order_transitions_order ON order_transitions (order_id, id);
        CREATE INDEX order_transitions_unpublished ON order_transitions (id) WHERE published_at IS NULL;

        CREATE TABLE fills (
            fill_id      text PRIMARY KEY,
            order_id     uuid NOT NULL REFERENCES orders (id),
            account      text NOT NULL,
            strategy     text,
            symbol       text NOT NULL,
            side         text NOT NULL,
            qty          numeric NOT NULL CHECK (qty > 0),
            price        numeric NOT NULL CHECK (price > 0),
            cost         numeric NOT NULL,
            fee          numeric NOT NULL DEFAULT 0,
            fee_currency text NOT NULL,
            fee_asset    text NOT NULL,
            liquidity    text NOT NULL CHECK (liquidity IN ('maker', 'taker')),
            ts           timestamptz NOT NULL,
            source       text NOT NULL,
            recorded_at  timestamptz NOT NULL DEFAULT now(),
            published_at timestamptz
        );
        CREATE INDEX fills_order ON fills (order_id, ts);
        CREATE INDEX fills_ts ON fills (ts);
        CREATE INDEX fills_unpublished ON fills (recorded_at) WHERE published_at IS NULL;

        CREATE TABLE positions (
            account      text NOT NULL,
            symbol       text NOT NULL,
            qty          numeric NOT NULL DEFAULT 0,
            avg_price    numeric NOT NULL DEFAULT 0,
            realized_pnl numeric NOT NULL DEFAULT 0,
            fees         numeric NOT NULL DEFAULT 0,
            bought       numeric NOT NULL DEFAULT 0,
            sold         numeric NOT NULL DEFAULT 0,
            fills        integer NOT NULL DEFAULT 0,
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (account, symbol)
        );

        CREATE TABLE balances (
            asset      text PRIMARY KEY,
            amount     numeric NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE reconciliations (
            id           bigserial PRIMARY KEY,
            trigger      text NOT NULL CHECK (trigger IN ('startup', 'manual', 'periodic')),
            requested_by text NOT NULL,
            started_at   timestamptz NOT NULL DEFAULT now(),
            finished_at  timestamptz,
            status       text NOT NULL CHECK (status IN ('running', 'ok', 'failed')),
            summary      jsonb NOT NULL DEFAULT '{}',
            error        text
        );

        CREATE TABLE reconciliation_differences (
            id                bigserial PRIMARY KEY,
            reconciliation_id bigint NOT NULL REFERENCES reconciliations (id),
            kind              text NOT NULL,
            order_id          uuid,
            txid              text,
            fill_id           text,
            asset             text,
            expected          text,
            actual            text,
            action            text NOT NULL,
            detail            jsonb
        );
        CREATE INDEX reconciliation_differences_run ON reconciliation_differences (reconciliation_id, id);
        """,
    ),
    Migration(
        2,
        "oms_record_fill function",
        """
        CREATE FUNCTION oms_record_fill(
            p_fill_id text, p_order_id uuid, p_txid text, p_side text, p_qty numeric, p_price numeric,
            p_cost numeric, p_fee numeric, p_fee_currency text, p_fee_asset text, p_liquidity text,
            p_ts timestamptz, p_source text, p_base text, p_quote text, p_venue_state text)
        RETURNS TABLE (r_inserted boolean, r_from_state text, r_transition_id bigint,
                       r_transition_at timestamptz, r_order orders)
        LANGUAGE plpgsql AS $fn$
        DECLARE
            o orders%ROWTYPE;
            v_from text;
            v_filled numeric;
            v_state text;
            v_tid bigint;
            v_tat timestamptz;
            pq numeric := 0;
            pa numeric := 0;
            pr numeric := 0;
            v_signed numeric;
            v_closed numeric;
            v_newq numeric;
            v_newa numeric;
        BEGIN
            SELECT * INTO o FROM orders WHERE id = p_order_id FOR UPDATE;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            v_from := o.state;
            INSERT INTO fills (fill_id, order_id, account, strategy, symbol, side, qty, price, cost, fee,
                               fee_currency, fee_asset, liquidity, ts, source)
            VALUES (p_fill_id, p_order_id, o.account, o.strategy, o.symbol, p_side, p_qty, p_price, p_cost, p_fee,
                    p_fee_currency, p_fee_asset, p_liquidity, p_ts, p_source)
            ON CONFLICT (fill_id) DO NOTHING;
            IF NOT FOUND THEN
                RETURN QUERY SELECT false, o.state, NULL::bigint, NULL::timestamptz, o;
                RETURN;
            END IF;

            v_filled := o.filled_qty + p_qty;
            v_state := CASE
                WHEN o.state IN ('filled', 'canceled', 'rejected', 'expired') THEN o.state
                WHEN v_filled >= o.qty THEN 'filled'
                WHEN v_filled > 0 THEN 'partially_filled'
                ELSE o.state END;
            UPDATE orders SET filled_qty = v_filled, filled_cost = filled_cost + p_cost, fees = fees + p_fee,
                   fee_currency = COALESCE(fee_currency, p_fee_currency), state = v_state,
                   txid = COALESCE(txid, p_txid), updated_at = now()
            WHERE id = p_order_id;
            IF v_state <> o.state THEN
                INSERT INTO order_transitions (order_id, from_state, to_state, reason, detail)
                VALUES (p_order_id, o.state, v_state, 'fill',
                        jsonb_build_object('fill_id', p_fill_id, 'filled_qty', v_filled::text,
                                           'venue_state', p_venue_state))
                RETURNING id, at INTO v_tid, v_tat;
            END IF;

            SELECT qty, avg_price, realized_pnl INTO pq, pa, pr
            FROM positions WHERE account = o.account AND symbol = o.symbol FOR UPDATE;
            IF NOT FOUND THEN
                pq := 0; pa := 0; pr := 0;
            END IF;
            v_signed := CASE WHEN p_side = 'buy' THEN p_qty ELSE -p_qty END;
            v_newq := pq + v_signed;
            IF pq = 0 OR sign(pq) = sign(v_signed) THEN
                v_newa := (abs(pq) * pa + p_qty * p_price) / (abs(pq) + p_qty);
            ELSE
                v_closed := least(p_qty, abs(pq));
                pr := pr + v_closed * (p_price - pa) * sign(pq);
                v_newa := CASE WHEN v_newq = 0 THEN 0 WHEN sign(v_newq) <> sign(pq) THEN p_price ELSE pa END;
            END IF;
            INSERT INTO positions (account, symbol, qty, avg_price, realized_pnl, fees, bought, sold, fills, updated_at)
            VALUES (o.account, o.symbol, v_newq, v_newa, pr, CASE WHEN p_fee_asset = p_quote THEN p_fee ELSE 0 END,
                    CASE WHEN p_side = 'buy' THEN p_qty ELSE 0 END, CASE WHEN p_side = 'sell' THEN p_qty ELSE 0 END,
                    1, now())
            ON CONFLICT (account, symbol) DO UPDATE SET qty = EXCLUDED.qty, avg_price = EXCLUDED.avg_price,
                realized_pnl = EXCLUDED.realized_pnl, fees = positions.fees + EXCLUDED.fees,
                bought = positions.bought + EXCLUDED.bought, sold = positions.sold + EXCLUDED.sold,
                fills = positions.fills + 1, updated_at = now();

            -- Tracked balances (seeded by reconciliation) move by exactly the reported cost and fee.
            UPDATE balances b SET amount = b.amount + d.delta, updated_at = now()
            FROM (SELECT asset, sum(delta) AS delta FROM (VALUES
                    (p_base, v_signed),
                    (p_quote, CASE WHEN p_side = 'buy' THEN -p_cost ELSE p_cost END),
                    (p_fee_asset, -p_fee)) AS v(asset, delta) GROUP BY asset) d
            WHERE b.asset = d.asset;

            SELECT * INTO o FROM orders WHERE id = p_order_id;
            RETURN QUERY SELECT true, v_from, v_tid, v_tat, o;
        END;
        $fn$;
        """,
    ),
)
