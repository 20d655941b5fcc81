"""capital-allocator: capital per strategy from a NAV, a cash buffer and per-strategy targets.

Allocation runs (``POST /v1/rebalance``, and a strategy's ``allocate`` /
``release`` from the strategy-orchestrator) are computed deterministically in
Decimal (:mod:`.algorithm`) and stored with a history of who ran them, when,
with which inputs and outputs. The OMS reserves capital for open orders
(idempotent on the order id); ``GET /v1/strategies/{strategy}/capital`` serves
allocated, reserved and available from memory, kept consistent across replicas
through PostgreSQL ``LISTEN/NOTIFY``. See docs/services/capital-allocator.md.
"""
