"""strategy-orchestrator: the strategy registry and its lifecycle state machine.

Strategies are registered with their parameters, accounts, symbols and capital
target. Their lifecycle (registered, starting, running, paused, stopping,
stopped, failed) only moves along the transitions of :mod:`.machine`; every
transition is stored in PostgreSQL under a row lock together with who made it,
when and why. Starting a strategy asks capital-allocator for its capital and
stopping one asks oms-service to cancel its open orders and capital-allocator
to release its capital: these steps run as leased background workflows whose
outcome is recorded, and a workflow left behind by a crash is resumed by the
next replica that sees its lease expire (on start-up too). See
docs/services/strategy-orchestrator.md.
"""
