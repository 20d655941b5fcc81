"""``python -m sandbox.services.secrets`` runs secrets-service."""

from sandbox.services.kit.run import run
from sandbox.services.secrets.app import create_app

if __name__ == "__main__":
    run(create_app)
