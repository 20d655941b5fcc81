"""``python -m sandbox.services.strategy_orchestrator`` runs strategy-orchestrator."""

from sandbox.services.kit.run import run
from sandbox.services.strategy_orchestrator.app import create_app

if __name__ == "__main__":
    run(create_app)
