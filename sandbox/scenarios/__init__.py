"""QA scenarios: YAML files of market, accounts, steps and expectations, run against the running platform.

:mod:`.models` is the format (``scenarios/scenario.schema.json`` is generated from
it), :mod:`.loader` reads files with line numbers, :mod:`.runner` runs suites,
:mod:`.executor` runs one scenario, :mod:`.report` writes JUnit XML.
"""

from __future__ import annotations

from pathlib import Path

#: the shipped suites
SCENARIOS_DIR = Path(__file__).resolve().parents[2] / "scenarios"
SCHEMA_PATH = SCENARIOS_DIR / "scenario.schema.json"


def schema_text() -> str:
    """The JSON schema of a scenario file, as committed in ``scenarios/scenario.schema.json``."""
    import json

    from sandbox.scenarios.models import Scenario

    schema = Scenario.model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
