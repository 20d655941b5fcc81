"""``python -m sandbox.services.oms``: serve oms-service (settings from the environment)."""

from sandbox.services.kit.run import run
from sandbox.services.oms.app import create_app

run(create_app)
