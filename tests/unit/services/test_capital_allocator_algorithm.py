"""The allocation algorithm: buffer, normalisation, clamping with redistribution, rounding, infeasibility."""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.services.capital_allocator.algorithm import (
    INFEASIBLE_BOUNDS,
    INFEASIBLE_MINIMUMS,
    AllocationError,
    Inputs,
    Result,
    Target,
    allocatable_capital,
    allocate,
    quantum,
)


def run(nav: str, targets: list[Target], buffer: str = "0", precision: int = 2) -> Result:
    return allocate(Inputs(D(nav), D(buffer), precision, tuple(targets)))


def amounts(result: Result) -> dict[str, str]:
    return {line.strategy: str(line.allocated) for line in result.lines}


def bindings(result: Result) -> dict[str, str]:
    return {line.strategy: line.binding for line in result.lines}


def test_weights_are_normalised_over_the_active_strategies_and_the_buffer_is_kept() -> None:
    result = run("1000", [Target("a", D(3)), Target("b", D(1))], buffer="10")
    assert result.allocatable == D("900.00") and result.buffer == D("100.00")
    assert amounts(result) == {"a": "675.00", "b": "225.00"}
    assert [line.normalised_weight for line in result.lines] == [D("0.75"), D("0.25")]
    assert result.allocated == D("900.00") and result.unallocated == 0
    assert bindings(result) == {"a": "none", "b": "none"}
    assert result.iterations == 1


def test_weights_need_not_sum_to_one() -> None:
    assert amounts(run("100", [Target("a", D("0.2")), Target("b", D("0.2"))])) == {"a": "50.00", "b": "50.00"}


def test_excess_above_a_maximum_goes_to_the_unclamped_strategies_in_proportion() -> None:
    result = run("1000", [Target("a", D(8), max_capital=D(300)), Target("b", D(1)), Target("c", D(3))])
    assert amounts(result) == {"a": "300.00", "b": "175.00", "c": "525.00"}
    assert bindings(result) == {"a": "max", "b": "none", "c": "none"}
    assert result.iterations == 2


def test_shortfall_below_a_minimum_is_taken_from_the_unclamped_strategies() -> None:
    result = run("1000", [Target("a", D(1), min_capital=D(400)), Target("b", D(4)), Target("c", D(5))])
    assert amounts(result) == {"a": "400.00", "b": "266.67", "c": "333.33"}
    assert bindings(result) == {"a": "min", "b": "none", "c": "none"}


def test_clamping_cascades_until_no_bound_is_violated() -> None:
    # a hits its max; the excess pushes b over its max too; c takes the rest.
    targets = [Target("a", D(5), max_capital=D(200)), Target("b", D(3), max_capital=D(350)), Target("c", D(2))]
    result = run("1000", targets)
    assert amounts(result) == {"a": "200.00", "b": "350.00", "c": "450.00"}
    assert bindings(result) == {"a": "max", "b": "max", "c": "none"}
    assert result.iterations == 3


def test_the_larger_violation_is_clamped_first() -> None:
    # raw = 250 each: a is 150 over its max (100), b is 10 under its min (260). The excess
    # dominates, so only a is fixed; the 900 left gives b, c, d 300 each, so b is *not* held
    # at 260 (clamping both at once would give b 260 and c, d 320: not proportional).
    targets = [Target("a", D(1), max_capital=D(100)), Target("b", D(1), min_capital=D(260)),
               Target("c", D(1)), Target("d", D(1))]
    result = run("1000", targets)
    assert amounts(result) == {"a": "100.00", "b": "300.00", "c": "300.00", "d": "300.00"}
    assert bindings(result) == {"a": "max", "b": "none", "c": "none", "d": "none"}


def test_equal_excess_and_shortfall_clamp_both_sides() -> None:
    # raw = 250 each: a 50 over its max (200), b 50 under its min (300): both fixed, c and d keep 250.
    targets = [Target("a", D(1), max_capital=D(200)), Target("b", D(1), min_capital=D(300)),
               Target("c", D(1)), Target("d", D(1))]
    result = run("1000", targets)
    assert amounts(result) == {"a": "200.00", "b": "300.00", "c": "250.00", "d": "250.00"}
    assert bindings(result) == {"a": "max", "b": "min", "c": "none", "d": "none"}


def test_weight_bounds_are_fractions_of_the_allocatable_capital() -> None:
    targets = [Target("a", D(9), max_weight=D("0.25")), Target("b", D(1), min_weight=D("0.5")), Target("c", D(1))]
    result = run("2000", targets, buffer="50")  # allocatable 1000
    assert amounts(result) == {"a": "250.00", "b": "500.00", "c": "250.00"}
    line = result.by_strategy()["b"]
    assert line.min_capital == D("500.00") and line.max_capital == D("1000.00")


def test_the_tighter_of_capital_and_weight_bounds_applies() -> None:
    result = run("1000", [Target("a", D(1), max_capital=D(600), max_weight=D("0.4")), Target("b", D(0))])
    assert result.by_strategy()["a"].max_capital == D("400.00")
    assert amounts(result) == {"a": "400.00", "b": "0.00"}
    assert result.unallocated == D("600.00")


def test_rounding_hands_out_the_last_cents_by_largest_remainder_then_id() -> None:
    result = run("100", [Target("c", D(1)), Target("a", D(1)), Target("b", D(1))])
    assert amounts(result) == {"a": "33.34", "b": "33.33", "c": "33.33"}
    assert result.allocated == D("100.00")
    result = run("100", [Target("a", D(1)), Target("b", D(2))], precision=0)
    assert amounts(result) == {"a": "33", "b": "67"}  # 33.3 vs 66.7: b has the larger remainder


def test_allocations_stay_on_the_grid_and_never_exceed_nav_minus_buffer() -> None:
    result = run("1000.005", [Target("a", D(1)), Target("b", D(1)), Target("c", D(1))], buffer="33.333")
    assert result.allocatable == D("666.67")  # floor(1000.005 * 0.66667) = floor(666.6753...)
    assert result.allocated == result.allocatable
    assert all(line.allocated == line.allocated.quantize(D("0.01")) for line in result.lines)
    assert result.buffer >= D("1000.005") * D("0.33333")


def test_bounds_are_rounded_inwards_to_the_grid() -> None:
    result = run("100", [Target("a", D(1), min_capital=D("10.001"), max_capital=D("20.009")), Target("b", D(0))])
    line = result.by_strategy()["a"]
    assert (line.min_capital, line.max_capital, line.allocated) == (D("10.01"), D("20.00"), D("20.00"))


def test_zero_weight_strategies_get_their_minimum() -> None:
    targets = [Target("a", D(0), min_capital=D(50)), Target("b", D(0)), Target("c", D(1))]
    result = run("1000", targets)
    assert amounts(result) == {"a": "50.00", "b": "0.00", "c": "950.00"}
    assert bindings(result) == {"a": "min", "b": "min", "c": "none"}
    assert result.by_strategy()["a"].normalised_weight == 0


def test_all_zero_weights_leave_the_rest_unallocated() -> None:
    result = run("1000", [Target("a", D(0), min_capital=D(100)), Target("b", D(0))])
    assert amounts(result) == {"a": "100.00", "b": "0.00"}
    assert result.unallocated == D("900.00")


def test_when_every_strategy_is_capped_the_rest_stays_unallocated() -> None:
    result = run("1000", [Target("a", D(1), max_capital=D(100)), Target("b", D(1), max_capital=D("250.5"))])
    assert amounts(result) == {"a": "100.00", "b": "250.50"}
    assert result.allocated == D("350.50") and result.unallocated == D("649.50")


def test_no_active_strategy_allocates_nothing() -> None:
    result = run("1000", [], buffer="5")
    assert result.lines == () and result.allocated == 0 and result.unallocated == D("950.00")


def test_zero_nav_and_full_buffer() -> None:
    assert amounts(run("0", [Target("a", D(1))])) == {"a": "0.00"}
    assert amounts(run("1000", [Target("a", D(1))], buffer="100")) == {"a": "0.00"}


def test_minimums_above_the_allocatable_capital_are_infeasible() -> None:
    targets = [Target("a", D(1), min_capital=D(600)), Target("b", D(1), min_capital=D(500))]
    with pytest.raises(AllocationError) as err:
        run("1000", targets, buffer="0")
    assert err.value.code == INFEASIBLE_MINIMUMS
    assert err.value.detail == {"required": "1100.00", "allocatable": "1000.00",
                                "minimums": {"a": "600.00", "b": "500.00"}}
    assert "exceed the allocatable capital" in err.value.message
    with pytest.raises(AllocationError):  # the buffer counts: 1000 fits NAV but not NAV minus 10 %
        run("1000", [Target("a", D(1), min_capital=D(1000))], buffer="10")


def test_minimums_exactly_equal_to_the_allocatable_capital_are_fine() -> None:
    targets = [Target("a", D(5), min_capital=D(600)), Target("b", D(1), min_capital=D(400))]
    assert amounts(run("1000", targets)) == {"a": "600.00", "b": "400.00"}


def test_a_minimum_above_a_maximum_is_infeasible() -> None:
    with pytest.raises(AllocationError) as err:
        run("1000", [Target("a", D(1), min_capital=D(300), max_weight=D("0.2"))])
    assert err.value.code == INFEASIBLE_BOUNDS
    assert err.value.detail["strategies"] == [{"strategy": "a", "min_capital": "300.00", "max_capital": "200.00"}]


def test_malformed_inputs_are_value_errors() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        run("1", [Target("a", D(1)), Target("a", D(2))])
    with pytest.raises(ValueError):
        run("1", [Target("a", D(-1))])
    with pytest.raises(ValueError):
        quantum(19)
    with pytest.raises(ValueError):
        allocatable_capital(D(1), D(101), D("0.01"))


def test_input_order_does_not_matter() -> None:
    targets = [Target(f"s{i}", D(i % 4), min_capital=D(i * 3), max_capital=D(200 + i)) for i in range(12)]
    expected = run("2000", targets, buffer="7.5")
    for seed in range(5):
        shuffled = list(targets)
        random.Random(seed).shuffle(shuffled)
        assert run("2000", shuffled, buffer="7.5") == expected


# ---------------------------------------------------------------------------- properties

money = st.integers(min_value=0, max_value=10**9).map(lambda c: D(c) / 100)
target_st = st.builds(
    lambda w, lo, extra, cap: (w, lo, None if cap else lo + extra),
    st.integers(min_value=0, max_value=50).map(D),
    st.integers(min_value=0, max_value=3000).map(D),
    st.integers(min_value=0, max_value=5000).map(D),
    st.booleans(),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(nav=money, buffer=st.integers(min_value=0, max_value=100).map(D),
       specs=st.lists(target_st, min_size=1, max_size=8), precision=st.integers(min_value=0, max_value=4))
def test_result_is_the_clamped_proportional_split(
    nav: D, buffer: D, specs: list[tuple[D, D, D | None]], precision: int
) -> None:
    """Every result is ``clamp(lambda * w, lo, hi)`` up to one quantum, within bounds, summing to the target."""
    targets = [Target(f"s{i}", w, min_capital=lo, max_capital=hi) for i, (w, lo, hi) in enumerate(specs)]
    q = quantum(precision)
    try:
        result = run(str(nav), targets, buffer=str(buffer), precision=precision)
    except AllocationError as exc:
        assert exc.code in (INFEASIBLE_MINIMUMS, INFEASIBLE_BOUNDS)
        return
    assert result.allocated <= result.allocatable <= nav * (1 - buffer / 100)
    lines = result.lines
    for line in lines:
        assert line.min_capital <= line.allocated <= line.max_capital
        assert line.allocated == line.allocated.quantize(q)
    free = [line for line in lines if line.binding == "none"]
    if free:
        assert result.allocated == result.allocatable
        ratios = [line.allocated / line.weight for line in free]
        spread = max(ratios) - min(ratios)
        assert spread <= 2 * q / min(line.weight for line in free)
        level = min(ratios)
        for line in lines:
            if line.binding == "max":
                assert line.weight * (level + 2 * q) >= line.max_capital - q
            elif line.binding == "min" and line.weight > 0:
                assert line.weight * (level - 2 * q) <= line.min_capital + q
    else:
        assert all(line.allocated in (line.min_capital, line.max_capital) for line in lines)
