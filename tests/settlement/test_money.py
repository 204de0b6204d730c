"""Rounding to the cent and splitting a pot without losing one."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmenergy.settlement import SettlementError, allocate, cents, format_eur, to_cents


@pytest.mark.parametrize(
    "eur, expected",
    [
        (0.145, 15),  # 14.4999999... cents in binary: a person rounds it to 15
        (-0.145, -15),  # half away from zero, symmetric
        (0.005, 1),
        (0.0049, 0),
        (1.005, 101),
        (2.675, 268),
        (0.304999, 30),
        (-0.004999, 0),
        (1234567.895, 123456790),
        (0.0, 0),
    ],
)
def test_rounding_rule(eur, expected):
    assert cents(eur) == expected
    assert int(to_cents(np.array([eur]))[0]) == expected


@given(st.decimals(min_value=-10**6, max_value=10**6, places=4, allow_nan=False, allow_infinity=False))
def test_rounding_matches_decimal_half_away_from_zero(d):
    want = int((abs(d) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * (1 if d >= 0 else -1)
    assert cents(float(d)) == want
    assert int(to_cents(float(d))) == want


def test_non_finite_amount_is_an_error():
    with pytest.raises(SettlementError) as e:
        to_cents(np.array([1.0, np.nan]), "fee")
    assert e.value.path == "fee[1]"
    with pytest.raises(SettlementError):
        cents(float("inf"))


def test_allocate_hand_case():
    # pot 10 c over shares 3.34, 3.33, 3.33 c: floors 3, 3, 3; one cent left to the largest fraction
    assert allocate(np.array([3.34, 3.33, 3.33]), np.zeros(3, int), np.array([10])).tolist() == [4, 3, 3]
    # ties go to the lower index; two groups are independent
    got = allocate(np.array([2.5, 2.5, 1.5, 1.5, 1.0]), np.array([0, 0, 1, 1, 1]), np.array([5, 4]))
    assert got.tolist() == [3, 2, 2, 1, 1]


@given(st.lists(st.floats(-500, 500, allow_nan=False), min_size=1, max_size=40), st.integers(1, 4),
       st.integers(-3, 3))
def test_allocate_sums_to_the_pot_and_stays_within_a_cent(shares, n_groups, skew):
    exact = np.array(shares)
    group = np.arange(len(exact)) % n_groups
    sums = np.bincount(group, weights=exact, minlength=n_groups)
    pot = to_cents(sums / 100.0) + skew * (np.bincount(group, minlength=n_groups) > 0)
    got = allocate(exact, group, pot)
    np.testing.assert_array_equal(np.bincount(group, weights=got, minlength=n_groups).astype(np.int64), pot)
    if skew == 0:
        assert np.all(np.abs(got - exact) < 1.0 + 1e-6)


def test_format_eur():
    assert format_eur(0) == "0.00"
    assert format_eur(-5) == "-0.05"
    assert format_eur(123456) == "1234.56"
