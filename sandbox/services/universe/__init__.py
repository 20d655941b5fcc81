"""universe-service: tradable instruments synced from the venue's AssetPairs.

Instruments (symbol, altname, base/quote, order minimums, tick size,
decimals, venue status, taker and maker fee tiers) come from Kraken's
``public/AssetPairs`` endpoint and are kept in PostgreSQL; approvals and
exclusions for trading carry a reason and an append-only audit trail.  Reads
are served from an in-memory snapshot refreshed after every change (and across
replicas through PostgreSQL ``LISTEN/NOTIFY`` plus a revision poll).
"""
