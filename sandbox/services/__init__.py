"""The platform services run by the sandbox, built on the shared kit (:mod:`sandbox.services.kit`)."""
