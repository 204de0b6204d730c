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


# -- rows as a parser hands them (Polytope.of_rows: the JSON and XML offers' way in) -----------
cells = st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0, 0.25, 3.5e-9, -7.125]), st.integers(-5, 5),
                  st.floats(-1e6, 1e6, allow_nan=False))


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 5).flatmap(lambda n: st.lists(st.lists(cells, min_size=n, max_size=n), min_size=1, max_size=6)),
       st.data())
def test_parsed_rows_give_the_polytope_the_tuples_give(rows, data):
    b = data.draw(st.lists(cells, min_size=len(rows), max_size=len(rows)))
    p, q = Polytope.of_rows(rows, b), Polytope(tuple(map(tuple, rows)), tuple(b))
    assert p == q
    assert all(type(x) is float for row in p.A for x in row) and all(type(x) is float for x in p.b)
    assert [[math.copysign(1, x) for x in row] for row in p.A] == [[math.copysign(1, x) for x in row] for row in q.A]


def test_parsed_rows_share_one_float_object_per_value():
    rows = [[0.0] * 24 for _ in range(48)]  # a parser makes a new float object for every cell
    rows = [[float(str(x)) for x in row] for row in rows]
    p = Polytope.of_rows(rows, [1.0] * 48)
    assert len({id(x) for row in p.A for x in row}) == 1


@pytest.mark.parametrize("rows, b", [
    pytest.param([[1.0, True]], [1.0], id="boolean cell"),
    pytest.param([[1.0, "2"]], [1.0], id="text cell"),
    pytest.param([[1.0, None]], [1.0], id="null cell"),
    pytest.param([[1.0, 2.0], [1.0]], [1.0, 1.0], id="ragged rows (the profile names the row)"),
    pytest.param([[1.0, 10 ** 400]], [1.0], id="an int beyond any float"),
    pytest.param([[1.0, 1e13]], [1.0], id="cell beyond the limit"),
    pytest.param([[1.0, float("nan")]], [1.0], id="NaN cell"),
    pytest.param([[1.0, 2.0]], [False], id="boolean bound"),
    pytest.param([[1.0, 2.0]], [1.0, 2.0], id="b longer than A"),
    pytest.param([], [], id="no rows"),
    pytest.param([[]], [1.0], id="an empty row"),
    pytest.param([1.0, 2.0], [1.0], id="a row that is a number"),
])
def test_parsed_rows_are_refused_as_tuples_are_with_the_same_path(rows, b):
    def outcome(make):
        try:
            return make()
        except FlexOfferError as exc:
            return (exc.path, exc.reason)
        except TypeError as exc:  # what the tuple constructor itself raises for a row that is a number
            return type(exc)
    got = outcome(lambda: Polytope.of_rows(rows, b))
    want = outcome(lambda: Polytope(tuple(tuple(r) for r in rows), tuple(b)))
    assert got == want


def test_an_offer_read_from_json_holds_its_polytope_pooled_and_reports_bad_cells_by_path():
    from vmenergy.flexoffer import FlexOffer
    from vmenergy.flexoffer.parts import ROWS
    ROWS.clear()  # rows equal to these, held from earlier tests, would bring their own zeros
    doc = {"id": "hp", "resolution": 900, "start_after": "2026-11-23T00:00:00Z",
           "profiles": [{"slices": [{"duration": 1, "min": 0.0, "max": 1.0}] * 2,
                         "polytope": {"A": [[1.0, 0.0], [0.0, 1.0]], "b": [1.0, 1.0]}}]}
    fo = FlexOffer.from_dict(doc)
    A = fo.profiles[0].polytope.A
    assert A == ((1.0, 0.0), (0.0, 1.0)) and A[0][1] is A[1][0]
    doc["profiles"][0]["polytope"]["A"][1][0] = "x"
    with pytest.raises(FlexOfferError) as err:
        FlexOffer.from_dict(doc)
    assert err.value.path == "profiles[0].polytope.A[1][0]"


def test_sums_at_is_float_even_when_nothing_is_summed():
    from vmenergy.flexoffer.ragged import sums_at
    empty = sums_at(np.zeros(0, dtype=np.int64), np.zeros(0), 3)
    assert empty.dtype == np.float64 and empty.tolist() == [0.0, 0.0, 0.0]
    got = sums_at(np.array([0, 2, 2]), np.array([0.25, 1.5, 0.25]), 4)
    assert got.tolist() == [0.25, 0.0, 1.75, 0.0]
