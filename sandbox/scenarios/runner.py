"""Running a suite: prepare the platform once, schedule scenarios on N threads, collect results.

Scenarios run concurrently when they cannot see each other.  Each owns its
accounts, users, strategies and ids (:mod:`.executor`); what is shared is
locked: a scenario holds the pairs it trades or whose book it sets, and runs
*alone* when it changes something platform-wide (a fault on the platform's
key, the venue's status, a restarted or stopped service, a universe sync, a
delisting, or ``exclusive: true``).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox.scenarios import models as m
from sandbox.scenarios.events import EventCollector
from sandbox.scenarios.executor import Failure, ScenarioResult, ScenarioRun, StepFailed
from sandbox.scenarios.loader import ScenarioFile
from sandbox.scenarios.platform import Platform

EXCLUSIVE = "*"


@dataclass
class SuiteResult:
    """Every scenario's result and the run's totals."""

    run_id: str
    results: list[ScenarioResult] = field(default_factory=list)
    seconds: float = 0.0
    parallel: int = 1

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.outcome == "passed")

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.outcome == "failed")

    @property
    def errors(self) -> int:
        return sum(1 for r in self.results if r.outcome == "error")

    @property
    def ok(self) -> bool:
        return self.passed == len(self.results)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "seconds": round(self.seconds, 3), "parallel": self.parallel,
                "total": len(self.results), "passed": self.passed, "failed": self.failed, "errors": self.errors,
                "scenarios": [r.as_dict() for r in self.results],
                "normalised": [r.normalised() for r in self.results]}


class PairNames:
    """Every spelling of the venue's pairs -> the pair key (from public AssetPairs)."""

    def __init__(self, assetpairs: dict[str, Any]) -> None:
        self.keys: dict[str, str] = {}
        for key, entry in assetpairs.items():
            names = {key, entry.get("altname", ""), entry.get("wsname", "")}
            names |= {n.replace("/", "") for n in list(names)}
            names |= {n.replace("XBT", "BTC") for n in list(names)}
            for name in filter(None, names):
                self.keys[name.upper()] = key

    def key(self, name: str) -> str:
        """The pair key of ``name`` (itself when unknown)."""
        return self.keys.get(name.upper().replace("-", "/"), self.keys.get(name.upper().replace("-", ""), name))


def resources(scenario: m.Scenario, pairs: PairNames) -> set[str]:
    """What the scenario must hold: pair keys, or :data:`EXCLUSIVE` for the whole platform."""
    held: set[str] = set()
    if scenario.exclusive:
        return {EXCLUSIVE}
    held |= {pairs.key(b.pair) for b in scenario.market.books}
    held |= {pairs.key(r.pair) for r in scenario.market.replay}
    for step in scenario.steps:
        kind, body = m.step_kind(step)
        if kind in ("restart", "stop", "start", "venue_listing") or (kind == "venue_status" and body.sync) or (kind == "fault" and body.account is None and body.action != "status") or \
                (kind == "fault" and body.action == "status" and not body.pair) or \
                (kind == "venue_status" and not body.pair):
            return {EXCLUSIVE}
        if kind == "fault" and body.pair:
            held.add(pairs.key(body.pair))
        for name in ("pair", "symbol"):
            value = getattr(body, name, None)
            if isinstance(value, str):
                held.add(pairs.key(value))
        if kind == "venue" and "pair" in body.params:
            held.add(pairs.key(str(body.params["pair"])))
    return held


class Scheduler:
    """Hands out scenarios whose resources are free, in file order."""

    def __init__(self, items: list[tuple[int, ScenarioFile, set[str]]]) -> None:
        self.pending = list(items)
        self.busy: list[set[str]] = []
        self.cond = threading.Condition()

    def _free(self, wanted: set[str]) -> bool:
        if not self.busy:
            return True
        if EXCLUSIVE in wanted or any(EXCLUSIVE in b for b in self.busy):
            return False
        return not any(wanted & b for b in self.busy)

    def take(self) -> tuple[int, ScenarioFile, set[str]] | None:
        with self.cond:
            while self.pending:
                for item in self.pending:
                    if self._free(item[2]):
                        self.pending.remove(item)
                        self.busy.append(item[2])
                        return item
                    if EXCLUSIVE in item[2]:
                        break  # an exclusive one waits its turn: do not starve it
                self.cond.wait(0.5)
            return None

    def done(self, held: set[str]) -> None:
        with self.cond:
            self.busy.remove(held)
            self.cond.notify_all()


def prepare(platform: Platform, files: list[ScenarioFile]) -> dict[str, Any]:
    """Platform-wide set-up once per run: approvals, NAV, the platform venue account's fee volume."""
    with platform.client() as http:
        token = platform.admin_token(http)
        auth = {"Authorization": f"Bearer {token}"}
        venue = platform.url("kraken-venue")
        approve = sorted({name for f in files for name in f.scenario.approve})
        for symbol in approve:
            answer = http.post(platform.url("universe-service") + f"/v1/instruments/{symbol.replace('/', '')}/approve",
                               json={"reason": "approved for scenario runs"}, headers=auth)
            if answer.status_code != 200:
                raise StepFailed(f"approve {symbol} at universe-service", f"HTTP {answer.status_code}: {answer.text[:200]}")
        if approve:
            http.post(platform.url("policy-service") + "/v1/refresh", headers=auth)
        if any(f.scenario.strategies for f in files):
            portfolio = http.get(platform.url("capital-allocator") + "/v1/portfolio", headers=auth)
            if portfolio.status_code == 404:
                http.put(platform.url("capital-allocator") + "/v1/portfolio", headers=auth,
                         json={"nav": "1000000000", "cash_buffer_pct": "0", "currency": "USD"})
        accounts = http.get(venue + "/admin/accounts").json()
        account = next((a for a in accounts if a.get("name") == "platform"), None)
        if account is None:
            raise StepFailed("the venue has the platform's account (KRAKEN_CREDENTIALS_DIR)", "it has none")
        # Fee tiers follow the 30-day volume: start every run from the same tier so fees repeat.
        http.patch(venue + f"/admin/accounts/{account['account_id']}", json={"volume_30d": "0"})
        pairs = PairNames(http.get(venue + "/0/public/AssetPairs").json()["result"])
    return {"platform_account": account, "pairs": pairs}


def run_one(platform: Platform, item: ScenarioFile, prefix: str, events: EventCollector,
            context: dict[str, Any]) -> ScenarioResult:
    """One scenario, start to clean-up."""
    result = ScenarioResult(item.name, str(item.path), item.suite)
    started = time.monotonic()
    run = ScenarioRun(platform, item.scenario, prefix, events, context["platform_account"])
    where = "set-up"
    try:
        run.setup()
        where = "steps"
        run.run_steps()
        where = "expect"
        for index, expectation in enumerate(item.scenario.expect):
            try:
                run.check(expectation)
            except StepFailed as exc:
                kind, _ = m.step_kind(expectation)
                result.failures.append(Failure(f"expect[{index}] {kind}", exc.expectation, exc.happened,
                                               run.relevant_events(exc.orders)))
    except StepFailed as exc:
        result.failures.append(Failure(where, exc.expectation, exc.happened, run.relevant_events(exc.orders)))
    except (httpx.HTTPError, KeyError, ValueError, TypeError) as exc:
        result.outcome, result.error = "error", f"{where}: {type(exc).__name__}: {exc}"
    finally:
        problems = run.cleanup()
        if problems and result.outcome == "passed" and not result.failures:
            result.failures.append(Failure("clean-up", "the scenario leaves the platform as it found it",
                                           "; ".join(problems)))
    if result.failures and result.outcome == "passed":
        result.outcome = "failed"
    result.observations = run.observations
    result.seconds = time.monotonic() - started
    return result


def run_suite(platform: Platform, files: list[ScenarioFile], parallel: int = 1,
              progress: Callable[[ScenarioResult], None] | None = None) -> SuiteResult:
    """Every scenario of ``files``: prepared once, scheduled on ``parallel`` threads, in file order."""
    run_id = secrets.token_hex(3)
    suite = SuiteResult(run_id, parallel=parallel)
    started = time.monotonic()
    context = prepare(platform, files)
    items = [(i, f, resources(f.scenario, context["pairs"])) for i, f in enumerate(files)]
    scheduler = Scheduler(items)
    results: dict[int, ScenarioResult] = {}
    lock = threading.Lock()

    with EventCollector(platform.kafka, relay=platform.kafka_relay) as events:
        def worker() -> None:
            while (item := scheduler.take()) is not None:
                index, scenario_file, held = item
                try:
                    result = run_one(platform, scenario_file, f"sc-{run_id}-{index:02d}", events, context)
                finally:
                    scheduler.done(held)
                with lock:
                    results[index] = result
                if progress is not None:
                    progress(result)

        threads = [threading.Thread(target=worker, name=f"scenario-{n}", daemon=True)
                   for n in range(max(1, min(parallel, len(items))))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    suite.results = [results[i] for i in sorted(results)]
    suite.seconds = time.monotonic() - started
    return suite
