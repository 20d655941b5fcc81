"""Running one scenario against the platform: set up its own accounts, run its steps, check, clean up.

Isolation: every scenario gets names of its own (``sc-<run>-<n>-<alias>`` for
OMS accounts and strategies, a platform user ``sc-<run>-<n>`` with the trader
and risk-officer roles, unique client order ids), its own venue accounts and
API keys (registered in secrets-service for its OMS accounts), and fault rules
that are removed when it ends.  What it cannot own (a pair's book, the venue's
status, a fault on the platform's key, a restarted or stopped service, a universe
sync, a delisting) the runner serialises (see :mod:`.runner`).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from sandbox.scenarios import models as m
from sandbox.scenarios.events import EventCollector
from sandbox.scenarios.matching import Mismatch, compare, compare_paths, dotted, normalise, render, same
from sandbox.scenarios.platform import NotUp, Platform, new_password

TERMINAL = ("filled", "canceled", "rejected", "expired")


class StepFailed(Exception):
    """An expectation did not hold: what was expected, what happened."""

    def __init__(self, expectation: str, happened: str, orders: tuple[str, ...] = ()) -> None:
        super().__init__(f"{expectation}: {happened}")
        self.expectation = expectation
        self.happened = happened
        self.orders = orders


@dataclass
class Failure:
    """One failed expectation, with the events around it."""

    where: str
    expectation: str
    happened: str
    events: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"where": self.where, "expectation": self.expectation, "happened": self.happened,
                "events": self.events}


@dataclass
class ScenarioResult:
    """How one scenario went."""

    name: str
    path: str
    suite: str
    outcome: str = "passed"  # passed, failed, error
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "suite": self.suite, "outcome": self.outcome,
                "seconds": round(self.seconds, 3), "failures": [f.as_dict() for f in self.failures],
                "error": self.error, "observations": self.observations}

    def normalised(self) -> dict[str, Any]:
        """What must be the same run after run (no times, ids or durations)."""
        return {"name": self.name, "outcome": self.outcome,
                "failures": [{"where": f.where, "expectation": f.expectation} for f in self.failures],
                "observations": normalise(self.observations)}


@dataclass
class OrderRef:
    """An order the scenario placed."""

    alias: str
    body: dict[str, Any]
    id: str | None = None
    status: int | None = None
    answer: dict[str, Any] = field(default_factory=dict)
    thread: threading.Thread | None = None


class ScenarioRun:
    """One scenario's run (one thread)."""

    def __init__(self, platform: Platform, scenario: m.Scenario, prefix: str, events: EventCollector,
                 platform_account: dict[str, Any]) -> None:
        self.p = platform
        self.s = scenario
        self.prefix = prefix
        self.events = events
        self.platform_account = platform_account
        self.http = platform.client()
        self.accounts: dict[str, dict[str, Any]] = {}
        self.strategies: dict[str, str] = {}
        self.orders: dict[str, OrderRef] = {}
        self.saved: dict[str, Any] = {}
        self.faults: list[str] = []
        self.statuses: list[tuple[str | None, str]] = []
        self.synced = False
        self.listings: list[tuple[str, bool]] = []
        self.stopped: list[str] = []
        self.cursors: dict[str, str] = {}
        self.books: set[str] = set()
        self.kill_switches: set[str] = set()
        self.log: list[str] = []
        self.observations: list[dict[str, Any]] = []
        self.token = ""
        self.admin = ""
        self._cid = 0

    # -- HTTP ---------------------------------------------------------------------------------

    def call(self, service: str, method: str, path: str, body: Any = None, token: str | None = None,
             expect: tuple[int, ...] | None = (200, 201, 204)) -> httpx.Response:
        """One request with the scenario user's token (or ``token``); ``StepFailed`` on an unexpected status."""
        headers = {"Authorization": f"Bearer {token or self.token}"} if (token or self.token) else {}
        try:
            answer = self.http.request(method, self.p.url(service) + path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise StepFailed(f"{method} {service}{path} answers", f"{type(exc).__name__}: {exc}") from exc
        if expect is not None and answer.status_code not in expect:
            raise StepFailed(f"{method} {service}{path} succeeds", f"HTTP {answer.status_code}: {answer.text[:300]}")
        return answer

    def venue_admin(self, method: str, path: str, body: Any = None) -> Any:
        """The venue's admin API (loopback only)."""
        answer = self.call("kraken-venue", method, "/admin" + path, body, token="-", expect=None)
        if answer.status_code >= 400:
            raise StepFailed(f"venue admin {method} {path}", f"HTTP {answer.status_code}: {answer.text[:300]}")
        return answer.json() if answer.content else None

    # -- set-up -----------------------------------------------------------------------------------

    def setup(self) -> None:
        """The scenario's user, accounts, strategies and market."""
        self.admin = self.p.admin_token(self.http)
        user, password = self.prefix, new_password()
        self.call("auth-service", "POST", "/v1/users", {"username": user, "password": password,
                                                         "roles": ["trader", "risk-officer"]}, token=self.admin)
        self.token = self.call("auth-service", "POST", "/v1/login", {"username": user, "password": password},
                               token="-").json()["access_token"]
        for alias, acct in self.s.accounts.items():
            self._account(alias, acct)
        for alias, strat in self.s.strategies.items():
            self._strategy(alias, strat)
        for book in self.s.market.books:
            self.venue_admin("PUT", f"/book/{book.pair}", {"bids": book.bids, "asks": book.asks})
            self.books.add(book.pair)
        for replay in self.s.market.replay:
            name = f"{self.prefix}-{replay.pair}"
            self.cursors[replay.pair] = name
            state = self.venue_admin("POST", "/market/replay", {"cursor": name, "session": replay.session,
                                                                 "pair": replay.pair, "frames": replay.frames,
                                                                 "trades": replay.trades})
            self.note(f"replay {replay.session} {replay.pair}: best bid {state['best_bid']}, ask {state['best_ask']}")

    def _account(self, alias: str, acct: m.Account) -> None:
        name = f"{self.prefix}-{alias}"
        venue = self.venue_admin("POST", "/accounts", {"name": name, "balances": acct.balances, "tier": acct.tier,
                                                       "volume_30d": acct.volume_30d})
        self.accounts[alias] = {"oms": name, "venue_id": venue["account_id"], "key": venue["api_key"],
                                "secret": venue["api_secret"]}
        if acct.permissions:
            self.call("secrets-service", "POST", f"/v1/accounts/{name}/kraken-keys",
                      {"label": "scenario", "api_key": venue["api_key"], "private_key": venue["api_secret"],
                       "permissions": acct.permissions}, token=self.admin)
        if acct.limits is not None:
            self.call("risk-service", "PUT", f"/v1/limits/accounts/{name}", acct.limits)
        for symbol, limit in acct.position_limits.items():
            self.call("risk-service", "PUT", f"/v1/limits/positions/{name}/{symbol.replace('/', '%2F')}",
                      {"max_position": limit})
        for item in acct.restricted:
            self.call("risk-service", "POST", "/v1/compliance/restricted",
                      {"kind": item.kind, "value": item.value, "account": name, "reason": "scenario"})
        if acct.rules is not None:
            self.call("policy-service", "PUT", f"/v1/accounts/{name}/rules", acct.rules, token=self.admin)

    def _strategy(self, alias: str, strat: m.StrategyCapital) -> None:
        name = f"{self.prefix}-{alias}"
        self.strategies[alias] = name
        if not strat.registered:
            return
        self.call("capital-allocator", "PUT", f"/v1/strategies/{name}/target",
                  {"weight": "0", "min_capital": str(strat.capital), "max_capital": str(strat.capital)},
                  token=self.admin)
        if strat.allocate:
            self.call("capital-allocator", "POST", f"/v1/strategies/{name}/allocate", {"reason": "scenario"},
                      token=self.admin)

    # -- steps --------------------------------------------------------------------------------

    def note(self, line: str) -> None:
        """A line of the scenario's own log (shown with a failure)."""
        self.log.append(line)

    def observe(self, what: str, **facts: Any) -> None:
        """A fact the run established (compared across runs for determinism)."""
        self.observations.append({"what": what, **facts})

    def run_steps(self) -> None:
        """Every step in order; the first failure stops the scenario."""
        for index, step in enumerate(self.s.steps):
            kind, body = m.step_kind(step)
            try:
                getattr(self, f"step_{kind}")(body)
            except StepFailed as exc:
                raise StepFailed(f"steps[{index}] {kind}: {exc.expectation}", exc.happened, exc.orders) from exc

    def _cid_for(self, alias: str) -> str:
        self._cid += 1
        return f"{self.prefix}-{alias}-{self._cid}"

    def order_body(self, p: m.Place) -> dict[str, Any]:
        body: dict[str, Any] = {"account": self.accounts[p.account]["oms"], "symbol": p.symbol, "side": p.side,
                                "type": p.type, "qty": str(p.qty),
                                "client_order_id": p.client_order_id and f"{self.prefix}-{p.client_order_id}"
                                or self._cid_for(p.id)}
        for name in ("price", "reference_price"):
            if getattr(p, name) is not None:
                body[name] = str(getattr(p, name))
        if p.post_only:
            body["post_only"] = True
        if p.userref is not None:
            body["userref"] = p.userref
        if p.strategy is not None:
            body["strategy"] = self.strategies[p.strategy]
        return body

    def step_place(self, p: m.Place) -> None:
        ref = OrderRef(p.id, self.order_body(p))
        self.orders[p.id] = ref
        if p.background:
            ref.thread = threading.Thread(target=self._send, args=(ref,), daemon=True)
            ref.thread.start()
            self._await_id(ref)
            return
        self._send(ref)
        self._check_answer(p.id, ref, p.expect)

    def _send(self, ref: OrderRef) -> None:
        try:
            answer = self.http.post(self.p.url("oms-service") + "/v1/orders", json=ref.body,
                                    headers={"Authorization": f"Bearer {self.token}"})
            ref.status = answer.status_code
            ref.answer = answer.json() if answer.content else {}
        except (httpx.HTTPError, ValueError) as exc:
            ref.status, ref.answer = 0, {"error": f"{type(exc).__name__}"}
        if ref.answer.get("id"):
            ref.id = ref.answer["id"]
        self.note(f"place {ref.alias}: HTTP {ref.status} state={ref.answer.get('state')} "
                  f"reasons={[r.get('code') for r in ref.answer.get('reasons') or []]}")

    def _await_id(self, ref: OrderRef, timeout: float = 10.0) -> None:
        """A background order: find it by client order id once the OMS has written it."""
        deadline = time.monotonic() + timeout
        account = ref.body["account"]
        while time.monotonic() < deadline and ref.id is None:
            answer = self.call("oms-service", "GET", f"/v1/orders?account={account}&limit=50", expect=None)
            if answer.status_code == 200:
                for item in answer.json()["items"]:
                    if item["client_order_id"] == ref.body["client_order_id"]:
                        ref.id = item["id"]
            time.sleep(0.05)
        if ref.id is None:
            raise StepFailed(f"order {ref.alias} is written by the OMS", "it never appeared", (ref.alias,))

    def _check_answer(self, alias: str, ref: OrderRef, expect: m.PlaceExpect | None) -> None:
        facts = {"status": ref.status, "state": ref.answer.get("state"),
                 "reasons": [r.get("code") for r in ref.answer.get("reasons") or []],
                 "error": ref.answer.get("error")}
        # only what is declared: the answer races the executions feed (a market order may already be filled)
        declared = expect.model_dump() if expect is not None else {}
        self.observe(f"place {alias}", accepted=ref.status in (200, 201, 202),
                     **_observed(declared, facts, compare(declared, facts)))
        if expect is None:
            if ref.status not in (200, 201, 202):
                raise StepFailed(f"order {alias} is accepted by the OMS", f"HTTP {ref.status}: {ref.answer}", (alias,))
            return
        problems = compare(expect.model_dump(), facts)
        if problems:
            raise StepFailed(f"order {alias}: " + _wanted(expect.model_dump()), _list(problems), (alias,))

    def order(self, alias: str) -> dict[str, Any]:
        """The OMS's view of an order now."""
        ref = self.orders[alias]
        if ref.id is None:
            raise StepFailed(f"order {alias} exists at the OMS", f"it was never created (HTTP {ref.status}: "
                             f"{ref.answer})", (alias,))
        return self.call("oms-service", "GET", f"/v1/orders/{ref.id}").json()

    def step_cancel(self, c: m.Cancel) -> None:
        ref = self.orders[c.order]
        answer = self.call("oms-service", "DELETE", f"/v1/orders/{ref.id}", expect=None)
        doc = answer.json() if answer.content else {}
        facts = {"status": answer.status_code, "state": doc.get("state"), "error": doc.get("error")}
        self.note(f"cancel {c.order}: HTTP {answer.status_code} state={doc.get('state')} error={doc.get('error')}")
        declared = c.expect.model_dump() if c.expect is not None else {}
        self.observe(f"cancel {c.order}", **_observed(declared, facts, compare(declared, facts)))
        if c.expect is not None:
            problems = compare(c.expect.model_dump(), facts)
            if problems:
                raise StepFailed(f"cancel of {c.order}: " + _wanted(c.expect.model_dump()), _list(problems), (c.order,))
        elif answer.status_code not in (200, 202):
            raise StepFailed(f"cancel of {c.order} is accepted", f"HTTP {answer.status_code}: {doc}", (c.order,))

    def step_amend(self, a: m.Amend) -> None:
        old = self.orders[a.order]
        self.step_cancel(m.Cancel(order=a.order))
        self.step_wait(m.Wait(order=a.order, state=list(TERMINAL), timeout_s=10))
        body = dict(old.body)
        if a.qty is not None:
            body["qty"] = str(a.qty)
        if a.price is not None:
            body["price"] = str(a.price)
        body["client_order_id"] = self._cid_for(a.as_)
        ref = OrderRef(a.as_, body)
        self.orders[a.as_] = ref
        self._send(ref)
        self._check_answer(a.as_, ref, a.expect)

    def step_cancel_all(self, c: m.CancelAll) -> None:
        account = self.accounts[c.account]["oms"]
        doc = self.call("oms-service", "POST", f"/v1/accounts/{account}/cancel-all", {"reason": "scenario"}).json()
        summary = {k: (len(v) if isinstance(v, list) else v) for k, v in doc.items() if k != "scope"}
        self.note(f"cancel-all {c.account}: {summary}")
        self.observe(f"cancel_all {c.account}", **_observed(c.expect or {}, summary, compare(c.expect or {}, summary)))
        if c.expect:
            problems = compare(c.expect, summary)
            if problems:
                raise StepFailed(f"cancel-all of {c.account}: {_wanted(c.expect)}", _list(problems))

    def step_wait(self, w: m.Wait) -> None:
        wanted = [w.state] if isinstance(w.state, str) else list(w.state or [])
        deadline = time.monotonic() + w.timeout_s
        doc: dict[str, Any] = {}
        while True:
            doc = self.order(w.order)
            ok_state = not wanted or doc["state"] in wanted
            ok_qty = w.filled_qty is None or same(w.filled_qty, doc["filled_qty"])
            if ok_state and ok_qty:
                self.observe(f"wait {w.order}", state=doc["state"], filled_qty=doc["filled_qty"])
                return
            if time.monotonic() >= deadline or (doc["state"] in TERMINAL and wanted and not ok_state):
                break
            time.sleep(0.05)
        want = " or ".join(wanted) if wanted else ""
        if w.filled_qty is not None:
            want += f"{' with ' if want else ''}filled_qty {w.filled_qty}"
        raise StepFailed(f"order {w.order} reaches {want} within {w.timeout_s:g} s",
                         f"it is {doc.get('state')} (filled {doc.get('filled_qty')} of {doc.get('qty')}"
                         + (f", reasons {[r['code'] for r in doc.get('reasons') or []]}" if doc.get("reasons") else "")
                         + ")", (w.order,))

    def step_sleep(self, s: m.Sleep) -> None:
        time.sleep(s.seconds)

    def step_book(self, b: m.BookStep) -> None:
        self.venue_admin("PUT" if b.replace else "PATCH", f"/book/{b.pair}", {"bids": b.bids, "asks": b.asks})
        self.books.add(b.pair)

    def step_trade(self, t: m.Trade) -> None:
        self.venue_admin("POST", "/trades", {"pair": t.pair, "price": str(t.price), "qty": str(t.qty), "side": t.side})
        self.note(f"public trade {t.side} {t.qty} {t.pair} @ {t.price}")

    def step_advance(self, a: m.Advance) -> None:
        cursor = self.cursors.get(a.pair)
        if cursor is None:
            raise StepFailed(f"advance {a.pair}", "the scenario has no market.replay for that pair")
        state = self.venue_admin("POST", "/market/replay", {"cursor": cursor, "frames": a.frames, "trades": a.trades})
        self.note(f"replay advanced to frame {state['position']}: trades {state['trades']}, "
                  f"best bid {state['best_bid']}, ask {state['best_ask']}")
        self.observe(f"advance {a.pair}", position=state["position"], trades=state["trades"],
                     best_bid=state["best_bid"], best_ask=state["best_ask"])

    def step_fault(self, f: m.Fault) -> None:
        spec = f.model_dump(exclude={"account"}, exclude_none=True)
        spec["seed"] = f.seed if f.seed is not None else self.s.seed * 1000 + len(self.faults)
        if f.account is not None:
            spec["api_key"] = self.accounts[f.account]["key"]
        rules = self.venue_admin("POST", "/faults", spec)
        self.faults += [r["id"] for r in rules]
        self.note(f"fault {f.action} on {f.endpoint} ({'account ' + f.account if f.account else 'the OMS key'})")

    def step_clear_faults(self, _: Any) -> None:
        for rule in self.faults:
            self.call("kraken-venue", "DELETE", f"/admin/faults/{rule}", token="-", expect=None)
        self.faults.clear()

    def step_venue_status(self, v: m.VenueStatus) -> None:
        path = f"/status/{v.pair}" if v.pair else "/status"
        previous = self.venue_admin("PUT", path, {"status": v.status})["previous"]
        if not any(p == v.pair for p, _ in self.statuses):
            self.statuses.append((v.pair, previous))
        self.note(f"venue status{' of ' + v.pair if v.pair else ''}: {previous} -> {v.status}")
        if v.sync:
            self.synced = True
            self.sync_universe()

    def step_venue_listing(self, v: m.VenueListing) -> None:
        previous = self.venue_admin("PUT", f"/listing/{v.pair}", {"listed": v.listed})["previous"]
        if not any(p == v.pair for p, _ in self.listings):
            self.listings.append((v.pair, previous))
        self.note(f"venue {'lists' if v.listed else 'delists'} {v.pair}")
        if v.sync:
            self.synced = True
            self.sync_universe()

    def sync_universe(self) -> None:
        """universe-service syncs the venue's AssetPairs (as its sync does), then policy-service reloads it."""
        report = self.call("universe-service", "POST", "/v1/sync", {}, token=self.admin).json()
        self.call("policy-service", "POST", "/v1/refresh", {}, token=self.admin)
        self.note(f"universe-service synced from the venue: {report.get('updated', 0)} updated, "
                  f"{report.get('delisted', 0)} delisted; policy-service refreshed")

    def step_stop(self, s: m.Stop) -> None:
        try:
            self.p.stop(s.service)
        except NotUp as exc:
            raise StepFailed(f"{s.service} is stopped", str(exc)) from exc
        self.stopped.append(s.service)
        self.note(f"stopped {s.service} (the runtime holds off restarting it)")

    def step_start(self, s: m.Start) -> None:
        started = time.monotonic()
        if s.service not in self.stopped:
            raise StepFailed(f"{s.service} was stopped by an earlier step", "it was not")
        self.stopped.remove(s.service)
        try:
            outcome = self.p.start(s.service, s.timeout_s)
        except (NotUp, OSError) as exc:
            raise StepFailed(f"{s.service} is started again", str(exc)) from exc
        self._wait_healthy(s.service, s.timeout_s)
        self.note(f"started {s.service} again in {time.monotonic() - started:.1f} s ({outcome['restarted_by']})")

    def step_restart(self, r: m.Restart) -> None:
        started = time.monotonic()
        outcome = self.p.restart(r.service, r.kill, r.timeout_s)
        self.note(f"{'killed and ' if outcome['killed'] else ''}restarted {r.service} in "
                  f"{time.monotonic() - started:.1f} s ({outcome['restarted_by']})")
        self._wait_healthy(r.service, r.timeout_s)

    def _wait_healthy(self, service: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.http.get(self.p.url(service) + "/healthz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise StepFailed(f"{service} is ready again within {timeout:g} s", "it is not")

    def step_kill_switch(self, k: m.KillSwitch) -> None:
        account = self.accounts[k.account]["oms"]
        self.call("risk-service", "PUT", f"/v1/accounts/{account}/kill-switch", {"active": k.active, "reason": k.reason})
        if k.active:
            self.kill_switches.add(account)
        self._until(lambda: (account in (self.call("oms-service", "GET", "/v1/status").json()
                                          .get("kill_switches") or {})) == k.active,
                    f"the OMS sees {k.account}'s kill switch {'on' if k.active else 'off'}", 10)
        self.note(f"kill switch of {k.account}: {'on' if k.active else 'off'}")

    def _until(self, predicate: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise StepFailed(what, f"not within {timeout:g} s")
            time.sleep(0.05)

    def step_venue(self, v: m.VenueCall) -> None:
        acct = self.accounts[v.account]
        params = {k: self.expand(val) for k, val in v.params.items()}
        answers = [self.p.venue_private(self.http, acct["key"], acct["secret"], v.method, params)
                   for _ in range(v.repeat)]
        last = answers[-1]
        if v.save:
            self.saved[v.save] = last.get("result")
        errors = [e for a in answers for e in a.get("error") or []]
        self.note(f"venue {v.method} x{v.repeat} as {v.account}: errors {sorted(set(errors)) or 'none'}")
        facts: dict[str, Any] = {"errors": sorted(set(errors))}
        exp = v.expect
        if exp is None:
            if errors:
                raise StepFailed(f"venue {v.method} succeeds", f"errors {errors}")
            self.observe(f"venue {v.method}", **facts)
            return
        if exp.error is not None:
            hits = sum(1 for a in answers if exp.error in (a.get("error") or []))
            facts["hits"] = hits
            want = exp.errors_in_repeats if exp.errors_in_repeats is not None else None
            if (want is None and exp.error not in (last.get("error") or [])) or (want is not None and hits != want):
                raise StepFailed(f"venue {v.method} answers {exp.error!r}"
                                 + (f" in {want} of {v.repeat} calls" if want is not None else ""),
                                 f"{hits} of {v.repeat} calls did; last answer errors {last.get('error')}")
        if exp.ok is not None and bool(not last.get("error")) != exp.ok:
            raise StepFailed(f"venue {v.method} {'succeeds' if exp.ok else 'fails'}", f"errors {last.get('error')}")
        if exp.result:
            problems = compare_paths(exp.result, last.get("result"), "result.")
            facts["result"] = {k: dotted(last.get("result"), k) for k in exp.result}
            if problems:
                raise StepFailed(f"venue {v.method} result", _list(problems))
        self.observe(f"venue {v.method}", **facts)

    def expand(self, value: Any) -> Any:
        """``{account:A}``, ``{strategy:S}``, ``{order:O}``, ``{txid:O}``, ``{saved:NAME.path}`` in strings."""
        if not isinstance(value, str):
            return value

        def sub(match: re.Match[str]) -> str:
            kind, name = match.group(1), match.group(2)
            if kind == "account":
                return self.accounts[name]["oms"]
            if kind == "venue_account":
                return self.accounts[name]["venue_id"]
            if kind == "strategy":
                return self.strategies[name]
            if kind == "order":
                return str(self.orders[name].id)
            if kind == "txid":
                return str(self.order(name).get("txid"))
            if kind == "saved":
                head, _, rest = name.partition(".")
                return str(dotted(self.saved.get(head), rest) if rest else self.saved.get(head))
            return match.group(0)

        return re.sub(r"\{(account|venue_account|strategy|order|txid|saved):([^}]+)\}", sub, value)

    def step_call(self, c: m.Call) -> None:
        path = self.expand(c.path)
        body = _expand_all(c.body, self.expand)
        deadline = time.monotonic() + c.timeout_s
        while True:
            token = "-" if c.service == "kraken-venue" else self.admin
            answer = self.call(c.service, c.method, path, body, token=token, expect=None)
            doc = answer.json() if answer.content and "json" in answer.headers.get("content-type", "") else None
            problems = _call_problems(c.expect, answer.status_code, doc)
            if not problems or not c.until or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.note(f"{c.method} {c.service}{path}: HTTP {answer.status_code}")
        if c.expect is None and answer.status_code >= 400:
            raise StepFailed(f"{c.method} {c.service}{path} succeeds", f"HTTP {answer.status_code}: {answer.text[:300]}")
        if problems:
            raise StepFailed(f"{c.method} {c.service}{path}: {_wanted(c.expect or {})}", _list(problems))
        self.observe(f"call {c.method} {c.service}", status=answer.status_code)

    def step_reconcile(self, r: m.Reconcile) -> None:
        doc = self.call("oms-service", "POST", "/v1/reconcile", {}, token=self.admin).json()
        kinds = sorted({d["kind"] for d in doc.get("differences") or []})
        self.note(f"reconciliation {doc.get('status')}: differences {kinds or 'none'}")
        problems = compare({"status": r.status, "kinds": r.kinds}, {"status": doc.get("status"), "kinds": kinds})
        if problems:
            raise StepFailed("the reconciliation: " + _wanted({"status": r.status, "kinds": r.kinds}), _list(problems))

    def step_check(self, c: m.Check) -> None:
        for item in c.expect:
            self.check(item)

    # -- expectations -------------------------------------------------------------------------

    def check(self, item: Any) -> None:
        """One expectation; ``StepFailed`` when it does not hold."""
        kind, body = m.step_kind(item)
        getattr(self, f"expect_{kind}")(body)

    def expect_order(self, e: m.OrderExpect) -> None:
        doc = self.order(e.order)
        actual = {**doc, "reasons": [r["code"] for r in doc.get("reasons") or []],
                  "transitions": _states(doc.get("transitions")), "passes_through": _states(doc.get("transitions"))}
        wanted = e.model_dump(exclude={"order"})
        problems = compare(wanted, actual)
        self.observe(f"order {e.order}", **_observed(wanted, actual, problems))
        if problems:
            raise StepFailed(f"order {e.order}: {_wanted(wanted)}", _list(problems), (e.order,))

    def expect_fills(self, e: m.FillsExpect) -> None:
        ref = self.orders[e.order]
        items = self.call("oms-service", "GET", f"/v1/orders/{ref.id}/fills").json()["items"]
        items.sort(key=lambda f: (f.get("ts") or f.get("created_at") or "", str(f.get("fill_id"))))
        actual = {"count": len(items), "prices": [f["price"] for f in items], "qtys": [f["qty"] for f in items],
                  "fees": [f["fee"] for f in items], "liquidity": [f.get("liquidity") for f in items]}
        wanted = e.model_dump(exclude={"order"})
        if e.prices is not None or e.qtys is not None:  # order-insensitive when fills share a timestamp
            actual = _align(actual, wanted)
        problems = compare(wanted, actual)
        self.observe(f"fills {e.order}", **_observed(wanted, actual, problems))
        if problems:
            raise StepFailed(f"fills of {e.order}: {_wanted(wanted)}", _list(problems), (e.order,))

    def expect_position(self, e: m.PositionExpect) -> None:
        account = self.accounts[e.account]["oms"]
        wanted = e.model_dump(exclude={"account", "symbol"})
        deadline = time.monotonic() + 5
        while True:
            doc = self.call("oms-service", "GET", f"/v1/accounts/{account}/positions").json()
            pos = next((p for p in doc["positions"] if p["symbol"] == e.symbol), {"qty": "0", "fills": 0})
            problems = compare(wanted, pos)
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.observe(f"position {e.account} {e.symbol}", **_observed(wanted, pos, problems))
        if problems:
            raise StepFailed(f"position of {e.account} in {e.symbol}: {_wanted(wanted)}", _list(problems))

    def expect_balance(self, e: m.BalanceExpect) -> None:
        acct = self.venue_admin("GET", f"/accounts/{self.accounts[e.account]['venue_id']}")
        code = e.asset
        entry = acct["balances"].get(code) or {"balance": "0", "hold_trade": "0"}
        actual = {"equals": entry["balance"], "hold": entry.get("hold_trade", "0")}
        wanted = {"equals": e.equals, "hold": e.hold}
        problems = compare(wanted, actual)
        self.observe(f"balance {e.account} {code}", **_observed(wanted, actual, problems))
        if problems:
            raise StepFailed(f"venue balance of {e.account} in {code}: {_wanted(wanted)}", _list(problems))

    def expect_venue_orders(self, e: m.VenueOrdersExpect) -> None:
        if e.order is not None:
            ref = self.orders[e.order]
            venue_id = self.platform_account["account_id"]
            found = self.venue_admin("GET", f"/accounts/{venue_id}/orders?cl_ord_id={ref.id}")
        else:
            found = self.venue_admin("GET", f"/accounts/{self.accounts[e.account]['venue_id']}/orders")
        actual = {"count": len(found), "open": sum(1 for o in found if o["status"] == "open"),
                  "trades": sum(len(o.get("trades") or []) for o in found)}
        wanted = e.model_dump(exclude={"order", "account"})
        problems = compare(wanted, actual)
        self.observe(f"venue orders {e.order or e.account}", **_observed(wanted, actual, problems))
        if problems:
            raise StepFailed(f"venue orders of {e.order or e.account}: {_wanted(wanted)}", _list(problems),
                             (e.order,) if e.order else ())

    def expect_events(self, e: m.EventsExpect) -> None:
        ref = self.orders[e.order]
        if self.events.error:
            raise StepFailed(f"events of {e.order} on {e.topic}", f"the Kafka consumer failed: {self.events.error}")

        def actual_of(events: list[dict[str, Any]]) -> dict[str, Any]:
            types = [ev.get("type") for ev in events]
            return {"types": types, "includes": types, "count": len(events)}

        wanted = {"types": e.types, "includes": e.includes, "count": e.count}
        events = self.events.wait(str(ref.id), e.topic, lambda evs: not compare(wanted, actual_of(evs)), e.timeout_s)
        actual = actual_of(events)
        problems = compare(wanted, actual)
        self.observe(f"events {e.order} {e.topic}", **_observed(wanted, actual, problems))
        if problems:
            raise StepFailed(f"events of {e.order} on {e.topic}: {_wanted(wanted)}", _list(problems), (e.order,))

    # -- explanation and clean-up ------------------------------------------------------------------

    def relevant_events(self, orders: tuple[str, ...]) -> list[str]:
        """The scenario's log, then each involved order's transitions and Kafka events."""
        lines = list(self.log[-15:])
        for alias in orders or tuple(self.orders)[-3:]:
            ref = self.orders.get(alias)
            if ref is None or ref.id is None:
                continue
            try:
                doc = self.call("oms-service", "GET", f"/v1/orders/{ref.id}", expect=None).json()
            except StepFailed:
                continue
            # events are published in the background (one per transition, fills once filled): give them a
            # moment to arrive before explaining
            steps = len(doc.get("transitions") or []) or 1
            self.events.wait(ref.id, "oms.orders", lambda evs: len(evs) >= steps, 3.0)
            if str(doc.get("filled_qty") or "0").strip("0.") != "":
                self.events.wait(ref.id, "oms.fills", bool, 2.0)
            for t in doc.get("transitions") or []:
                lines.append(f"{alias}: {t.get('from_state')} -> {t.get('to_state')} ({t.get('reason')})")
            for topic in ("oms.orders", "oms.fills"):
                for ev in self.events.events(ref.id, topic):
                    what = ev.get("type") or f"fill {ev.get('qty')} @ {ev.get('price')} fee {ev.get('fee')}"
                    lines.append(f"{alias}: kafka {topic}: {what}")
        return lines

    def cleanup(self) -> list[str]:
        """Undo what the scenario changed on shared parts; returns problems (reported, not raised)."""
        problems = []
        actions: list[tuple[str, Any]] = [("start", service) for service in self.stopped]
        actions += [("fault", rule) for rule in self.faults]
        actions += [("status", item) for item in reversed(self.statuses)]
        actions += [("listing", item) for item in reversed(self.listings)]
        actions += [("cursor", name) for name in self.cursors.values()]
        actions += [("book", pair) for pair in self.books]
        actions += [("kill", account) for account in self.kill_switches]
        if self.synced:
            actions.append(("sync", "universe-service"))
        for kind, item in actions:
            try:
                if kind == "start":
                    self.p.start(item, 90)
                    self._wait_healthy(item, 90)
                elif kind == "listing":
                    self.venue_admin("PUT", f"/listing/{item[0]}", {"listed": item[1]})
                elif kind == "sync":
                    self.sync_universe()
                elif kind == "fault":
                    self.call("kraken-venue", "DELETE", f"/admin/faults/{item}", token="-", expect=None)
                elif kind == "status":
                    pair, previous = item
                    self.venue_admin("PUT", f"/status/{pair}" if pair else "/status", {"status": previous})
                elif kind == "cursor":
                    self.venue_admin("DELETE", f"/market/replay/{item}")
                elif kind == "book":
                    self.venue_admin("DELETE", f"/book/{item}")
                elif kind == "kill":
                    self.call("risk-service", "PUT", f"/v1/accounts/{item}/kill-switch", {"active": False})
            except StepFailed as exc:
                problems.append(f"clean-up {kind} {item}: {exc.happened}")
            except (NotUp, OSError) as exc:  # a stopped component that will not come back
                problems.append(f"clean-up {kind} {item}: {exc}")
        for call in self.s.cleanup:
            try:
                self.step_call(call.model_copy(update={"expect": call.expect or {}}))
            except StepFailed as exc:
                problems.append(f"clean-up call: {exc.happened}")
        for ref in self.orders.values():
            if ref.thread is not None:
                ref.thread.join(15)
        self.http.close()
        return problems


def _observed(wanted: dict[str, Any], actual: dict[str, Any], problems: list[Mismatch]) -> dict[str, Any]:
    """The declared fields as observed: the expectation where it held (a one-of or a subsequence is
    then what was established), the actual value where it did not."""
    failed = {p.field for p in problems}
    return {k: (actual.get(k) if k in failed else v) for k, v in wanted.items() if v is not None}


def _states(transitions: list[dict[str, Any]] | None) -> list[str]:
    return [t["to_state"] for t in transitions or []]


def _wanted(expected: dict[str, Any]) -> str:
    return ", ".join(f"{k} {render(v)}" for k, v in expected.items() if v is not None) or "as declared"


def _list(problems: list[Mismatch]) -> str:
    return "; ".join(str(p) for p in problems)


def _align(actual: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """Sort fills by (price, qty) when the expectation lists prices: fills with one timestamp have no order."""
    rows = list(zip(actual["prices"], actual["qtys"], actual["fees"], actual["liquidity"], strict=True))
    rows.sort(key=lambda r: (Decimal(str(r[0])), Decimal(str(r[1]))))
    if wanted.get("prices") is not None and wanted["prices"] != sorted(wanted["prices"], key=lambda v: Decimal(str(v))):
        rows.reverse()
    return {"count": actual["count"], "prices": [r[0] for r in rows], "qtys": [r[1] for r in rows],
            "fees": [r[2] for r in rows], "liquidity": [r[3] for r in rows]}


def _expand_all(value: Any, expand: Any) -> Any:
    if isinstance(value, dict):
        return {k: _expand_all(v, expand) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_all(v, expand) for v in value]
    return expand(value)


def _call_problems(expect: dict[str, Any] | None, status: int, doc: Any) -> list[Mismatch]:
    if not expect:
        return []
    problems = []
    if "status" in expect and not same(expect["status"], status):
        problems.append(Mismatch("status", expect["status"], status))
    problems += compare_paths(expect.get("json") or {}, doc, "json.")
    return problems
