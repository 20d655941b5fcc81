"""The runner's own logic: what a scenario holds, the scheduler, JUnit XML, normalised results."""

from __future__ import annotations

import json
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

from sandbox.scenarios.executor import Failure, ScenarioResult
from sandbox.scenarios.loader import ScenarioFile, parse
from sandbox.scenarios.report import explain, junit, normalised_json
from sandbox.scenarios.runner import EXCLUSIVE, PairNames, Scheduler, SuiteResult, resources

PAIRS = PairNames({"XXBTZUSD": {"altname": "XBTUSD", "wsname": "XBT/USD"},
                   "XETHZUSD": {"altname": "ETHUSD", "wsname": "ETH/USD"}})


def scenario(steps: str, extra: str = ""):
    return parse(f"name: s\naccounts:\n  a: {{}}\n{extra}steps:\n{steps}")


def test_pair_names_resolve_every_spelling() -> None:
    assert {PAIRS.key(n) for n in ("XBTUSD", "XBT/USD", "btc/usd", "XXBTZUSD", "BTC-USD")} == {"XXBTZUSD"}
    assert PAIRS.key("DOGEUSD") == "DOGEUSD"


def test_a_scenario_holds_the_pairs_it_touches() -> None:
    s = scenario("  - place: {id: o, account: a, symbol: XBT/USD, side: buy, qty: 1, price: 1}\n"
                 "  - venue: {account: a, method: AddOrder, params: {pair: ETHUSD}}\n")
    assert resources(s, PAIRS) == {"XXBTZUSD", "XETHZUSD"}


def test_platform_wide_steps_make_a_scenario_exclusive() -> None:
    assert resources(scenario("  - restart: {service: oms-service}\n"), PAIRS) == {EXCLUSIVE}
    assert resources(scenario("  - fault: {action: drop, endpoint: AddOrder}\n"), PAIRS) == {EXCLUSIVE}
    assert resources(scenario("  - venue_status: {status: maintenance}\n"), PAIRS) == {EXCLUSIVE}
    assert resources(scenario("  - fault: {action: drop, account: a}\n"), PAIRS) == set()
    assert resources(scenario("  - venue_status: {status: cancel_only, pair: XBTUSD}\n"), PAIRS) == {"XXBTZUSD"}
    assert resources(scenario("  - sleep: {seconds: 1}\n", "exclusive: true\n"), PAIRS) == {EXCLUSIVE}
    # a stopped dependency, a universe sync or a delisting changes what every scenario sees
    assert resources(scenario("  - stop: {service: secrets-service}\n  - start: {service: secrets-service}\n"),
                     PAIRS) == {EXCLUSIVE}
    assert resources(scenario("  - venue_status: {status: limit_only, pair: XBTUSD, sync: true}\n"),
                     PAIRS) == {EXCLUSIVE}
    assert resources(scenario("  - venue_listing: {pair: XBTUSD, listed: false}\n"), PAIRS) == {EXCLUSIVE}


def test_the_scheduler_never_runs_conflicting_scenarios_together() -> None:
    items = [(i, None, held) for i, held in enumerate([{"A"}, {"A"}, {"B"}, {EXCLUSIVE}, {"C"}])]
    scheduler = Scheduler(items)
    running: list[set[str]] = []
    lock = threading.Lock()
    clashes: list[tuple[set[str], set[str]]] = []
    order: list[int] = []

    def worker() -> None:
        while (item := scheduler.take()) is not None:
            with lock:
                for other in running:
                    if EXCLUSIVE in other or EXCLUSIVE in item[2] or other & item[2]:
                        clashes.append((other, item[2]))
                running.append(item[2])
                order.append(item[0])
            threading.Event().wait(0.02)
            with lock:
                running.remove(item[2])
            scheduler.done(item[2])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert clashes == [] and sorted(order) == [0, 1, 2, 3, 4]


def _suite() -> SuiteResult:
    ok = ScenarioResult("fills", "scenarios/smoke/a.yaml", "smoke", seconds=1.5,
                        observations=[{"what": "order o", "avg_price": "30004.00"}])
    bad = ScenarioResult("wrong", "tests/x/b.yaml", "x", outcome="failed", seconds=0.5, failures=[
        Failure("expect[0] order", "order o: state 'filled'", "state: expected 'filled', got 'new'",
                ["o: pending_new -> new (venue_acknowledged)"])])
    err = ScenarioResult("broken", "tests/x/c.yaml", "x", outcome="error", error="set-up: KeyError: 'x'")
    return SuiteResult("abc123", [ok, bad, err], seconds=2.0)


def test_junit_xml_has_suites_cases_and_readable_failures(tmp_path: Path) -> None:
    root = junit(_suite()).getroot()
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("errors")) == ("testsuites", "3", "1", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["x"].get("tests") == "2" and suites["smoke"].get("failures") == "0"
    failure = root.find(".//testcase[@name='wrong']/failure")
    assert failure is not None and "got 'new'" in failure.get("message")
    assert "relevant events:" in failure.text and "venue_acknowledged" in failure.text
    path = tmp_path / "j.xml"
    junit(_suite()).write(str(path), encoding="utf-8", xml_declaration=True)
    assert ET.parse(path).getroot().get("tests") == "3"


def test_explain_and_normalised_results() -> None:
    suite = _suite()
    text = explain(suite.results[1].failures)
    assert text.splitlines()[:2] == ["[expect[0] order] expected: order o: state 'filled'",
                                     "  happened: state: expected 'filled', got 'new'"]
    first = json.loads(normalised_json(suite))
    assert first[0] == {"name": "fills", "outcome": "passed", "failures": [],
                        "observations": [{"avg_price": "30004", "what": "order o"}]}
    again = _suite()
    again.results[0].seconds = 9.9
    assert normalised_json(again) == normalised_json(suite)
    assert suite.as_dict()["passed"] == 1 and not suite.ok


def test_scenario_files_report_their_suite(tmp_path: Path) -> None:
    item = ScenarioFile(tmp_path / "venue" / "x.yaml", scenario("  - sleep: {seconds: 1}\n"))
    assert item.suite == "venue" and item.name == "s"
