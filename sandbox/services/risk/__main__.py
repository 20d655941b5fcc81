"""``python -m sandbox.services.risk``: serve risk-service (settings from the environment)."""

from sandbox.services.kit.run import run
from sandbox.services.risk.app import create_app

run(create_app)
