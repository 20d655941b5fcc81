"""kraken-ws-ingest: Kraken WebSocket market data into Kafka, every book checksum verified.

Run as ``python -m sandbox.ingest``.  It connects to a Kraken WebSocket URL (the
venue simulator by default, any Kraken-compatible URL), subscribes to the
configured symbols and channels, keeps each order book and verifies every
checksum (:mod:`sandbox.replay.book`), detects gaps and crossed books,
resubscribes for a fresh snapshot after a checksum failure or disconnect,
reconnects with exponential backoff, and publishes normalised records to one
Kafka topic per channel and symbol (``kraken.book.XBT-USD``).

Modules: :mod:`~sandbox.ingest.settings` (``INGEST_*`` environment),
:mod:`~sandbox.ingest.normalise` (frames to records, per-topic sequence),
:mod:`~sandbox.ingest.gaps` (trade-id and timestamp continuity),
:mod:`~sandbox.ingest.protocol` (subscribe messages, acknowledgements),
:mod:`~sandbox.ingest.feed` (the connection loop), :mod:`~sandbox.ingest.publisher`
(confluent-kafka), :mod:`~sandbox.ingest.metrics`, :mod:`~sandbox.ingest.httpd`
(``/healthz``, ``/readyz``, ``/metrics``, ``/stats``, ``POST /subscriptions``),
:mod:`~sandbox.ingest.statefile` and :mod:`~sandbox.ingest.probe` (the exec probes).

This file imports nothing: ``python -m sandbox.ingest.probe`` must stay cheap.
"""
