"""The platform's data workflows as code: the Kraken stream mirror, the CoinGecko import, the daily
report and the TimescaleDB backup, their run history, and the workflow-scheduler component.

See docs/workflows.md.  :mod:`sandbox.workflows.marketdata` is the schema contract the
Feast feature repository reads.
"""
