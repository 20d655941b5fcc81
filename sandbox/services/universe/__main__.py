"""``python -m sandbox.services.universe`` serves universe-service."""

from sandbox.services.kit.run import run
from sandbox.services.universe.app import create_app

if __name__ == "__main__":
    run(create_app)
