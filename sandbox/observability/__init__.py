"""Observability: rules, dashboards and Prometheus configuration derived from the spec,
the sandbox's own exporter, and the ``aether-sandbox metrics`` view.

See docs/observability.md and docs/slo.md.
"""
