"""Role requirements shared by the routers (``admin`` passes every check)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from sandbox.services.kit.auth import Principal, require_roles

#: Check orders: traders, services (the OMS) and risk officers.
CHECKERS = require_roles("trader", "service", "risk-officer")
#: Read datasets, positions, P&L, kill-switch states.
READERS = require_roles("trader", "service", "risk-officer", "viewer")
#: Change datasets, limits, marks and kill switches.
WRITERS = require_roles("risk-officer")
#: Read the audit trail.
AUDITORS = require_roles("risk-officer")

Writer = Annotated[Principal, Depends(WRITERS)]
