"""The Feast feature store of the sandbox: its own virtualenv, the feature repository, materialisation, the server.

Feast runs from a virtualenv of its own (see :mod:`sandbox.features.venv` and
docs/feast.md for why); this package never imports ``feast``.
"""
