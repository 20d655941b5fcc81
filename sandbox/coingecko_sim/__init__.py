"""A CoinGecko API (v3) simulator served from fixtures, with deterministic fault injection.

Stands in for api.coingecko.com in the sandbox: ``/api/v3/ping``,
``/api/v3/coins/markets`` and ``/api/v3/coins/{id}/market_chart`` answer in
CoinGecko's response format from ``fixtures/coingecko`` (written by the seeded
generator :mod:`sandbox.coingecko_sim.generate`, no real market data).
``POST /admin/faults`` queues HTTP errors (429 with ``Retry-After``, 500, ...) for
the next matching requests, in order, so a test sees exactly the faults it asked for.
"""
