"""Pre-trade checks: policy-service, risk-service and fees-service, asked concurrently.

Each check's violations become the order's rejection reasons with their
stable codes passed through (``source`` says which service). policy and risk
fail closed: when one cannot be asked the order is rejected with
``policy_unavailable`` / ``risk_unavailable``. The fee estimate is
informational: without it the order proceeds with ``estimated_fee`` null.
A service without a configured URL is skipped (listed in ``skipped``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.services.oms.instruments import Instrument
from sandbox.services.oms.upstream import Reply, UpstreamError, Upstreams

log = logging.getLogger("sandbox.services.oms.checks")


@dataclass
class CheckResult:
    """The verdict of every check, the fee estimate and the notional (for the capital reservation)."""

    reasons: list[dict[str, Any]] = field(default_factory=list)
    estimated_fee: Decimal | None = None
    fee_currency: str | None = None
    notional: Decimal | None = None
    skipped: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        """No check refused the order."""
        return not self.reasons


def reason(code: str, message: str, source: str, detail: Any = None) -> dict[str, Any]:
    """A rejection reason document."""
    doc: dict[str, Any] = {"code": code, "message": message, "source": source}
    if detail is not None:
        doc["detail"] = detail
    return doc


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def violations_of(service: str, reply: Reply) -> list[dict[str, Any]]:
    """The rejection reasons in a check answer (an error answer becomes one reason)."""
    body = reply.body if isinstance(reply.body, dict) else {}
    if reply.status == 200:
        if body.get("allowed") is True:
            return []
        found = []
        for v in body.get("violations") or []:
            if isinstance(v, dict) and v.get("code"):
                extra = {k: v[k] for k in ("field", "limit", "actual", "rule", "detail") if v.get(k) is not None}
                found.append(reason(str(v["code"]), str(v.get("message", "")), service, extra or None))
        return found or [reason(f"{service}_refused", f"{service}-service refused the order", service)]
    code = str(body.get("error") or f"{service}_http_{reply.status}")
    if reply.status in (401, 403):
        return [reason(f"{service}_unavailable", f"{service}-service refused the OMS's credentials ({code})", service)]
    return [reason(code, str(body.get("message") or f"{service}-service answered HTTP {reply.status}"), service,
                   body.get("detail"))]


async def run_checks(up: Upstreams, order: Any, inst: Instrument) -> CheckResult:
    """Ask policy, risk and fees about ``order`` (an ``OrderCreate`` resolved to ``inst``) concurrently."""
    result = CheckResult()
    price = order.price if order.price is not None else order.reference_price
    policy_doc = {
        "account": order.account, "symbol": inst.wsname, "side": order.side, "type": order.type, "qty": order.qty,
        "price": order.price, "post_only": order.post_only, "reference_price": order.reference_price,
        "strategy": order.strategy, "client_order_id": order.client_order_id,
    }
    risk_doc = {
        "account": order.account, "strategy": order.strategy, "symbol": inst.wsname, "side": order.side,
        "qty": order.qty, "price": order.price, "reference_price": order.reference_price,
        "client_order_id": order.client_order_id,
    }
    fees_doc = {
        "account": order.account, "symbol": inst.wsname, "side": order.side, "qty": order.qty,
        "order_type": order.type, "price": order.price, "reference_price": order.reference_price,
        "liquidity": "maker" if order.post_only else "taker",
    }
    calls: dict[str, Any] = {}
    for service, doc in (("policy", policy_doc), ("risk", risk_doc)):
        if up.configured(service):
            calls[service] = up.call(service, "POST", "/v1/check-order", _strip(doc))
        else:
            result.skipped.append(service)
    if up.configured("fees") and price is not None:
        calls["fees"] = up.call("fees", "POST", "/v1/estimate", _strip(fees_doc))
    elif not up.configured("fees"):
        result.skipped.append("fees")
    replies = await settle_all(list(calls.values()))
    for service, reply in zip(calls, replies, strict=True):
        if isinstance(reply, BaseException):
            if not isinstance(reply, UpstreamError):
                log.exception("check call failed", exc_info=reply)
            if service != "fees":
                result.reasons.append(reason(f"{service}_unavailable", f"{service}-service could not be asked: {reply}",
                                             service))
            continue
        if service == "fees":
            body = reply.body if isinstance(reply.body, dict) else {}
            if reply.status == 200:
                result.estimated_fee = _decimal(body.get("fee"))
                result.fee_currency = body.get("currency")
            continue
        result.reasons.extend(violations_of(service, reply))
        if service == "risk" and reply.status == 200 and isinstance(reply.body, dict):
            result.notional = _decimal(reply.body.get("notional"))
    if price is not None:
        result.notional = order.qty * price
    return result


async def settle_all(calls: list[Awaitable[Any]]) -> list[Any]:
    """Each call's result or exception, in order: ``gather(..., return_exceptions=True)`` with the last
    call awaited in this task (one task fewer per order; asyncio tasks cost CPU to create and track).

    A cancelled caller cancels the calls still running, as ``gather`` does.
    """
    if not calls:
        return []
    tasks = [asyncio.ensure_future(c) for c in calls[:-1]]
    results: list[Any] = []
    try:
        try:
            last: Any = await calls[-1]
        except Exception as exc:  # noqa: BLE001 - returned, as gather(return_exceptions=True) does
            last = exc
        for task in tasks:
            try:
                results.append(await task)
            except Exception as exc:  # noqa: BLE001 - same
                results.append(exc)
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    results.append(last)
    return results


def _strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if v is not None}
