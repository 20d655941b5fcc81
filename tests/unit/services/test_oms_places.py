"""The decimal-places limit of order amounts (``models._places``), with and without trailing zeros."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from sandbox.services.oms.models import MAX_PLACES, OrderCreate, _places


def reference(value: Decimal) -> bool:
    """The rule as specified: at most 18 decimal places once trailing zeros are stripped."""
    exponent = value.normalize().as_tuple().exponent
    return not (isinstance(exponent, int) and -exponent > MAX_PLACES)


VALUES = ["0.001", "30010.0", "1e-18", "1e-19", "0.1234567890123456789", "0.123456789012345678",
          "0.000000000000000001000", "0.0000000000000000010001", "1.5" + "0" * 30, "100", "1E+3", "999999999999999"]


@pytest.mark.parametrize("raw", VALUES)
def test_same_verdict_as_the_rule(raw: str) -> None:
    value = Decimal(raw)
    if reference(value):
        assert _places(value) is value
    else:
        with pytest.raises(ValueError):
            _places(value)


def test_an_order_with_too_many_places_is_refused() -> None:
    base = {"account": "a", "client_order_id": "c", "symbol": "XBT/USD", "side": "buy", "type": "limit",
            "price": "30010"}
    OrderCreate.model_validate({**base, "qty": "0.001000000000000000000"})
    with pytest.raises(ValidationError):
        OrderCreate.model_validate({**base, "qty": "0.0000000000000000001"})
