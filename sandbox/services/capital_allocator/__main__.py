"""``python -m sandbox.services.capital_allocator`` runs capital-allocator."""

from sandbox.services.capital_allocator.app import create_app
from sandbox.services.kit.run import run

if __name__ == "__main__":
    run(create_app)
