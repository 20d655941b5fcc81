"""``/v1/accounts/{account}/rules`` (create-or-replace, read, delete, audit) and ``/v1/rules`` (all accounts).

Reads come from the in-memory rules cache; writes go to PostgreSQL in one
transaction with their audit entry, then update this replica's cache (other
replicas follow via NOTIFY / revision poll). ``If-Match: <version>`` makes a
write conditional (412 ``version_mismatch``); responses carry ``ETag``.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import Response

from sandbox.services.kit.auth import Principal, require_roles
from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.logs import request_id_var
from sandbox.services.policy import store
from sandbox.services.kit.decimal_json import DecimalRoute
from sandbox.services.policy.models import (
    ACCOUNT_PATTERN,
    Reason,
    RulesAuditEntry,
    RulesAuditList,
    RulesList,
    RulesPublic,
    RulesUpdate,
)
from sandbox.services.policy.runtime import Policy

router = APIRouter(prefix="/v1", tags=["rules"], route_class=DecimalRoute)

JSON = "application/json"
AccountPath = Annotated[str, Path(pattern=ACCOUNT_PATTERN, min_length=1, max_length=64, description="Account id")]
Writer = Annotated[Principal, Depends(require_roles("risk-officer"))]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=40,
                                       description="Current version (digits, optionally quoted): write only if it "
                                                   "still matches")]
_READERS = require_roles("risk-officer", "trader", "viewer", "service")
_NOT_FOUND = {404: {"description": "The account has no rules (rules_not_found)"}}


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip()
    text = text.removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise ServiceError(400, "invalid_if_match", "If-Match must be a rules version (digits, optionally quoted)")
    return int(text)


def _rules_response(doc: dict[str, object], status: int = 200) -> Response:
    return Response(json.dumps(doc), status_code=status, media_type=JSON, headers={"ETag": f'"{doc["version"]}"'})


@router.get("/rules", response_model=RulesList, dependencies=[require_roles("risk-officer", "viewer", "service")],
            summary="Rules of every account")
async def list_rules(policy: Policy) -> Response:
    """Every account that has rules, ordered by account (from memory)."""
    items = [policy.rules.rules[a].public() for a in sorted(policy.rules.rules)]
    return Response(json.dumps({"items": items, "total": len(items)}), media_type=JSON)


@router.get("/accounts/{account}/rules", response_model=RulesPublic, dependencies=[_READERS],
            responses=_NOT_FOUND, summary="An account's rules")
async def get_rules(account: AccountPath, policy: Policy) -> Response:
    """The account's allowed symbols and maximum order notional (from memory)."""
    rules = policy.rules.get(account)
    if rules is None:
        raise ServiceError(404, "rules_not_found", f"account {account!r} has no rules")
    return _rules_response(rules.public())


@router.put(
    "/accounts/{account}/rules", response_model=RulesPublic, status_code=200,
    responses={201: {"description": "Created", "model": RulesPublic},
               412: {"description": "If-Match does not match the current version (version_mismatch)"}},
    summary="Create or replace an account's rules (admin, risk-officer)",
)
async def put_rules(account: AccountPath, body: RulesUpdate, principal: Writer, policy: Policy,
                    if_match: IfMatch = None) -> Response:
    """201 when created, 200 when replaced; audited. Known symbols are stored under their wsname."""
    version = _if_match(if_match)
    symbols = None
    if body.allowed_symbols is not None:
        snapshot = policy.reference.snapshot
        resolved = (snapshot.resolve(s) for s in body.allowed_symbols)
        symbols = list(dict.fromkeys(
            inst.symbol if inst is not None else name for inst, name in zip(resolved, body.allowed_symbols, strict=True)
        ))
    result = await store.put_rules(
        policy.rules.pool, account, symbols, body.max_order_notional, actor=principal.subject, reason=body.reason,
        request_id=request_id_var.get(), if_match=version,
    )
    await policy.rules.apply(account, result.rules, result.revision)
    if policy.permissions.peek(account) is None:
        policy.permissions.refresh_later(account)  # warm the cache: this account is about to trade
    policy.counters.rule_writes.labels("created" if result.created else "replaced").inc()
    assert result.rules is not None
    return _rules_response(result.rules.public(), 201 if result.created else 200)


@router.delete("/accounts/{account}/rules", status_code=204,
               responses={**_NOT_FOUND, 412: {"description": "If-Match does not match (version_mismatch)"}},
               summary="Delete an account's rules (admin, risk-officer)")
async def delete_rules(account: AccountPath, principal: Writer, policy: Policy, if_match: IfMatch = None,
                       reason: Annotated[Reason | None, Query(description="Why (audited)")] = None) -> Response:
    """The account is unrestricted afterwards (no symbol list, no notional maximum); audited."""
    version = _if_match(if_match)
    result = await store.delete_rules(policy.rules.pool, account, actor=principal.subject, reason=reason,
                                      request_id=request_id_var.get(), if_match=version)
    await policy.rules.apply(account, None, result.revision)
    policy.counters.rule_writes.labels("deleted").inc()
    return Response(status_code=204)


@router.get("/accounts/{account}/rules/audit", response_model=RulesAuditList,
            dependencies=[require_roles("risk-officer", "viewer")], summary="Audit trail of an account's rules")
async def rules_audit(
    account: AccountPath, policy: Policy,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="Entries with an id below this")] = None,
) -> RulesAuditList:
    """Every create / replace / delete with actor, reason, before and after, newest first."""
    rows = await store.audit_trail(policy.rules.pool, account, limit=limit, before=before)
    items = [RulesAuditEntry.model_validate(r) for r in rows]
    next_before = items[-1].id if len(items) == limit else None
    return RulesAuditList(items=items, next_before=next_before)
