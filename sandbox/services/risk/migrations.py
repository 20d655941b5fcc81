"""Schemas of the three risk datasets, each in its own PostgreSQL database.

* compliance: ``restricted`` (symbols / base assets, global or per account),
  ``kill_switches`` (one row per account) and ``audit_log``.
* esg: ``esg_exclusions`` (one row per asset) and ``audit_log``.
* diversification: ``account_limits`` (account ``*`` holds the defaults),
  ``position_limits``, ``fills`` (the idempotency key is ``fill_id``),
  ``positions`` (average cost plus the day's P&L inputs), ``marks`` and ``audit_log``.

Every change to a dataset writes an ``audit_log`` row and a ``pg_notify`` in the
same transaction, so replicas reload their in-memory copy when it commits.
"""

from __future__ import annotations

from sandbox.services.kit.db import Migration

AUDIT_SQL = """
CREATE TABLE audit_log (
    id         bigserial PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    actor_kind text NOT NULL DEFAULT 'user',
    action     text NOT NULL CHECK (action IN ('create', 'update', 'delete')),
    entity     text NOT NULL,
    key        text NOT NULL,
    before     jsonb,
    after      jsonb,
    request_id text
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC, id DESC);
CREATE INDEX audit_log_entity_key_idx ON audit_log (entity, key, at DESC);
"""

COMPLIANCE: tuple[Migration, ...] = (
    Migration(
        1,
        "restricted list, kill switches, audit",
        """
        CREATE TABLE restricted (
            id         bigserial PRIMARY KEY,
            kind       text NOT NULL CHECK (kind IN ('symbol', 'asset')),
            value      text NOT NULL,
            account    text,
            reason     text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            created_by text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by text NOT NULL
        );
        CREATE UNIQUE INDEX restricted_key_idx ON restricted (kind, value, coalesce(account, ''));

        CREATE TABLE kill_switches (
            account text PRIMARY KEY,
            active  boolean NOT NULL,
            reason  text NOT NULL DEFAULT '',
            set_by  text NOT NULL,
            at      timestamptz NOT NULL
        );
        """ + AUDIT_SQL,
    ),
)

ESG: tuple[Migration, ...] = (
    Migration(
        1,
        "esg exclusions, audit",
        """
        CREATE TABLE esg_exclusions (
            asset      text PRIMARY KEY,
            reason     text NOT NULL,
            score      numeric CHECK (score IS NULL OR (score >= 0 AND score <= 100)),
            updated_at timestamptz NOT NULL DEFAULT now(),
            updated_by text NOT NULL
        );
        """ + AUDIT_SQL,
    ),
)

DIVERSIFICATION: tuple[Migration, ...] = (
    Migration(
        1,
        "limits, fills, positions, marks, audit",
        """
        CREATE TABLE account_limits (
            account             text PRIMARY KEY,
            gross_exposure      numeric CHECK (gross_exposure IS NULL OR gross_exposure >= 0),
            daily_loss          numeric CHECK (daily_loss IS NULL OR daily_loss >= 0),
            concentration_pct   numeric CHECK (concentration_pct IS NULL OR (concentration_pct >= 0 AND concentration_pct <= 100)),
            concentration_floor numeric CHECK (concentration_floor IS NULL OR concentration_floor >= 0),
            updated_at          timestamptz NOT NULL DEFAULT now(),
            updated_by          text NOT NULL
        );

        CREATE TABLE position_limits (
            account      text NOT NULL,
            symbol       text NOT NULL,
            max_position numeric NOT NULL CHECK (max_position >= 0),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            updated_by   text NOT NULL,
            PRIMARY KEY (account, symbol)
        );

        CREATE TABLE fills (
            fill_id      text PRIMARY KEY,
            order_id     text,
            account      text NOT NULL,
            strategy     text,
            symbol       text NOT NULL,
            side         text NOT NULL CHECK (side IN ('buy', 'sell')),
            qty          numeric NOT NULL CHECK (qty > 0),
            price        numeric NOT NULL CHECK (price > 0),
            fee          numeric NOT NULL DEFAULT 0,
            fee_currency text,
            ts           timestamptz NOT NULL,
            received_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX fills_account_ts_idx ON fills (account, ts DESC);

        CREATE TABLE positions (
            account      text NOT NULL,
            symbol       text NOT NULL,
            qty          numeric NOT NULL DEFAULT 0,
            avg_cost     numeric NOT NULL DEFAULT 0,
            realised     numeric NOT NULL DEFAULT 0,
            fees         numeric NOT NULL DEFAULT 0,
            day          date NOT NULL DEFAULT '1970-01-01',
            day_open_qty numeric NOT NULL DEFAULT 0,
            day_cash     numeric NOT NULL DEFAULT 0,
            day_realised numeric NOT NULL DEFAULT 0,
            version      bigint NOT NULL DEFAULT 0,
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (account, symbol)
        );

        CREATE TABLE marks (
            symbol   text PRIMARY KEY,
            price    numeric NOT NULL CHECK (price > 0),
            at       timestamptz NOT NULL,
            day      date NOT NULL,
            day_open numeric NOT NULL,
            source   text NOT NULL CHECK (source IN ('fill', 'manual'))
        );
        """ + AUDIT_SQL,
    ),
)
