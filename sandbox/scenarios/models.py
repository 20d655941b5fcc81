"""The scenario file format: typed models (the JSON schema in ``scenarios/scenario.schema.json`` is made from them).

A scenario is one YAML document::

    name: market buy walks two levels
    seed: 7
    market:
      books: [{pair: XBTUSD, asks: [["30000", "0.3"], ["30010", "0.5"]], bids: [["29990", "1"]]}]
    accounts:
      main: {}
    steps:
      - place: {id: o1, account: main, symbol: XBT/USD, side: buy, type: market, qty: "0.5", reference_price: "30000"}
      - wait: {order: o1, state: filled}
    expect:
      - order: {order: o1, state: filled, avg_price: "30006"}

Steps and expectations are one-key mappings (``place:``, ``order:``...); the key
selects the model.  Numbers that are prices, quantities or money are written as
strings (or numbers) and compared as decimals.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from sandbox.venue.trading.faults import FaultSpec

Num = Annotated[str | int | float, Field(description="a decimal number (a string keeps it exact)")]
Alias = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$", description="a name local to the scenario")]
Service = Literal["oms-service", "risk-service", "policy-service", "fees-service", "capital-allocator",
                  "secrets-service", "auth-service", "universe-service", "kraken-venue", "strategy-orchestrator",
                  "config-service"]
OrderState = Literal["pending_new", "new", "partially_filled", "filled", "canceled", "rejected", "expired"]


def _decimal(value: Any) -> Any:
    if value is None:
        return value
    try:
        Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not a number: {value!r}") from exc
    return value


class Strict(BaseModel):
    """Unknown fields are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


# -- market and accounts -----------------------------------------------------------------------


class Book(Strict):
    """A synthetic book: the pair trades against exactly these levels (``PUT /admin/book``)."""

    pair: str = Field(description="pair name: XBTUSD, XBT/USD or XXBTZUSD")
    bids: list[tuple[Num, Num]] = Field(default_factory=list, description="[[price, qty], ...] best first")
    asks: list[tuple[Num, Num]] = Field(default_factory=list)


class Replay(Strict):
    """A shipped session replayed step by step for one pair (a venue replay cursor)."""

    session: str = Field(description="a session in fixtures/kraken_replays (e.g. v2-book10-majors)")
    pair: str
    frames: int = Field(0, ge=0, description="book/trade frames of the pair applied before the steps")
    trades: int = Field(0, ge=0, description="or: advance until this many public trades were printed")


class Market(Strict):
    """What the scenario's pairs trade against."""

    books: list[Book] = Field(default_factory=list)
    replay: list[Replay] = Field(default_factory=list)


class Restriction(Strict):
    """A risk-service restricted-list entry for the account (``kind`` symbol or asset)."""

    kind: Literal["symbol", "asset"]
    value: str


class Account(Strict):
    """A trading account of the scenario: its own OMS account and its own venue account and API key.

    The OMS account name is unique per run (``sc-<run>-<n>-<alias>``); its venue key
    pair is registered in secrets-service with ``permissions`` (what policy-service
    checks).  ``balances``, ``tier`` and ``volume_30d`` set up the venue account
    used by ``venue`` steps.
    """

    balances: dict[str, Num] = Field(default_factory=lambda: {"ZUSD": "100000"})
    tier: Literal["starter", "intermediate", "pro"] = "intermediate"
    volume_30d: Num = 0
    permissions: list[str] = Field(
        default_factory=lambda: ["query_funds", "query_open_orders", "query_closed_orders", "trade", "cancel_orders"])
    limits: dict[str, Num] | None = Field(None, description="risk-service account limits (gross_exposure, "
                                          "daily_loss, concentration_pct, concentration_floor)")
    position_limits: dict[str, Num] = Field(default_factory=dict, description="symbol -> max position (base units)")
    restricted: list[Restriction] = Field(default_factory=list)
    rules: dict[str, Any] | None = Field(None, description="policy-service account rules (allowed_symbols, "
                                         "max_order_notional)")


class StrategyCapital(Strict):
    """A capital-allocator strategy with exactly ``capital`` allocated (min = max = capital)."""

    capital: Num
    allocate: bool = Field(True, description="false: registered but never allocated (no capital)")
    registered: bool = Field(True, description="false: the allocator has never heard of it")


# -- steps ------------------------------------------------------------------------------------


class PlaceExpect(Strict):
    """What the OMS must answer to a ``place``."""

    status: int | None = Field(None, description="HTTP status (201, 202, 200, 409, 422...)")
    state: OrderState | list[OrderState] | None = Field(None, description="the state, or a list: one of them")
    reasons: list[str] | None = Field(None, description="codes that must all be among the order's reasons")
    error: str | None = Field(None, description="the error code of a 4xx/5xx answer")


class Place(Strict):
    """Place an order through the OMS (``POST /v1/orders``)."""

    id: Alias = Field(description="the name later steps and expectations use for the order")
    account: Alias
    symbol: str
    side: Literal["buy", "sell"]
    type: Literal["market", "limit"] = "limit"
    qty: Num
    price: Num | None = None
    post_only: bool = False
    reference_price: Num | None = None
    strategy: Alias | None = Field(None, description="a strategy of the scenario (``strategies:``)")
    userref: int | None = None
    client_order_id: str | None = Field(None, description="default: unique per run; repeat one to test idempotency")
    background: bool = Field(False, description="send without waiting for the answer (for a kill mid-order)")
    expect: PlaceExpect | None = None

    _num = field_validator("qty", "price", "reference_price")(_decimal)


class CancelExpect(Strict):
    """What the OMS must answer to a ``cancel``."""

    status: int | None = None
    state: OrderState | None = None
    error: str | None = None


class Cancel(Strict):
    """Cancel an order (``DELETE /v1/orders/{id}``)."""

    order: Alias
    expect: CancelExpect | None = None


class Amend(Strict):
    """Cancel/replace: cancel ``order``, then place ``as`` with the same fields and the changes given.

    Neither the OMS nor the simulated venue implements Kraken's ``AmendOrder``;
    this is what a client does instead.
    """

    order: Alias
    as_: Alias = Field(alias="as", description="the replacement order's name")
    qty: Num | None = None
    price: Num | None = None
    expect: PlaceExpect | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CancelAll(Strict):
    """``POST /v1/accounts/{account}/cancel-all``."""

    account: Alias
    expect: dict[str, Any] | None = Field(None, description="fields of the answer, e.g. {canceled: 2}")


class Wait(Strict):
    """Wait until an order is in a state (or one of several), or has filled a quantity."""

    order: Alias
    state: OrderState | list[OrderState] | None = None
    filled_qty: Num | None = None
    timeout_s: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _something(self) -> Wait:
        if self.state is None and self.filled_qty is None:
            raise ValueError("give state or filled_qty")
        return self


class Sleep(Strict):
    """Let time pass (a dead man's switch, a timed fault)."""

    seconds: float = Field(gt=0, le=30)


class BookStep(Strict):
    """Set (``replace: true``, the default) or change levels of a pair's synthetic book."""

    pair: str
    bids: list[tuple[Num, Num]] = Field(default_factory=list)
    asks: list[tuple[Num, Num]] = Field(default_factory=list)
    replace: bool = True


class Trade(Strict):
    """Print a public trade into the market (``side``: the taker's)."""

    pair: str
    price: Num
    qty: Num
    side: Literal["buy", "sell"]


class Advance(Strict):
    """Advance the pair's replay cursor (``market.replay``) by frames or public trades."""

    pair: str
    frames: int = Field(0, ge=0)
    trades: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _something(self) -> Advance:
        if not self.frames and not self.trades:
            raise ValueError("give frames or trades")
        return self


class Fault(FaultSpec):
    """A venue fault rule (``POST /admin/faults``); removed when the scenario ends.

    ``account``: only that scenario account's venue key (venue steps); without it the
    rule hits the platform's key, i.e. the OMS's calls.  ``seed`` defaults to the
    scenario's seed, so random faults repeat run after run.
    """

    account: Alias | None = None


class VenueStatus(Strict):
    """Set the venue's status (or one pair's); restored when the scenario ends."""

    status: Literal["online", "maintenance", "cancel_only", "post_only", "limit_only", "reduce_only"]
    pair: str | None = None
    sync: bool = Field(False, description="then sync universe-service from the venue's AssetPairs and refresh "
                       "policy-service, so policy checks the new pair status (platform-wide: the scenario runs "
                       "alone; synced again when the status is restored)")


class Restart(Strict):
    """Restart a platform component and wait until it is healthy; ``kill``: SIGKILL it first (a crash)."""

    service: Service
    kill: bool = False
    timeout_s: float = Field(90, gt=0, le=600)


class VenueListing(Strict):
    """Delist a pair at the venue (``listed: false``: gone from AssetPairs, unknown to the private API) or list it
    again; restored when the scenario ends. Platform-wide: the scenario runs alone."""

    pair: str
    listed: bool = False
    sync: bool = Field(False, description="then sync universe-service from the venue and refresh policy-service")


class Stop(Strict):
    """Take a platform component down and keep it down until ``start`` (or the scenario's end).

    The runtime stops the component and holds it (``aether-sandbox stop``: no restarts), so its
    port refuses connections; the rest of the platform runs on.
    """

    service: Service


class Start(Strict):
    """Bring back a component a ``stop`` took down (``aether-sandbox start``); waits until it is healthy."""

    service: Service
    timeout_s: float = Field(90, gt=0, le=600)


class KillSwitch(Strict):
    """Set an account's kill switch at risk-service (broadcast on NATS to the OMS)."""

    account: Alias
    active: bool = True
    reason: str = "scenario"


class VenueExpect(Strict):
    """What a venue call must answer."""

    error: str | None = Field(None, description="this Kraken error string must be in the answer's errors")
    ok: bool | None = Field(None, description="true: no error")
    result: dict[str, Any] | None = Field(None, description="fields of the result (dotted paths allowed)")
    errors_in_repeats: int | None = Field(None, description="with repeat: how many calls must carry ``error``")


class VenueCall(Strict):
    """A private Kraken call straight to the venue, signed with the scenario account's own key."""

    account: Alias
    method: str = Field(pattern=r"^[A-Z][A-Za-z]+$")
    params: dict[str, Any] = Field(default_factory=dict)
    repeat: int = Field(1, ge=1, le=200)
    save: Alias | None = Field(None, description="keep the (last) result under this name: {saved:NAME.path}")
    expect: VenueExpect | None = None


class Call(Strict):
    """A request to a platform service (the admin's token); ``until``: poll until ``expect`` holds."""

    service: Service
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    path: str = Field(description="may use {account:A}, {strategy:S}, {order:O}, {saved:NAME.path}")
    body: Any = None
    expect: dict[str, Any] | None = Field(None, description="{status: 200, json: {dotted.path: value}}")
    until: bool = False
    timeout_s: float = Field(10, gt=0, le=120)


class Reconcile(Strict):
    """``POST /v1/reconcile`` at the OMS; ``expect``: difference kinds that must be found."""

    kinds: list[str] | None = None
    status: str | None = "ok"


def _one_key(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value))
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


def _step(name: str, model: type, doc: str) -> Any:
    cls = type(f"{name.title().replace('_', '')}Step", (Strict,), {
        "__annotations__": {name: model}, "__doc__": doc})
    return Annotated[cls, Tag(name)]


# -- expectations -----------------------------------------------------------------------------


class OrderExpect(Strict):
    """An OMS order's final fields."""

    order: Alias
    state: OrderState | None = None
    filled_qty: Num | None = None
    remaining_qty: Num | None = None
    avg_price: Num | None = None
    fees: Num | None = None
    fee_currency: str | None = None
    reasons: list[str] | None = Field(None, description="codes that must all be among the reasons")
    txid: bool | None = Field(None, description="true: the venue acknowledged it (has a txid)")
    transitions: list[OrderState] | None = Field(None, description="exactly the states it went through, in order")
    passes_through: list[OrderState] | None = Field(
        None, description="states it went through in this order (others may come between: a fill reported "
                          "before the venue's answer skips new)")


class FillsExpect(Strict):
    """An order's fills (in time order)."""

    order: Alias
    count: int | None = None
    prices: list[Num] | None = None
    qtys: list[Num] | None = None
    fees: list[Num] | None = None
    liquidity: list[Literal["maker", "taker"]] | None = None


class PositionExpect(Strict):
    """An OMS position (account and symbol)."""

    account: Alias
    symbol: str
    qty: Num | None = None
    avg_price: Num | None = None
    realized_pnl: Num | None = None
    fees: Num | None = None
    fills: int | None = None


class BalanceExpect(Strict):
    """A venue balance of a scenario account (``venue`` steps trade through it)."""

    account: Alias
    asset: str
    equals: Num | None = None
    hold: Num | None = None


class VenueOrdersExpect(Strict):
    """Orders at the venue: of an OMS order (``order``: by its ``cl_ord_id``) or of a scenario account."""

    order: Alias | None = None
    account: Alias | None = None
    count: int | None = Field(None, description="venue orders found (1 = nothing lost or doubled)")
    open: int | None = None
    trades: int | None = Field(None, description="venue trades of those orders")


class EventsExpect(Strict):
    """Events the OMS published on Kafka for an order."""

    order: Alias
    topic: Literal["oms.orders", "oms.fills"] = "oms.orders"
    types: list[str] | None = Field(None, description="oms.orders: exactly the event types in order (order.new, ...)")
    includes: list[str] | None = Field(None, description="event types that appear in this order (others may come between)")
    count: int | None = None
    timeout_s: float = Field(10, gt=0, le=60)


EXPECTATIONS: dict[str, type] = {
    "order": OrderExpect, "fills": FillsExpect, "position": PositionExpect, "balance": BalanceExpect,
    "venue_orders": VenueOrdersExpect, "events": EventsExpect,
}
Expectation = Annotated[
    Annotated[type("OrderExpectation", (Strict,), {"__annotations__": {"order": OrderExpect}}), Tag("order")]
    | Annotated[type("FillsExpectation", (Strict,), {"__annotations__": {"fills": FillsExpect}}), Tag("fills")]
    | Annotated[type("PositionExpectation", (Strict,), {"__annotations__": {"position": PositionExpect}}),
                Tag("position")]
    | Annotated[type("BalanceExpectation", (Strict,), {"__annotations__": {"balance": BalanceExpect}}),
                Tag("balance")]
    | Annotated[type("VenueOrdersExpectation", (Strict,), {"__annotations__": {"venue_orders": VenueOrdersExpect}}),
                Tag("venue_orders")]
    | Annotated[type("EventsExpectation", (Strict,), {"__annotations__": {"events": EventsExpect}}),
                Tag("events")],
    Discriminator(_one_key),
]


class Check(Strict):
    """Expectations evaluated in the middle of the steps."""

    expect: list[Expectation]


STEPS: dict[str, type] = {
    "place": Place, "cancel": Cancel, "amend": Amend, "cancel_all": CancelAll, "wait": Wait, "sleep": Sleep,
    "book": BookStep, "trade": Trade, "advance": Advance, "fault": Fault, "clear_faults": dict,
    "venue_status": VenueStatus, "venue_listing": VenueListing, "restart": Restart, "stop": Stop, "start": Start, "kill_switch": KillSwitch, "venue": VenueCall,
    "call": Call, "reconcile": Reconcile, "check": Check,
}
_STEP_DOCS = {name: (model.__doc__ or "").strip().splitlines()[0] if model is not dict else "remove this "
              "scenario's fault rules" for name, model in STEPS.items()}
Step = Annotated[
    _step("place", Place, _STEP_DOCS["place"]) | _step("cancel", Cancel, _STEP_DOCS["cancel"])
    | _step("amend", Amend, _STEP_DOCS["amend"]) | _step("cancel_all", CancelAll, _STEP_DOCS["cancel_all"])
    | _step("wait", Wait, _STEP_DOCS["wait"]) | _step("sleep", Sleep, _STEP_DOCS["sleep"])
    | _step("book", BookStep, _STEP_DOCS["book"]) | _step("trade", Trade, _STEP_DOCS["trade"])
    | _step("advance", Advance, _STEP_DOCS["advance"]) | _step("fault", Fault, _STEP_DOCS["fault"])
    | _step("clear_faults", dict[str, Any], _STEP_DOCS["clear_faults"])
    | _step("venue_status", VenueStatus, _STEP_DOCS["venue_status"])
    | _step("venue_listing", VenueListing, _STEP_DOCS["venue_listing"])
    | _step("restart", Restart, _STEP_DOCS["restart"]) | _step("stop", Stop, _STEP_DOCS["stop"])
    | _step("start", Start, _STEP_DOCS["start"]) | _step("kill_switch", KillSwitch, _STEP_DOCS["kill_switch"])
    | _step("venue", VenueCall, _STEP_DOCS["venue"]) | _step("call", Call, _STEP_DOCS["call"])
    | _step("reconcile", Reconcile, _STEP_DOCS["reconcile"]) | _step("check", Check, _STEP_DOCS["check"]),
    Discriminator(_one_key),
]


class Scenario(Strict):
    """One scenario file."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"$id": "https://aether-sandbox/scenario.schema.json"})

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    seed: int = Field(0, ge=0, description="fixes every random choice (fault probabilities and jitter)")
    exclusive: bool = Field(False, description="run alone (the runner also infers it from platform-wide steps)")
    approve: list[str] = Field(default_factory=list, description="instruments approved at universe-service "
                               "before the run (platform-wide, idempotent)")
    market: Market = Field(default_factory=Market)
    accounts: dict[Alias, Account] = Field(default_factory=dict)
    strategies: dict[Alias, StrategyCapital] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    expect: list[Expectation] = Field(default_factory=list)
    cleanup: list[Call] = Field(default_factory=list, description="calls made after the scenario, pass or fail")



def reference_problems(scenario: Scenario) -> list[tuple[tuple[Any, ...], str]]:
    """Names used before they are declared: ``[(location, message)]`` (the loader adds file and line)."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    orders: set[str] = set()
    stopped: set[str] = set()
    for index, step in enumerate(scenario.steps):
        kind, body = step_kind(step)
        account = getattr(body, "account", None)
        if account is not None and account not in scenario.accounts:
            problems.append((("steps", index, kind, "account"), f"unknown account {account!r} (declare it under accounts:)"))
        strategy = getattr(body, "strategy", None) if kind == "place" else None
        if strategy is not None and strategy not in scenario.strategies:
            problems.append((("steps", index, kind, "strategy"),
                             f"unknown strategy {strategy!r} (declare it under strategies:)"))
        if kind in ("cancel", "amend", "wait") and body.order not in orders:
            problems.append((("steps", index, kind, "order"), f"no earlier step places an order {body.order!r}"))
        if kind == "start" and body.service not in stopped:
            problems.append((("steps", index, kind, "service"), f"no earlier step stops {body.service!r}"))
        if kind == "stop":
            stopped.add(body.service)
        if kind == "start":
            stopped.discard(body.service)
        if kind == "place":
            orders.add(body.id)
        if kind == "amend":
            orders.add(body.as_)
    checks = [(("expect", i), item) for i, item in enumerate(scenario.expect)]
    for index, step in enumerate(scenario.steps):
        kind, body = step_kind(step)
        if kind == "check":
            checks += [(("steps", index, "check", "expect", i), item) for i, item in enumerate(body.expect)]
    for where, item in checks:
        kind, body = step_kind(item)
        order = getattr(body, "order", None)
        if order is not None and order not in orders:
            problems.append(((*where, kind, "order"), f"no step places an order {order!r}"))
        account = getattr(body, "account", None)
        if account is not None and account not in scenario.accounts:
            problems.append(((*where, kind, "account"), f"unknown account {account!r}"))
    return problems


def step_kind(step: BaseModel) -> tuple[str, Any]:
    """``(kind, body)`` of a step or expectation wrapper."""
    name = next(iter(type(step).model_fields))
    return name, getattr(step, name)
