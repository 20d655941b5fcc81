"""The shipped suites provoke every policy and risk reject code, and the venue delists pairs for them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

import sandbox.services.risk.capital as risk_capital
import sandbox.services.risk.rules as risk_rules
from sandbox.scenarios import SCENARIOS_DIR
from sandbox.scenarios.loader import load_all
from sandbox.services.policy.checks import CODES as POLICY_CODES
from sandbox.venue.public_rest import AssetPairsCatalog, UnknownAssetPair
from sandbox.venue.trading.errors import KrakenError
from sandbox.venue.trading.venue import TradingVenue

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "kraken" / "assetpairs.json"


def _strings(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {s for v in node.values() for s in _strings(v)}
    if isinstance(node, list):
        return {s for v in node for s in _strings(v)}
    return {node} if isinstance(node, str) else set()


def expected_codes() -> set[str]:
    """Every string a shipped scenario's steps or expectations name (reasons, violation codes...)."""
    found: set[str] = set()
    for item in load_all([SCENARIOS_DIR]):
        doc = yaml.safe_load(item.path.read_text())
        found |= _strings(doc.get("steps")) | _strings(doc.get("expect"))
    return found


def risk_codes() -> set[str]:
    source = Path(risk_rules.__file__).read_text()
    codes = set(re.findall(r'Violation\(\s*"([a-z_]+)", "[a-z_]+"', source))
    assert len(codes) >= 10  # the pattern still finds the rules' codes
    return codes | {risk_capital.UNAVAILABLE, risk_capital.NOT_ALLOCATED}


def test_every_policy_reject_code_is_provoked_by_a_shipped_scenario() -> None:
    assert set(POLICY_CODES) - expected_codes() == set()


def test_every_risk_reject_code_is_provoked_by_a_shipped_scenario() -> None:
    assert risk_codes() - expected_codes() == set()


def test_a_delisted_pair_leaves_assetpairs_and_the_private_api_until_relisted() -> None:
    catalog = AssetPairsCatalog.from_file(FIXTURE)
    venue = TradingVenue(catalog, seed=1)
    pair = venue.pairs.get("ETH/XBT")
    assert venue.set_listed(pair, False) is True
    assert pair.key not in catalog.select()
    with pytest.raises(UnknownAssetPair):
        catalog.select("ETHXBT")
    with pytest.raises(KrakenError, match="Unknown asset pair"):
        venue.pairs.get("ETH/XBT")
    assert venue.pairs.find("ETH/XBT") is pair  # the admin API still finds it, to relist it
    assert venue.set_listed(pair, True) is False
    assert pair.key in catalog.select() and venue.pairs.get("ETHXBT") is pair
    venue.set_listed(pair, False)
    venue.reset()
    assert pair.key in catalog.select() and pair.key in catalog.select("ETHXBT")
