"""The OMS's Kraken client: signing (Kraken's documented example), nonces, error handling and retries."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import pytest

from sandbox.services.oms.http_client import HttpError, HttpResponse
from sandbox.services.oms.kraken_client import (
    KrakenApiError,
    KrakenClient,
    KrakenTransportError,
    KrakenUnknownOutcome,
    NonceSource,
    encode_form,
    sign,
)
from sandbox.venue.trading import signing as venue_signing

# The worked example of Kraken's "Spot REST Authentication" guide (docs.kraken.com).
DOC_SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
DOC_NONCE = "1616492376594"
DOC_BODY = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
DOC_PATH = "/0/private/AddOrder"
DOC_SIGNATURE = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="


def test_sign_reproduces_krakens_documented_example() -> None:
    assert sign(DOC_PATH, DOC_NONCE, DOC_BODY, DOC_SECRET) == DOC_SIGNATURE
    assert sign(DOC_PATH, int(DOC_NONCE), DOC_BODY, DOC_SECRET) == DOC_SIGNATURE


def test_form_encoding_puts_the_nonce_first_and_reproduces_the_documented_body() -> None:
    params = [("ordertype", "limit"), ("pair", "XBTUSD"), ("price", Decimal("37500")), ("type", "buy"),
              ("volume", Decimal("1.25")), ("userref", None)]
    assert encode_form(int(DOC_NONCE), params) == DOC_BODY


def test_form_encoding_matches_urlencode() -> None:
    from urllib.parse import urlencode

    params = [("cl_ord_id", "a/b c+d&e=f"), ("price", Decimal("0.00001")), ("validate", True), ("pair", "XBTUSD"),
              ("deadline", "2030-01-01T00:00:00.000Z"), ("note", "ünï")]
    expected = urlencode([("nonce", "5")] + [(k, v if isinstance(v, str) else
                                              ("true" if v is True else format(v, "f"))) for k, v in params])
    assert encode_form(5, params) == expected


@pytest.mark.parametrize("body", [DOC_BODY, "nonce=7", "nonce=99&cl_ord_id=a%2Fb&validate=true"])
def test_the_oms_and_the_venue_agree_on_signatures(body: str) -> None:
    secret = venue_signing.new_api_secret()
    nonce = dict(parse_qsl(body))["nonce"]
    ours = sign("/0/private/OpenOrders", nonce, body, secret)
    assert ours == venue_signing.sign("/0/private/OpenOrders", nonce, body, secret)
    assert venue_signing.verify("/0/private/OpenOrders", nonce, body, secret, ours)
    assert not venue_signing.verify("/0/private/OpenOrders", nonce, body + "&x=1", secret, ours)


def test_sign_rejects_a_secret_that_is_not_base64() -> None:
    with pytest.raises(ValueError):
        sign(DOC_PATH, 1, "nonce=1", "not base64!")


def test_nonces_increase_strictly_even_when_the_clock_stalls_or_goes_back() -> None:
    times = iter([1.0, 1.0, 1.0, 0.5, 2.0])
    source = NonceSource(clock=lambda: next(times))
    seen = [source.next() for _ in range(5)]
    assert seen == sorted(set(seen)) and len(seen) == 5
    assert seen[0] == 1_000_000 and seen[-1] == 2_000_000


class FakePool:
    """Answers scripted responses (or raises) and records the requests."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, **kw: Any) -> HttpResponse:
        build = kw.pop("build", None)
        if build is not None:
            kw["headers"], kw["body"] = build()
        self.requests.append({"method": method, "path": path, **kw})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, HttpResponse):
            return answer
        return HttpResponse(200, {}, json.dumps(answer).encode())

    async def aclose(self) -> None:
        pass


def client(answers: list[Any]) -> tuple[KrakenClient, FakePool]:
    pool = FakePool(answers)
    secret = base64.b64encode(b"k" * 64).decode()
    return KrakenClient("http://127.0.0.1:1", "key-1", secret, pool=pool, backoff_s=0), pool  # type: ignore[arg-type]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_requests_are_signed_and_the_result_is_parsed_with_decimals() -> None:
    kc, pool = client([{"error": [], "result": {"ZUSD": "100.1234", "XXBT": "0.0000000001"}}])
    balances = run(kc.balance())
    assert balances == {"ZUSD": Decimal("100.1234"), "XXBT": Decimal("1E-10")}
    req = pool.requests[0]
    assert req["path"] == "/0/private/Balance"
    body = req["body"].decode()
    nonce = dict(parse_qsl(body))["nonce"]
    secret = base64.b64encode(b"k" * 64).decode()
    assert req["headers"]["API-Key"] == "key-1"
    assert venue_signing.verify(req["path"], nonce, body, secret, req["headers"]["API-Sign"])
    assert "key-1" not in repr(kc)


def test_kraken_errors_in_a_200_answer_raise_with_the_error_strings() -> None:
    kc, _ = client([{"error": ["EOrder:Insufficient funds"]}])
    with pytest.raises(KrakenApiError) as err:
        run(kc.add_order(pair="XBTUSD", side="buy", ordertype="market", volume=Decimal("1")))
    assert err.value.errors == ["EOrder:Insufficient funds"] and err.value.rejection


def test_warnings_alone_are_not_errors() -> None:
    kc, _ = client([{"error": ["WGeneral:Something"], "result": {"count": 1}}])
    assert run(kc.cancel_order(txid="O1")) == 1


def test_queries_are_retried_on_transport_errors_and_transient_errors() -> None:
    kc, pool = client([HttpError("reset", sent=True), {"error": ["EService:Busy"]},
                       {"error": [], "result": {"open": {"O1": {"status": "open"}}}}])
    assert run(kc.open_orders()) == {"O1": {"status": "open"}}
    assert len(pool.requests) == 3
    nonces = [int(dict(parse_qsl(r["body"].decode()))["nonce"]) for r in pool.requests]
    assert nonces == sorted(set(nonces)), "each attempt has a fresh, larger nonce"


def test_add_order_is_retried_only_when_the_venue_provably_did_not_run_it() -> None:
    kc, pool = client([{"error": ["EAPI:Invalid nonce"]}, HttpError("cannot connect", sent=False),
                       {"error": [], "result": {"txid": ["OABC"], "descr": {"order": "buy 1 XBTUSD @ market"}}}])
    result = run(kc.add_order(pair="XBTUSD", side="buy", ordertype="market", volume=Decimal("1"), cl_ord_id="c"))
    assert result.txids == ["OABC"] and len(pool.requests) == 3


@pytest.mark.parametrize("failure", [
    HttpError("no response within 5 s", sent=True),
    HttpResponse(520, {}, b"<html>origin error</html>"),
    {"error": ["EService:Unavailable"]},
    {"error": ["EGeneral:Internal error"]},
])
def test_add_order_with_a_lost_or_ambiguous_answer_is_never_sent_twice(failure: Any) -> None:
    kc, pool = client([failure, {"error": [], "result": {"txid": ["SHOULD-NOT-BE-SENT"]}}])
    with pytest.raises(KrakenUnknownOutcome):
        run(kc.add_order(pair="XBTUSD", side="buy", ordertype="limit", volume=Decimal("1"), price=Decimal("10")))
    assert len(pool.requests) == 1


def test_a_rate_limited_query_waits_for_the_counter_to_decay() -> None:
    kc, pool = client([{"error": ["EAPI:Rate limit exceeded"]}, {"error": [], "result": {"ZUSD": "1"}}])
    slept: list[float] = []

    async def go() -> Any:
        real = asyncio.sleep

        async def fake_sleep(delay: float) -> None:
            slept.append(delay)
            await real(0)

        asyncio.sleep = fake_sleep  # type: ignore[assignment]
        try:
            return await kc.balance()
        finally:
            asyncio.sleep = real  # type: ignore[assignment]

    assert run(go()) == {"ZUSD": Decimal("1")}
    assert slept and slept[0] >= 1.0


def test_non_json_answers_are_transport_errors_for_safe_calls_after_retries() -> None:
    kc, pool = client([HttpResponse(200, {}, b"oops")] * 4)
    with pytest.raises(KrakenTransportError):
        run(kc.balance())
    assert len(pool.requests) == 4


def test_add_order_sends_krakens_parameters() -> None:
    kc, pool = client([{"error": [], "result": {"txid": ["O1"], "descr": {"order": "x"}}}])
    run(kc.add_order(pair="XBTUSD", side="sell", ordertype="limit", volume=Decimal("0.50"), price=Decimal("30000.1"),
                     post_only=True, userref=-5, cl_ord_id="abc", deadline_s=5))
    params = dict(parse_qsl(pool.requests[0]["body"].decode()))
    deadline = params.pop("deadline")
    assert params == {"nonce": params["nonce"], "ordertype": "limit", "type": "sell", "volume": "0.50",
                      "pair": "XBTUSD", "price": "30000.1", "oflags": "post", "userref": "-5", "cl_ord_id": "abc"}
    signed_at = int(params["nonce"]) / 1e6
    parsed = datetime.strptime(deadline, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
    assert abs(parsed - (signed_at + 5)) < 0.01, "the deadline is counted from when the request is signed"


def test_one_call_in_flight_at_a_time_by_default() -> None:
    class SlowPool(FakePool):
        active = 0
        most = 0

        async def request(self, method: str, path: str, **kw: Any) -> HttpResponse:
            SlowPool.active += 1
            SlowPool.most = max(SlowPool.most, SlowPool.active)
            await asyncio.sleep(0.01)
            SlowPool.active -= 1
            return await super().request(method, path, **kw)

    pool = SlowPool([{"error": [], "result": {}}] * 5)
    kc = KrakenClient("http://127.0.0.1:1", "k", base64.b64encode(b"s" * 64).decode(), pool=pool)  # type: ignore[arg-type]

    async def go() -> None:
        await asyncio.gather(*(kc.balance() for _ in range(5)))

    run(go())
    nonces = [int(dict(parse_qsl(r["body"].decode()))["nonce"]) for r in pool.requests]
    assert SlowPool.most == 1 and nonces == sorted(nonces), "sent one by one, in nonce order"


def test_query_orders_leaves_out_txids_the_venue_does_not_know() -> None:
    invalid = {"error": ["EOrder:Invalid order"]}
    answers = [invalid, {"error": [], "result": {"O1": {"status": "open"}}}, invalid]  # [O1,O2] -> [O1], [O2]
    kc, pool = client(answers)
    assert run(kc.query_orders(["O1", "O2"])) == {"O1": {"status": "open"}}
    assert len(pool.requests) == 3


def test_query_orders_batches_fifty_txids_per_call() -> None:
    answers = [{"error": [], "result": {f"O{i}": {} for i in range(50)}},
               {"error": [], "result": {f"O{i}": {} for i in range(50, 60)}}]
    kc, pool = client(answers)
    result = run(kc.query_orders([f"O{i}" for i in range(60)]))
    assert len(result) == 60 and len(pool.requests) == 2


def test_rfc3339_deadlines_within_and_across_seconds() -> None:
    from sandbox.services.oms.kraken_client import rfc3339

    def reference(epoch: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch % 1 * 1000):03d}Z"

    epochs = [1733331600.123, 1733331600.999, 1733331601.0, 1733331600.5, 1764867600.25, 0.0015]
    assert [rfc3339(e) for e in epochs] == [reference(e) for e in epochs]
    assert rfc3339(1764867600.25) == "2025-12-04T17:00:00.250Z"
