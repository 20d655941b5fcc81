"""The running policy-service: reference data, permissions, rules and counters in one object.

Built by the ``on_startup`` hook (``app.state.policy``) and reached by route
handlers through the :data:`Policy` dependency. :meth:`PolicyRuntime.check` is
the hot path: memory lookups only, unless an account is seen for the first time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.metrics import counter
from sandbox.services.policy.checks import CODES, evaluate
from sandbox.services.policy.credentials import KrakenCredentials
from sandbox.services.policy.models import CheckOrderRequest
from sandbox.services.policy.numbers import tidy
from sandbox.services.policy.permissions import PermissionsCache
from sandbox.services.policy.reference import ReferenceData
from sandbox.services.policy.rules_cache import RulesCache

log = logging.getLogger("sandbox.services.policy")


@dataclass
class Counters:
    """The service's own Prometheus counters (label children resolved once)."""

    checks: Any
    violations: Any
    refreshes: Any
    permissions: Any
    rule_writes: Any

    @classmethod
    def register(cls, app: FastAPI) -> Counters:
        """Create (once) the counters in the app's registry."""
        return cls(
            checks=counter(app, "policy_checks_total", "Order checks, by outcome (allowed / refused).", ["outcome"]),
            violations=counter(app, "policy_violations_total", "Violations found, by code.", ["code"]),
            refreshes=counter(app, "policy_reference_refreshes_total", "Reference data refreshes, by source and "
                              "outcome.", ["source", "outcome"]),
            permissions=counter(app, "policy_permissions_lookups_total", "Account permission lookups, by cache "
                                "result (hit / stale / miss / unavailable).", ["result"]),
            rule_writes=counter(app, "policy_rule_writes_total", "Rules writes, by action.", ["action"]),
        )


class PolicyRuntime:
    """Everything a request needs, created once per process."""

    def __init__(
        self,
        *,
        reference: ReferenceData,
        permissions: PermissionsCache,
        rules: RulesCache,
        counters: Counters,
        credentials: KrakenCredentials,
    ) -> None:
        """Wire the parts; the app's hooks start and stop them."""
        self.reference = reference
        self.permissions = permissions
        self.rules = rules
        self.counters = counters
        self.credentials = credentials
        self._allowed = counters.checks.labels("allowed")
        self._refused = counters.checks.labels("refused")
        self._violation = {code: counters.violations.labels(code) for code in CODES}

    async def check(self, order: CheckOrderRequest) -> bytes:
        """The decision document for ``order`` as JSON bytes; 503 until instruments were loaded once."""
        reference = self.reference
        if not reference.loaded:
            raise ServiceError(503, "reference_data_unavailable",
                               "instruments have not been loaded from universe-service yet",
                               headers={"Retry-After": "1"})
        instrument = reference.snapshot.resolve(order.symbol)
        permissions = await self.permissions.get(order.account)
        rules = self.rules.get(order.account)
        decision = evaluate(order, instrument, venue_status=reference.venue_status,
                            permissions=permissions, rules=rules)
        if decision.allowed:
            self._allowed.inc()
        else:
            self._refused.inc()
            for violation in decision.violations:
                self._violation[violation.code].inc()
        doc = {
            "allowed": decision.allowed,
            "violations": [v.document() for v in decision.violations],
            "checked_at": datetime.now(timezone.utc).isoformat(),
            "instrument": instrument.summary if instrument is not None else None,
            "account": order.account,
            "symbol": instrument.symbol if instrument is not None else order.symbol,
            "side": order.side,
            "type": order.type,
            "notional": None if decision.notional is None else tidy(decision.notional),
            "price_source": decision.price_source,
            "venue_status": reference.venue_status,
            "rules_version": rules.version if rules is not None else None,
            "unchecked": decision.unchecked,
            "strategy": order.strategy,
            "client_order_id": order.client_order_id,
        }
        return json.dumps(doc, separators=(",", ":")).encode()


async def get_runtime(request: Request) -> PolicyRuntime:
    """The app's :class:`PolicyRuntime` (503 while starting or stopping).

    ``async`` on purpose: FastAPI runs a sync dependency in the thread pool, a hop
    that costs more than the whole check.
    """
    runtime = getattr(request.app.state, "policy", None)
    if runtime is None:
        raise ServiceError(503, "unavailable", "policy-service is starting or stopping")
    return runtime


Policy = Annotated[PolicyRuntime, Depends(get_runtime)]
