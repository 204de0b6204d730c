"""A polytope built from numpy arrays (the device models' rows, checked at once) is the same
polytope as from the same numbers in tuples, refuses what the tuples are refused for with the same
path and reason, and keeps one float object per distinct value."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vmenergy.flexoffer import FlexOfferError, Polytope
from vmenergy.flexoffer.limits import MAX_POLYTOPE_ROWS


def as_tuples(A: np.ndarray, b: np.ndarray) -> Polytope:
    return Polytope(tuple(map(tuple, A.tolist())), tuple(b.tolist()))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 6)),
              elements=st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.25, 3.5e-9, -7.125])),
       st.data())
def test_arrays_give_the_polytope_the_tuples_give(A, data):
    b = data.draw(arrays(np.float64, A.shape[0], elements=st.floats(-100, 100)))
    p, q = Polytope.of_arrays(A, b), as_tuples(A, b)
    assert p == q
    # the same floats, signs of zero included (they show in the offer's JSON)
    assert [[math.copysign(1, x) for x in row] for row in p.A] == [[math.copysign(1, x) for x in row] for row in q.A]


def test_equal_cells_share_one_float_object():
    A = np.vstack([np.tril(np.full((4, 4), 0.95)), -np.tril(np.full((4, 4), 0.95))])
    p = Polytope.of_arrays(A, np.ones(8))
    zeros = [x for row in p.A for x in row if x == 0.0 and math.copysign(1, x) > 0]
    assert len({id(x) for x in zeros}) == 1


@pytest.mark.parametrize("A, b", [
    pytest.param(np.array([[1.0, np.nan]]), np.array([1.0]), id="NaN cell"),
    pytest.param(np.array([[1.0, np.inf]]), np.array([1.0]), id="infinite cell"),
    pytest.param(np.array([[1.0, 1e13]]), np.array([1.0]), id="cell beyond the limit"),
    pytest.param(np.array([[1.0, 2.0]]), np.array([np.inf]), id="infinite bound"),
    pytest.param(np.array([[1.0, 2.0]]), np.array([1.0, 2.0]), id="b longer than A"),
    pytest.param(np.array([[True, False]]), np.array([1.0]), id="booleans"),
    pytest.param(np.zeros((0, 2)), np.zeros(0), id="no rows"),
    pytest.param(np.zeros((MAX_POLYTOPE_ROWS + 1, 1)), np.zeros(MAX_POLYTOPE_ROWS + 1), id="too many rows"),
])
def test_arrays_are_refused_for_what_tuples_are_refused_for_with_the_same_path(A, b):
    with pytest.raises(FlexOfferError) as from_arrays:
        Polytope.of_arrays(A, b)
    with pytest.raises(FlexOfferError) as from_tuples:
        as_tuples(A, b)
    assert (from_arrays.value.path, from_arrays.value.reason) == (from_tuples.value.path, from_tuples.value.reason)
