"""The ``marketdata`` database: the mirrored Kraken tables and the CoinGecko tables.

This module is a contract: the Feast feature repository reads the mirror's
tables, so their names and columns change only together with it.

* ``market_trades``       one row per trade item of a ``kraken.trade.*`` record
* ``market_top_of_book``  one row per ``kraken.book.*`` record (snapshot or update): the top of
                           the book after applying it
* ``market_ohlc``         one row per bar item of a ``kraken.ohlc.*`` record

``ts`` is the exchange timestamp of the item as Kraken wrote it (trade time,
book timestamp, the bar's interval begin), in UTC; ``symbol`` is Kraken's
(``BTC/USD``).  ``(topic, kafka_offset[, item])`` identifies the Kafka record a
row came from, so re-mirroring a record inserts nothing (``ON CONFLICT DO
NOTHING``).  Every primary key includes ``ts`` because TimescaleDB requires the
partitioning column in every unique index.

Where the ``timescaledb`` extension is installed the tables become hypertables
(``create_hypertable`` on ``ts``); elsewhere (the embedded PostgreSQL, the offline
image) they stay plain tables with a ``(symbol, ts)`` index.
"""

from __future__ import annotations

from typing import Any

#: The database holding every table of this module.
DATABASE = "marketdata"

#: The time-series tables, partitioned on ``ts`` (hypertables where TimescaleDB exists).
TIME_SERIES_TABLES = (
    "market_trades",
    "market_top_of_book",
    "market_ohlc",
    "coingecko_markets",
    "coingecko_market_chart",
)

MARKETDATA_DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS market_trades (
        ts           timestamptz NOT NULL,
        symbol       text        NOT NULL,
        price        numeric     NOT NULL,
        qty          numeric     NOT NULL,
        side         text        NOT NULL,
        ord_type     text,
        trade_id     bigint,
        topic        text        NOT NULL,
        kafka_offset bigint      NOT NULL,
        item         int         NOT NULL,
        PRIMARY KEY (topic, kafka_offset, item, ts)
    )""",
    "CREATE INDEX IF NOT EXISTS market_trades_symbol_ts ON market_trades (symbol, ts)",
    """CREATE TABLE IF NOT EXISTS market_top_of_book (
        ts           timestamptz NOT NULL,
        symbol       text        NOT NULL,
        bid_price    numeric     NOT NULL,
        bid_qty      numeric     NOT NULL,
        ask_price    numeric     NOT NULL,
        ask_qty      numeric     NOT NULL,
        topic        text        NOT NULL,
        kafka_offset bigint      NOT NULL,
        PRIMARY KEY (topic, kafka_offset, ts)
    )""",
    "CREATE INDEX IF NOT EXISTS market_top_of_book_symbol_ts ON market_top_of_book (symbol, ts)",
    """CREATE TABLE IF NOT EXISTS market_ohlc (
        ts           timestamptz NOT NULL,
        symbol       text        NOT NULL,
        interval_min int         NOT NULL,
        open         numeric,
        high         numeric,
        low          numeric,
        close        numeric,
        vwap         numeric,
        volume       numeric,
        trades       int,
        topic        text        NOT NULL,
        kafka_offset bigint      NOT NULL,
        item         int         NOT NULL,
        PRIMARY KEY (topic, kafka_offset, item, ts)
    )""",
    "CREATE INDEX IF NOT EXISTS market_ohlc_symbol_ts ON market_ohlc (symbol, interval_min, ts)",
    # The mirror's committed Kafka positions: written in the same transaction as the rows, so a
    # rerun resumes exactly where the last committed batch ended (with the topic's book, for book topics).
    """CREATE TABLE IF NOT EXISTS mirror_offsets (
        consumer     text        NOT NULL,
        topic        text        NOT NULL,
        kafka_partition int      NOT NULL,
        next_offset  bigint      NOT NULL,
        book         jsonb,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer, topic, kafka_partition)
    )""",
    # CoinGecko /coins/markets: one row per coin and import (the snapshot's last_updated).
    """CREATE TABLE IF NOT EXISTS coingecko_markets (
        ts              timestamptz NOT NULL,
        coin_id         text        NOT NULL,
        symbol          text        NOT NULL,
        name            text        NOT NULL,
        vs_currency     text        NOT NULL,
        price           numeric,
        market_cap      numeric,
        market_cap_rank int,
        total_volume    numeric,
        circulating_supply numeric,
        PRIMARY KEY (coin_id, vs_currency, ts)
    )""",
    "CREATE INDEX IF NOT EXISTS coingecko_markets_symbol_ts ON coingecko_markets (symbol, ts)",
    # CoinGecko /coins/{id}/market_chart: the series of prices, market caps and volumes.
    """CREATE TABLE IF NOT EXISTS coingecko_market_chart (
        ts           timestamptz NOT NULL,
        coin_id      text        NOT NULL,
        vs_currency  text        NOT NULL,
        price        numeric,
        market_cap   numeric,
        total_volume numeric,
        PRIMARY KEY (coin_id, vs_currency, ts)
    )""",
)


def timescaledb_available(conn: Any) -> bool:
    """Whether the server can load the ``timescaledb`` extension (a psycopg 3 connection)."""
    row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    return row is not None


def ensure_schema(conn: Any) -> bool:
    """Create every table of the ``marketdata`` database if missing; return whether they are hypertables.

    ``conn`` is a psycopg 3 connection to the ``marketdata`` database.  Idempotent;
    commits.  Concurrent callers are serialised by a transaction-scoped advisory lock.
    """
    hyper = timescaledb_available(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('aether.marketdata.schema'))")
        if hyper:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        for statement in MARKETDATA_DDL:
            conn.execute(statement)
        if hyper:
            for table in TIME_SERIES_TABLES:
                conn.execute(
                    "SELECT create_hypertable(%s, 'ts', if_not_exists => TRUE, migrate_data => TRUE)",
                    (table,),
                )
    if not conn.autocommit:
        conn.commit()
    return hyper
