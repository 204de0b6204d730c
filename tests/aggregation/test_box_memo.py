"""The inner box of a constrained member is remembered by content (aggregation/inner.py
``BOX_MEMO``): a population repeats its device offers (5,447 constrained profiles, 2,470 distinct,
at 5,000 prosumers), and a repeat must get the very answer a solve would give."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmenergy.aggregation.inner import BOX_MEMO, _ContentMemo, _solve_box, box_inside
from vmenergy.flexoffer import Polytope

BATTERY = dict(polytope=Polytope(((1.0, 1.0), (-1.0, -1.0)), (1.0, 1.0)))


@pytest.fixture(autouse=True)
def empty_memo():
    BOX_MEMO.clear()
    yield
    BOX_MEMO.clear()


def test_the_same_member_is_solved_once_and_answered_alike():
    first = box_inside([-1.0, -1.0], [1.0, 1.0], **BATTERY)
    again = box_inside([-1.0, -1.0], [1.0, 1.0], **BATTERY)
    assert again == first
    assert (BOX_MEMO.misses, BOX_MEMO.hits, len(BOX_MEMO)) == (1, 1, 1)


@pytest.mark.parametrize("other", [
    dict(mins=[-1.0, -0.5]),
    dict(maxs=[1.0, 0.5]),
    dict(polytope=Polytope(((1.0, 1.0), (-1.0, -1.0)), (1.0, 0.5))),
    dict(polytope=Polytope(((1.0, 0.5), (-1.0, -1.0)), (1.0, 1.0))),
    dict(polytope=None),
    dict(tmin=-0.5),
    dict(tmax=0.5),
    dict(tmin=0.0),  # a total of 0 is not an absent total
])
def test_a_member_differing_in_any_input_is_solved_on_its_own(other):
    base = dict(mins=[-1.0, -1.0], maxs=[1.0, 1.0], **BATTERY)
    box_inside(**base)
    changed = dict(base, **other)
    got = box_inside(**changed)
    assert BOX_MEMO.misses == 2 and BOX_MEMO.hits == 0
    assert got == _solve_box(changed["mins"], changed["maxs"], polytope=changed["polytope"],
                             tmin=changed.get("tmin"), tmax=changed.get("tmax"), values={}, prefer=None)


def test_the_preferred_point_counts_only_where_it_can_change_the_answer():
    # with discrete values it breaks ties between pins: two answers
    vals = {0: (0.0, 0.5, 2.0)}
    middle = box_inside([0.0, 0.0], [2.0, 1.0], values=vals)
    preferred = box_inside([0.0, 0.0], [2.0, 1.0], values=vals, prefer=[2.0, 0.5])
    assert middle[0] == [0.5, 0.0] and preferred[0] == [2.0, 0.0]
    # without, the LP never reads it: one answer
    BOX_MEMO.clear()
    box_inside([-1.0, -1.0], [1.0, 1.0], **BATTERY)
    box_inside([-1.0, -1.0], [1.0, 1.0], prefer=[0.3, 0.3], **BATTERY)
    assert (BOX_MEMO.misses, BOX_MEMO.hits) == (1, 1)


def test_a_caller_changing_its_box_does_not_change_the_next_answer():
    lo, hi = box_inside([-1.0, -1.0], [1.0, 1.0], **BATTERY)
    expected = (list(lo), list(hi))
    lo[0] = hi[0] = 99.0
    assert box_inside([-1.0, -1.0], [1.0, 1.0], **BATTERY) == expected


def test_a_reason_for_no_box_is_remembered_too():
    args = dict(polytope=Polytope(((1.0, 1.0),), (-5.0,)))
    reason = box_inside([0.0, 0.0], [1.0, 1.0], **args)
    assert isinstance(reason, str) and box_inside([0.0, 0.0], [1.0, 1.0], **args) == reason
    assert BOX_MEMO.hits == 1


def test_the_memo_keeps_the_most_recently_used_answers_up_to_its_size():
    memo = _ContentMemo(2)
    memo.put(b"a", ([1.0], [2.0]))
    memo.put(b"b", "no box")
    assert memo.get(b"a") == ([1.0], [2.0])  # a is now the most recent
    memo.put(b"c", ([0.0], [0.0]))
    assert len(memo) == 2 and memo.get(b"b") is None and memo.get(b"a") is not None


def test_a_memo_of_no_size_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="size: 0"):
        _ContentMemo(0)


coef = st.floats(-2.0, 2.0, allow_nan=False).map(lambda v: round(v, 2))


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(coef, coef, coef), min_size=1, max_size=4),
       b=st.lists(st.floats(0.0, 3.0).map(lambda v: round(v, 2)), min_size=4, max_size=4),
       width=st.floats(0.1, 2.0))
def test_a_remembered_answer_is_the_answer_of_a_solve(rows, b, width):
    poly = Polytope(tuple(rows), tuple(b[: len(rows)]))
    mins, maxs = [-width] * 3, [width] * 3
    once = box_inside(mins, maxs, polytope=poly)
    twice = box_inside(mins, maxs, polytope=poly)
    assert once == twice == _solve_box(mins, maxs, polytope=poly, tmin=None, tmax=None, values={}, prefer=None)
