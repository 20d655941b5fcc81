"""``python -m sandbox.cli``: the same as the ``aether-sandbox`` command."""

from sandbox.cli.app import main

main()
