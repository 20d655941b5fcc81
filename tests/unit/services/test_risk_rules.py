"""risk-service rules, table-driven: each rule alone, several violations at once, reducing orders."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal as D
from typing import Any

import pytest

from sandbox.services.risk.domain import (
    AccountLimits,
    EsgExclusion,
    KillSwitch,
    LimitSet,
    PositionLimit,
    RestrictedEntry,
    RestrictedIndex,
)
from sandbox.services.risk.positions import Fill, Mark, Position, apply_fill
from sandbox.services.risk.rules import Capital, Order, evaluate, reduces_position
from sandbox.services.risk.state import RiskState

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
TODAY = NOW.date()
YESTERDAY = NOW - timedelta(days=1)


@dataclass
class Setup:
    """A scenario: datasets and the account's positions (built from fills)."""

    restricted: list[RestrictedEntry] = field(default_factory=list)
    esg: list[EsgExclusion] = field(default_factory=list)
    accounts: dict[str, AccountLimits] = field(default_factory=dict)
    position_limits: list[PositionLimit] = field(default_factory=list)
    switches: list[KillSwitch] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    marks: dict[str, tuple[str, str]] = field(default_factory=dict)  # symbol -> (day_open, price) today

    def view(self) -> RiskState:
        state = RiskState()
        state.set_restricted(self.restricted)
        state.set_esg(self.esg)
        state.set_limits(LimitSet(dict(self.accounts), {(p.account, p.symbol): p for p in self.position_limits}))
        state.set_kill_switches(self.switches)
        books: dict[tuple[str, str], Position] = {}
        for f in self.fills:
            key = (f.account, f.symbol)
            books[key] = apply_fill(books.get(key, Position(f.account, f.symbol)), f)
        state.merge_positions(books.values())
        for f in self.fills:
            state.merge_marks([Mark(f.symbol, f.price, f.ts, f.ts.date(), f.price)])
        for symbol, (day_open, price) in self.marks.items():
            state.marks[symbol] = Mark(symbol, D(price), NOW, TODAY, D(day_open), "manual")
        return state


def fill(side: str, qty: str, price: str, symbol: str = "XBT/USD", ts: datetime = NOW, account: str = "acct") -> Fill:
    return Fill(f"f-{side}-{qty}-{price}-{symbol}-{ts.isoformat()}", account, symbol, side, D(qty), D(price), ts)


def order(side: str = "buy", qty: str = "1", price: str | None = "100", symbol: str = "XBT/USD", **kw: Any) -> Order:
    return Order(account="acct", symbol=symbol, side=side, qty=D(qty), price=D(price) if price else None, **kw)


def codes(setup: Setup, o: Order, capital: Capital | None = None) -> list[str]:
    return [v.code for v in evaluate(o, setup.view(), today=TODAY, capital=capital).violations]


def restricted(kind: str, value: str, account: str | None = None, id: int = 1) -> RestrictedEntry:
    return RestrictedEntry(id=id, kind=kind, value=value, account=account, reason="sanctions")


SWITCH_ON = KillSwitch("acct", True, "runaway algo", NOW, "officer")
SWITCH_OFF = KillSwitch("acct", False, "", NOW, "officer")

CASES: list[tuple[str, Setup, Order, list[str]]] = [
    ("clean order", Setup(), order(), []),
    ("kill switch on", Setup(switches=[SWITCH_ON]), order(), ["kill_switch_active"]),
    ("kill switch off", Setup(switches=[SWITCH_OFF]), order(), []),
    ("kill switch of another account", Setup(switches=[KillSwitch("other", True, "x", NOW, "o")]), order(), []),
    ("global restricted symbol", Setup(restricted=[restricted("symbol", "XBT/USD")]), order(), ["restricted_symbol"]),
    ("restricted symbol via alias", Setup(restricted=[restricted("symbol", "BTC/USD")]), order(), ["restricted_symbol"]),
    ("restricted other symbol", Setup(restricted=[restricted("symbol", "ETH/USD")]), order(), []),
    ("account restricted symbol", Setup(restricted=[restricted("symbol", "XBT/USD", "acct")]), order(),
     ["restricted_symbol"]),
    ("other account's restriction", Setup(restricted=[restricted("symbol", "XBT/USD", "other")]), order(), []),
    ("restricted base asset", Setup(restricted=[restricted("asset", "BTC")]), order(), ["restricted_asset"]),
    ("quote asset is not restricted", Setup(restricted=[restricted("asset", "USD")]), order(), []),
    ("global and account restriction", Setup(restricted=[restricted("asset", "XBT"), restricted("asset", "XBT", "acct", 2)]),
     order(), ["restricted_asset", "restricted_asset"]),
    ("esg exclusion via alias", Setup(esg=[EsgExclusion("BTC", "energy use", D("12"))]), order(), ["esg_excluded"]),
    ("esg other asset", Setup(esg=[EsgExclusion("DOGE", "x")]), order(), []),
    ("position limit breached", Setup(position_limits=[PositionLimit("acct", "XBT/USD", D("1.5"))],
                                      fills=[fill("buy", "1", "100")]), order(), ["position_limit_exceeded"]),
    ("position limit exactly reached", Setup(position_limits=[PositionLimit("acct", "XBT/USD", D("2"))],
                                             fills=[fill("buy", "1", "100")]), order(), []),
    ("short side of the position limit", Setup(position_limits=[PositionLimit("acct", "XBT/USD", D("1"))]),
     order("sell", "2"), ["position_limit_exceeded"]),
    ("position limit of another symbol", Setup(position_limits=[PositionLimit("acct", "ETH/USD", D("0"))]), order(), []),
    ("gross exposure breached", Setup(accounts={"acct": AccountLimits(gross_exposure=D("250"))},
                                      fills=[fill("buy", "1", "100"), fill("sell", "1", "100", "ETH/USD")]),
     order(), ["gross_exposure_limit_exceeded"]),
    ("gross exposure at the limit", Setup(accounts={"acct": AccountLimits(gross_exposure=D("300"))},
                                          fills=[fill("buy", "1", "100"), fill("sell", "1", "100", "ETH/USD")]),
     order(), []),
    ("gross exposure from defaults", Setup(accounts={"*": AccountLimits(gross_exposure=D("50"))}), order(),
     ["gross_exposure_limit_exceeded"]),
    ("account limit overrides default", Setup(accounts={"*": AccountLimits(gross_exposure=D("50")),
                                                        "acct": AccountLimits(gross_exposure=D("500"))}), order(), []),
    ("concentration breached", Setup(accounts={"acct": AccountLimits(concentration_pct=D("60"))},
                                     fills=[fill("buy", "1", "100", "ETH/USD")]), order(qty="2"),
     ["concentration_limit_exceeded"]),
    ("concentration below the floor", Setup(accounts={"acct": AccountLimits(concentration_pct=D("60"),
                                                                            concentration_floor=D("1000"))},
                                            fills=[fill("buy", "1", "100", "ETH/USD")]), order(qty="2"), []),
    ("concentration within", Setup(accounts={"acct": AccountLimits(concentration_pct=D("60"))},
                                   fills=[fill("buy", "2", "100", "ETH/USD")]), order(), []),
    ("daily loss breached", Setup(accounts={"acct": AccountLimits(daily_loss=D("50"))},
                                  fills=[fill("buy", "1", "1000", ts=YESTERDAY)], marks={"XBT/USD": ("1000", "900")}),
     order(), ["daily_loss_limit_breached"]),
    ("daily loss within", Setup(accounts={"acct": AccountLimits(daily_loss=D("150"))},
                                fills=[fill("buy", "1", "1000", ts=YESTERDAY)], marks={"XBT/USD": ("1000", "900")}),
     order(), []),
    ("yesterday's loss does not count", Setup(accounts={"acct": AccountLimits(daily_loss=D("50"))},
                                              fills=[fill("buy", "1", "1000", ts=YESTERDAY)],
                                              marks={"XBT/USD": ("800", "800")}),
     order(), []),
    ("no price with a gross limit", Setup(accounts={"acct": AccountLimits(gross_exposure=D("1000"))}),
     order(price=None), ["price_unavailable"]),
    ("no price and no exposure limits", Setup(), order(price=None), []),
    ("mark values a market order", Setup(accounts={"acct": AccountLimits(gross_exposure=D("1000"))},
                                         marks={"XBT/USD": ("2000", "2000")}),
     order(price=None), ["gross_exposure_limit_exceeded"]),
    ("everything at once",
     Setup(restricted=[restricted("symbol", "XBT/USD"), restricted("asset", "XBT", "acct", 2)],
           esg=[EsgExclusion("XBT", "energy")], switches=[SWITCH_ON],
           accounts={"acct": AccountLimits(gross_exposure=D("10"), daily_loss=D("1"), concentration_pct=D("10"))},
           position_limits=[PositionLimit("acct", "XBT/USD", D("0.5"))],
           fills=[fill("buy", "1", "100", "ETH/USD", ts=YESTERDAY)], marks={"ETH/USD": ("100", "50")}),
     order(),
     ["kill_switch_active", "restricted_symbol", "restricted_asset", "esg_excluded", "position_limit_exceeded",
      "gross_exposure_limit_exceeded", "concentration_limit_exceeded", "daily_loss_limit_breached"]),
]


@pytest.mark.parametrize(("name", "setup", "o", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule_table(name: str, setup: Setup, o: Order, expected: list[str]) -> None:
    assert codes(setup, o) == expected


REDUCING = Setup(
    accounts={"acct": AccountLimits(gross_exposure=D("10"), concentration_pct=D("10"), daily_loss=D("1"))},
    position_limits=[PositionLimit("acct", "XBT/USD", D("1"))],
    fills=[fill("buy", "5", "100", ts=YESTERDAY)], marks={"XBT/USD": ("100", "90")},
)


@pytest.mark.parametrize(("o", "expected"), [
    (order("sell", "2"), ["daily_loss_limit_breached"]),  # reduces: exposure rules exempt, loss limit is not
    (order("sell", "5"), ["daily_loss_limit_breached"]),  # closes
    (order("sell", "7"), ["position_limit_exceeded", "gross_exposure_limit_exceeded", "concentration_limit_exceeded",
                          "daily_loss_limit_breached"]),  # flips: not a reduction
    (order("buy", "1"), ["position_limit_exceeded", "gross_exposure_limit_exceeded", "concentration_limit_exceeded",
                         "daily_loss_limit_breached"]),
])
def test_reducing_orders_are_exempt_from_exposure_rules(o: Order, expected: list[str]) -> None:
    assert codes(REDUCING, o) == expected


@pytest.mark.parametrize(("current", "signed", "expected"), [
    ("0", "1", False), ("0", "-1", False), ("5", "1", False), ("5", "-1", True), ("5", "-5", True),
    ("5", "-6", False), ("-5", "2", True), ("-5", "-1", False), ("-5", "10", False),
])
def test_reduces_position(current: str, signed: str, expected: bool) -> None:
    assert reduces_position(D(current), D(signed)) is expected


@pytest.mark.parametrize(("capital", "o", "expected"), [
    (Capital(available=D("1000")), order(qty="5"), []),
    (Capital(available=D("1000")), order(qty="10"), []),
    (Capital(available=D("1000")), order(qty="10.01"), ["insufficient_capital"]),
    (Capital(problem="capital_unavailable", message="down"), order(), ["capital_unavailable"]),
    (Capital(problem="capital_not_allocated", message="no"), order(), ["capital_not_allocated"]),
    (Capital(available=D("10")), order(price=None), ["price_unavailable"]),
    (None, order(qty="1000000"), []),  # no strategy or no allocator configured: the rule does not apply
])
def test_capital_rule(capital: Capital | None, o: Order, expected: list[str]) -> None:
    o = Order(o.account, o.symbol, o.side, o.qty, o.price, o.reference_price, strategy="s1")
    assert codes(Setup(), o, capital) == expected


def test_capital_with_other_violations_lists_all() -> None:
    setup = Setup(switches=[SWITCH_ON], esg=[EsgExclusion("XBT", "energy")])
    o = Order("acct", "XBT/USD", "buy", D("2"), D("100"), strategy="s1")
    assert codes(setup, o, Capital(available=D("1"))) == ["kill_switch_active", "esg_excluded", "insufficient_capital"]


def test_assessment_figures_and_details() -> None:
    setup = Setup(accounts={"acct": AccountLimits(gross_exposure=D("150"), concentration_pct=D("50"))},
                  fills=[fill("buy", "1", "100"), fill("buy", "0.5", "100", "ETH/USD")])
    result = evaluate(order(qty="0.5", price="110"), setup.view(), today=TODAY)
    assert result.notional == D("55.0")
    assert (result.position, result.projected_position) == (D("1"), D("1.5"))
    assert result.gross_exposure == D("150") and result.projected_gross_exposure == D("205.0")
    gross, conc = result.violations
    assert gross.detail == {"limit": "150", "gross_exposure": "150", "notional": "55", "projected": "205"}
    assert conc.detail["share_pct"] == "75.6098" and conc.detail["limit_pct"] == "50"
    assert result.price_source == "order"


def test_reference_price_beats_mark() -> None:
    setup = Setup(marks={"XBT/USD": ("1", "1")})
    o = Order("acct", "XBT/USD", "buy", D("1"), None, reference_price=D("7"))
    result = evaluate(o, setup.view(), today=TODAY)
    assert (result.price, result.price_source) == (D("7"), "reference")


def test_kill_switch_detail() -> None:
    (violation,) = evaluate(order(), Setup(switches=[SWITCH_ON]).view(), today=TODAY).violations
    assert violation.rule == "kill_switch"
    assert violation.detail == {"reason": "runaway algo", "set_by": "officer", "at": NOW.isoformat()}


def test_restricted_index_matches_scopes() -> None:
    index = RestrictedIndex.build([restricted("asset", "XBT"), restricted("asset", "ETH", "acct", 2)])
    assert [e.id for e in index.matches("acct", "asset", "BTC")] == [1]
    assert [e.id for e in index.matches("acct", "asset", "ETH")] == [2]
    assert index.matches("other", "asset", "ETH") == []


def test_effective_limits_merge_field_by_field() -> None:
    limits = LimitSet({"*": AccountLimits(D("1"), D("2"), D("3"), D("4")), "a": AccountLimits(gross_exposure=D("9"))})
    eff = limits.effective("a")
    assert (eff.gross_exposure, eff.daily_loss, eff.concentration_pct, eff.concentration_floor) == (D("9"), D("2"), D("3"), D("4"))
    assert limits.effective("b").gross_exposure == D("1")
    assert LimitSet().effective("a") == AccountLimits()


def test_day_boundaries_use_utc_dates() -> None:
    assert TODAY == date(2026, 3, 2)
