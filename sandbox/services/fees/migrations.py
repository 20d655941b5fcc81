"""Schema of fees-service (PostgreSQL; ``fills`` becomes a hypertable when TimescaleDB exists).

* ``fee_schedules`` – the persisted copy of every schedule the service knows
  (from universe-service or set by an admin), so a restart with universe down
  still serves the last known schedules. Tiers are stored as JSON arrays of
  decimal *strings* to keep them exact.
* ``fill_ids`` – one row per fill id ever accepted: the idempotency key. It is
  separate from ``fills`` because a hypertable's unique indexes must include
  its time column, and a fill id must be unique regardless of its timestamp.
* ``fills`` – the time series volume is summed from (``ts`` is the time column).
"""

from __future__ import annotations

from sandbox.services.kit.db import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "fee schedules and fills",
        """
        CREATE TABLE fee_schedules (
            symbol              text PRIMARY KEY,
            quote               text NOT NULL,
            quote_decimals      smallint NOT NULL CHECK (quote_decimals BETWEEN 0 AND 18),
            fee_volume_currency text NOT NULL,
            taker               jsonb NOT NULL,
            maker               jsonb NOT NULL,
            source              text NOT NULL CHECK (source IN ('universe', 'manual')),
            updated_at          timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE fill_ids (
            fill_id     text PRIMARY KEY,
            ts          timestamptz NOT NULL,
            digest      text NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE fills (
            fill_id      text NOT NULL,
            account      text NOT NULL,
            symbol       text NOT NULL,
            side         text NOT NULL CHECK (side IN ('buy', 'sell')),
            qty          numeric NOT NULL CHECK (qty > 0),
            price        numeric NOT NULL CHECK (price > 0),
            fee          numeric NOT NULL CHECK (fee >= 0),
            liquidity    text NOT NULL CHECK (liquidity IN ('maker', 'taker')),
            quote        text NOT NULL,
            notional     numeric NOT NULL,
            usd_notional numeric,
            ts           timestamptz NOT NULL,
            source       text NOT NULL CHECK (source IN ('kafka', 'http')),
            received_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE INDEX fills_account_ts_idx ON fills (account, ts DESC);
        CREATE INDEX fills_symbol_ts_idx ON fills (symbol, ts DESC);
        """,
    ),
)
