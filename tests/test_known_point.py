"""A known point (an offer's baseline) may spare the LP that proves a polytope profile non-empty,
but never changes the answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scipy.optimize

from vmenergy.flexoffer import FlexOffer, FlexOfferError, Polytope, Profile, Slice, TotalEnergy
from vmenergy.flexoffer.parts import known_point

small = st.integers(-4, 4).map(float)


@st.composite
def cases(draw):
    n = draw(st.integers(1, 4))
    lows = [draw(st.integers(-3, 3)) for _ in range(n)]
    slices = tuple(Slice(1, float(lo), float(lo + draw(st.integers(0, 4)))) for lo in lows)
    rows = draw(st.integers(1, 3))
    A = tuple(tuple(draw(small) for _ in range(n)) for _ in range(rows))
    b = tuple(float(draw(st.integers(-6, 6))) for _ in range(rows))
    total = draw(st.one_of(st.none(), st.integers(-8, 8).map(lambda m: TotalEnergy(float(m), None))))
    point = tuple(draw(st.integers(-4, 7).map(float)) for _ in range(draw(st.sampled_from([n, n, n + 1]))))
    return slices, total, Polytope(A, b), point


def outcome(slices, total, polytope, point=None):
    try:
        with known_point(point):
            Profile(slices, total=total, polytope=polytope)
    except FlexOfferError as exc:
        return exc.reason
    return "accepted"


@given(cases())
@settings(max_examples=400, deadline=None)
def test_a_known_point_never_changes_whether_a_profile_is_accepted(case):
    slices, total, polytope, point = case
    assert outcome(slices, total, polytope, point) == outcome(slices, total, polytope)


def test_a_point_inside_spares_the_lp_and_one_outside_does_not(monkeypatch):
    calls = []
    real = scipy.optimize.linprog

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(scipy.optimize, "linprog", counting)
    slices = (Slice(1, 0.0, 2.0), Slice(1, 0.0, 2.0))
    poly = Polytope(((1.0, 1.0),), (3.0,))  # x0 + x1 <= 3
    assert outcome(slices, None, poly, (1.0, 1.5)) == "accepted" and calls == []
    assert outcome(slices, None, poly, (2.0, 2.0)) == "accepted" and calls == [1]  # 4 > 3: the LP decides
    assert outcome(slices, None, Polytope(((-1.0, -1.0),), (-5.0,)), (2.0, 2.0)).startswith("no energy profile")


def test_an_offer_read_from_json_uses_its_baseline(monkeypatch):
    offer = {"id": "hp-1", "resolution": 900, "start_after": "2026-11-22T12:00:00Z",
             "profiles": [{"slices": [{"duration": 1, "min": 0, "max": 2}, {"duration": 1, "min": 0, "max": 2}],
                           "polytope": {"A": [[1, 1]], "b": [3]}}],
             "baseline": {"energy": [1, 1.5]}}
    monkeypatch.setattr(scipy.optimize, "linprog", lambda *a, **k: pytest.fail("the baseline proves it"))
    assert FlexOffer.from_dict(offer).profiles[0].polytope is not None
    bad = dict(offer, baseline={"energy": "x"})  # a bad baseline is still reported by its field
    monkeypatch.undo()
    with pytest.raises(FlexOfferError, match="baseline"):
        FlexOffer.from_dict(bad)
