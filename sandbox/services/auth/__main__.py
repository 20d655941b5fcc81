"""``python -m sandbox.services.auth`` serves auth-service."""

from sandbox.services.auth.app import create_app
from sandbox.services.kit.run import run

if __name__ == "__main__":
    run(create_app)
