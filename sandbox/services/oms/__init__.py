"""oms-service: order management — checks, capital, the venue, executions, positions and reconciliation.

See ``docs/services/oms.md``.
"""
