"""Expectation matching: decimals, subsets, subsequences, presence, one-of, dotted paths, normalisation."""

from __future__ import annotations

from sandbox.scenarios.matching import compare, compare_paths, dotted, normalise, same, subsequence


def test_numbers_compare_as_decimals() -> None:
    assert same("0.50", 0.5) and same("30004", "30004.000") and same(2, "2")
    assert not same("0.5", "0.51") and not same(True, 1)
    assert compare({"avg_price": "30004", "fees": None}, {"avg_price": "30004.00", "fees": "1"}) == []


def test_a_mismatch_says_what_was_expected_and_what_came() -> None:
    [problem] = compare({"state": "filled"}, {"state": "partially_filled"})
    assert str(problem) == "state: expected 'filled', got 'partially_filled'"
    [problem] = compare({"filled_qty": "0.5"}, {})
    assert str(problem) == "filled_qty: expected '0.5', got nothing"


def test_reasons_must_include_the_expected_codes() -> None:
    assert compare({"reasons": ["a"]}, {"reasons": ["b", "a"]}) == []
    [problem] = compare({"reasons": ["a", "c"]}, {"reasons": ["a"]})
    assert str(problem) == "reasons: expected \"to include ['a', 'c']\", got ['a']"


def test_lists_compare_element_by_element_and_a_list_against_a_value_means_one_of() -> None:
    assert compare({"prices": ["1", "2"]}, {"prices": ["1.0", "2"]}) == []
    assert compare({"prices": ["1", "2"]}, {"prices": ["2", "1"]})
    assert compare({"state": ["new", "filled"]}, {"state": "filled"}) == []
    assert compare({"state": ["new", "filled"]}, {"state": "canceled"})


def test_presence_fields_and_subsequences() -> None:
    assert compare({"txid": True}, {"txid": "OABC"}) == [] and compare({"txid": False}, {"txid": None}) == []
    assert compare({"txid": True}, {"txid": None})
    assert subsequence(["a", "c"], ["a", "b", "c"]) and not subsequence(["c", "a"], ["a", "b", "c"])
    assert compare({"passes_through": ["pending_new", "filled"]}, {"passes_through": ["pending_new", "new", "filled"]}) == []
    assert compare({"includes": ["x", "y"]}, {"includes": ["y", "x"]})


def test_dotted_paths_into_json() -> None:
    doc = {"result": {"fees": {"XXBTZUSD": {"fee": "0.2600"}}, "list": [{"a": 1}]}}
    assert dotted(doc, "result.fees.XXBTZUSD.fee") == "0.2600" and dotted(doc, "result.list.0.a") == 1
    assert dotted(doc, "result.missing.x") is None
    assert compare_paths({"result.fees.XXBTZUSD.fee": "0.26"}, doc) == []
    [problem] = compare_paths({"result.list.0.a": 2}, doc, "json.")
    assert str(problem) == "json.result.list.0.a: expected 2, got 1"


def test_normalise_makes_runs_comparable() -> None:
    assert normalise({"b": "0.50", "a": [1.0, "-0", "x"], "c": True}) == {"a": ["1", "0", "x"], "b": "0.5", "c": True}
