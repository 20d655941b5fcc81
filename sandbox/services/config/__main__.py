"""``python -m sandbox.services.config``: serve config-service (settings from the environment)."""

from sandbox.services.config.app import create_app
from sandbox.services.kit.run import run

if __name__ == "__main__":
    run(create_app)
