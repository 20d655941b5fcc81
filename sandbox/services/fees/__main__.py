"""``python -m sandbox.services.fees``: serve fees-service (settings from the environment)."""

from sandbox.services.fees.app import create_app
from sandbox.services.kit.run import run

run(create_app)
