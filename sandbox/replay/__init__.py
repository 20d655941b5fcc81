"""Replay of recorded Kraken WebSocket sessions.

* :mod:`sandbox.replay.checksum`, :mod:`sandbox.replay.book` - Kraken order books
  (v1 and v2) kept as raw number tokens, with checksum verification.
* :mod:`sandbox.replay.protocol` - what a frame is (API version, channel, symbols,
  exchange time) and exact JSON writing.
* :mod:`sandbox.replay.fixture` - the session fixture format (one frame per line
  with receive time and direction, plus a manifest header).
* :mod:`sandbox.replay.importers` - captures made elsewhere into that format.
* :mod:`sandbox.replay.validate` - checks a fixture, naming file and line.
* :mod:`sandbox.replay.generator` (with :mod:`~sandbox.replay.market`,
  :mod:`~sandbox.replay.pairs`) - seeded synthetic sessions.
* :mod:`sandbox.replay.feed` - depth views of a book and the v1/v2 frame builders.
* :mod:`sandbox.replay.player` - a session as the venue replays it (market state,
  rebasing); the server itself is :mod:`sandbox.venue.ws`.
* :mod:`sandbox.replay.record` - recording a live (or simulated) session.

See docs/replay.md.
"""
