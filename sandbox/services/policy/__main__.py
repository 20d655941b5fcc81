"""``python -m sandbox.services.policy`` serves policy-service."""

from sandbox.services.kit.run import run
from sandbox.services.policy.app import create_app

if __name__ == "__main__":
    run(create_app)
