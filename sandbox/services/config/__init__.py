"""config-service: namespaced, versioned configuration with optimistic concurrency.

Run with ``python -m sandbox.services.config``; build the app with
:func:`sandbox.services.config.app.create_app`.
"""
