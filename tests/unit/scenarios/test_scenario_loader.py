"""Scenario files: parsing, problems with file, line and field, discovery, -k, the shipped suites, the schema."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from sandbox.cli.app import app
from sandbox.errors import InvalidInput
from sandbox.scenarios import SCENARIOS_DIR, SCHEMA_PATH, schema_text
from sandbox.scenarios.loader import discover, format_loc, load_all, matches, parse
from sandbox.scenarios.models import step_kind

GOOD = textwrap.dedent("""\
    name: walks two levels
    tags: [fills]
    market:
      books:
        - {pair: XBTUSD, asks: [["30000", "0.3"], ["30010", "0.5"]]}
    accounts:
      main: {}
    steps:
      - place: {id: o1, account: main, symbol: XBT/USD, side: buy, type: market, qty: "0.5"}
      - wait: {order: o1, state: filled}
    expect:
      - order: {order: o1, state: filled, avg_price: "30004"}
      - fills: {order: o1, prices: ["30000", "30010"]}
    """)


def problems_of(text: str, source: str = "s.yaml") -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        parse(text, source)
    return caught.value.problems


def test_a_valid_scenario_parses_into_typed_steps_and_expectations() -> None:
    scenario = parse(GOOD)
    assert [step_kind(s)[0] for s in scenario.steps] == ["place", "wait"]
    place = step_kind(scenario.steps[0])[1]
    assert (place.type, place.qty, place.price) == ("market", "0.5", None)
    assert [step_kind(e)[0] for e in scenario.expect] == ["order", "fills"]
    assert scenario.market.books[0].asks[1] == ("30010", "0.5")


def test_a_wrong_field_is_reported_with_file_line_and_location() -> None:
    text = GOOD.replace('qty: "0.5"}', 'qty: "lots"}')
    assert problems_of(text) == ["s.yaml:9 steps[0].place.qty: not a number: 'lots'"]


def test_unknown_fields_and_kinds_are_errors_at_their_lines() -> None:
    text = GOOD.replace("  - wait: {order: o1, state: filled}", "  - wiat: {order: o1, state: filled}")
    text = text.replace("tags: [fills]", "tags: [fills]\ncolour: red")
    found = problems_of(text)
    assert found[0] == "s.yaml:3 colour: Extra inputs are not permitted"
    assert found[1].startswith("s.yaml:11 steps[1]: unknown kind 'wiat'; one of 'place', 'cancel'")


def test_an_invalid_state_names_the_allowed_ones() -> None:
    found = problems_of(GOOD.replace("state: filled}\nexpect", "state: done}\nexpect"))
    assert len(found) == 1 and found[0].startswith("s.yaml:10 steps[1].wait.state")


def test_names_used_before_they_are_declared_are_reported_at_their_lines() -> None:
    text = GOOD.replace("  - wait: {order: o1,", "  - wait: {order: o9,").replace("account: main, symbol", "account: bob, symbol")
    assert problems_of(text) == [
        "s.yaml:9 steps[0].place.account: unknown account 'bob' (declare it under accounts:)",
        "s.yaml:10 steps[1].wait.order: no earlier step places an order 'o9'",
    ]


def test_yaml_syntax_errors_name_the_line() -> None:
    found = problems_of("name: x\nsteps:\n  - place: {id: o1\n  - wait: {}\n")
    assert len(found) == 1 and found[0].startswith("s.yaml:4: ")


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    assert problems_of("- just\n- a list\n") == ["s.yaml:1 (top level): expected a mapping"]


def test_format_loc_shows_union_tags_once() -> None:
    assert format_loc(("steps", 2, "place", "place", "qty")) == "steps[2].place.qty"
    assert format_loc(()) == "(top level)"


def test_discovery_finds_yaml_under_directories_and_refuses_missing_paths(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.yaml").write_text(GOOD)
    (tmp_path / "two.yml").write_text(GOOD.replace("walks two levels", "other"))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in discover([tmp_path])] == ["one.yaml", "two.yml"]
    with pytest.raises(InvalidInput):
        discover([tmp_path / "missing"])


def test_all_problems_of_all_files_come_in_one_error_and_names_must_be_unique(tmp_path) -> None:
    (tmp_path / "bad1.yaml").write_text(GOOD.replace('qty: "0.5"}', "qty: x}"))
    (tmp_path / "bad2.yaml").write_text("name: [\n")
    with pytest.raises(InvalidInput) as caught:
        load_all([tmp_path])
    assert [p.split(":")[0].rsplit("/", 1)[-1] for p in caught.value.problems] == ["bad1.yaml", "bad2.yaml"]
    for name in ("x.yaml", "y.yaml"):
        (tmp_path / name).write_text(GOOD)
    for name in ("bad1.yaml", "bad2.yaml"):
        (tmp_path / name).unlink()
    with pytest.raises(InvalidInput, match="two scenarios are named"):
        load_all([tmp_path])


def test_keyword_expressions_match_name_tags_and_path(tmp_path) -> None:
    path = tmp_path / "fills.yaml"
    path.write_text(GOOD)
    item = load_all([path])[0]
    assert matches("walks", item) and matches("fills and not replay", item) and matches("w*levels", item)
    assert not matches("replay", item) and not matches("walks and replay", item)
    with pytest.raises(InvalidInput):
        matches("walks and", item)


def test_the_shipped_suites_are_valid_and_large_enough() -> None:
    files = load_all([SCENARIOS_DIR])
    assert len(files) >= 25
    smoke = [f for f in files if f.suite == "smoke"]
    assert 3 <= len(smoke) <= 5
    tags = {t for f in files for t in f.scenario.tags}
    for topic in ("partial-fills", "replay", "cancel", "race", "policy", "risk", "insufficient-funds", "min-order",
                  "min-cost", "fees", "kill-switch", "dead-mans-switch", "venue-status", "rate-limits",
                  "reconciliation", "restart"):
        assert topic in tags, topic


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), \
        "run `aether-sandbox scenario schema --write` and commit scenarios/scenario.schema.json"
    schema = json.loads(schema_text())
    assert {"name", "steps", "expect", "accounts", "market"} <= set(schema["properties"])


def test_validate_and_list_commands() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["scenario", "validate", str(SCENARIOS_DIR / "smoke"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["valid"] >= 3
    listed = runner.invoke(app, ["scenario", "list", str(SCENARIOS_DIR), "-k", "smoke", "--json"])
    assert listed.exit_code == 0 and {r["suite"] for r in json.loads(listed.stdout)} == {"smoke"}


def test_validate_reports_problems_with_exit_code_2(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace('qty: "0.5"}', 'qty: "lots"}'))
    result = CliRunner().invoke(app, ["scenario", "validate", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:9 steps[0].place.qty: not a number: 'lots'" in result.stderr
