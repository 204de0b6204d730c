"""Hand-computed disaggregation, refusals of bad schedules, bulk and hierarchical disaggregation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.aggregation.helpers import offer, prof
from vmenergy.aggregation import (
    AggregationParams,
    InfeasibleScheduleError,
    aggregate,
    disaggregate,
    disaggregate_many,
)
from vmenergy.flexoffer import TOLERANCE, FlexOffer, FlexOfferError, Schedule

P = AggregationParams(method="start", est_tolerance=4, tf_tolerance=8)


@pytest.fixture
def pair():
    a = offer("a", 10, 14, [(1, 0.0, 1.0), (1, 1.0, 2.0)])
    b = offer("b", 11, 13, [(1, 0.5, 0.5), (1, 0.0, 3.0), (1, 2.0, 2.0)])
    [agg] = aggregate([a, b], P)  # window [10, 12]; bounds [0,1] [1.5,2.5] [0,3] [2,2]
    return a, b, agg


def test_each_slice_gives_every_member_the_same_fraction_of_its_width(pair):
    a, b, agg = pair
    s = Schedule(agg.id, 12, (0.5, 2.0, 1.5, 2.0), schedule_id="s-7", update_id=3)
    parts = disaggregate(agg, s)
    assert parts["a"] == Schedule("a", 12, (0.5, 1.5), schedule_id="s-7", update_id=3)
    assert parts["b"] == Schedule("b", 13, (0.5, 1.5, 2.0), schedule_id="s-7", update_id=3)
    assert a.check(parts["a"]) == [] and b.check(parts["b"]) == []


def test_bounds_of_the_aggregate_give_members_their_own_bounds(pair):
    a, b, agg = pair
    low = disaggregate(agg, Schedule(agg.id, 10, (0.0, 1.5, 0.0, 2.0)))
    high = disaggregate(agg, Schedule(agg.id, 10, (1.0, 2.5, 3.0, 2.0)))
    assert low["a"].energy == (0.0, 1.0) and low["b"].energy == (0.5, 0.0, 2.0)
    assert high["a"].energy == (1.0, 2.0) and high["b"].energy == (0.5, 3.0, 2.0)


def test_the_tolerance_band_is_accepted_and_members_stay_inside_their_bounds(pair):
    a, b, agg = pair
    over = TOLERANCE / 2
    parts = disaggregate(agg, Schedule(agg.id, 11, (1.0 + over, 2.5, 3.0, 2.0 - over)))
    assert parts["a"].energy[0] == 1.0  # clipped to the member's max, not above it
    assert parts["b"].energy[2] == 2.0
    # the sum then differs from the aggregate schedule by the excursion, at most TOLERANCE
    assert abs(parts["a"].energy[0] - (1.0 + over)) <= TOLERANCE


def test_members_with_merged_slices_and_gaps_sum_to_the_aggregate():
    a = offer("a", 0, 2, [(2, 0.0, 2.0), (1, 1.0, 1.0)])
    b = offer("b", 1, 3, [(1, 0.0, 1.0), (1, 0.0, 1.0), (1, 0.0, 1.0)])
    c = offer("c", 3, 5, [(1, 0.0, 4.0)])
    [agg] = aggregate([a, b, c], P)  # [2: 0..3] [1: 1..2] [1: 0..5]
    parts = disaggregate(agg, Schedule(agg.id, 1, (1.5, 1.5, 2.5)))
    assert parts["a"].energy == (1.0, 1.0) and parts["b"].energy == (0.5, 0.5, 0.5)
    assert parts["c"].energy == (2.0,) and parts["c"].start == 4
    for fo in (a, b, c):
        assert fo.check(parts[fo.id]) == []


def test_constrained_members_get_schedules_feasible_for_their_real_constraints():
    ev = offer("ev", 0, 4, profiles=[prof([(1, 0.0, 2.8), (2, 1.0, 5.6)], total=(6.0, 8.4))])
    bat = offer("bat", 1, 4, profiles=[prof([(1, -1.0, 1.0), (1, -1.0, 1.0)],
                                            polytope=(((1.0, 1.0), (-1.0, -1.0)), (1.0, 1.0)))])
    kettle = offer("kettle", 0, 4, profiles=[prof([(1, 0.0, 2.0, (0.0, 2.0))])])
    res = aggregate([ev, bat, kettle], AggregationParams(mix_directions=True, est_tolerance=4, tf_tolerance=8))
    [agg] = res
    rng = np.random.default_rng(5)
    for _ in range(20):
        e = [s.min + rng.random() * (s.max - s.min) for s in agg.profiles[0].slices]
        parts = disaggregate(agg, Schedule(agg.id, int(rng.integers(agg.start_after, agg.start_before + 1)), e))
        for fo in (ev, bat, kettle):
            assert fo.check(parts[fo.id]) == [], fo.id


def test_an_infeasible_schedule_is_refused_with_every_violated_constraint(pair):
    _, _, agg = pair
    with pytest.raises(InfeasibleScheduleError) as e:
        disaggregate(agg, Schedule(agg.id, 13, (0.5, 3.0, 1.5, 2.0), schedule_id="bad"))
    err = e.value
    assert isinstance(err, FlexOfferError)
    assert [v.field for v in err.violations] == ["start", "energy[1]"]
    assert err.path == "start" and "'bad'" in err.reason and "energy[1]" in err.reason
    with pytest.raises(InfeasibleScheduleError) as e:
        disaggregate(agg, Schedule(agg.id, 10, (0.5, 2.0)))
    assert e.value.path == "energy"
    with pytest.raises(InfeasibleScheduleError) as e:
        disaggregate(agg, Schedule("someone-else", 10, (0.5, 2.0, 1.5, 2.0)))
    assert e.value.path == "offer_id"
    with pytest.raises(InfeasibleScheduleError) as e:
        disaggregate(agg, Schedule(agg.id, 10, (0.5, 2.0, 1.5, 2.0), profile=1))
    assert e.value.path == "profile"


def test_only_aggregates_with_their_members_can_be_disaggregated(pair):
    a, _, agg = pair
    s = Schedule(agg.id, 10, (0.5, 2.0, 1.5, 2.0))
    for not_agg in (a, FlexOffer.from_json(agg.to_json())):
        with pytest.raises(FlexOfferError) as e:
            disaggregate(not_agg, s)
        assert e.value.path == "aggregate"
    changed = dataclasses.replace(agg, start_before=agg.start_before + 1)
    with pytest.raises(FlexOfferError) as e:
        disaggregate(changed, s)
    assert "changed after aggregation" in e.value.reason
    with pytest.raises(FlexOfferError) as e:
        disaggregate(agg, {"start": 10})
    assert e.value.path == "schedule"


def test_disaggregate_many_matches_one_by_one_and_refuses_bad_schedules():
    offers = [offer(f"o{i}", i % 6, i % 6 + i % 3, [(1, 0.1 * (i % 4), 1.0), (1, 0.0, 0.5 + 0.1 * i)]) for i in range(30)]
    aggs = aggregate(offers, AggregationParams(max_offers=4))
    scheds = [Schedule(a.id, a.start_before, tuple((s.min + s.max) / 2 for s in a.profiles[0].slices), schedule_id=f"s{k}")
              for k, a in enumerate(aggs)]
    many = disaggregate_many(aggs, scheds[1:])  # the first aggregate gets no schedule
    got = many.to_dict()
    want = {}
    for a, s in zip(aggs[1:], scheds[1:]):
        want.update(disaggregate(a, s))
    assert got == want
    assert len(many) == len(want) == sum(a.n_members for a in aggs[1:])
    assert all(r.n_feasible == len(r.flags) for r in many.check())
    with pytest.raises(FlexOfferError) as e:
        disaggregate_many(aggs, [dataclasses.replace(scheds[0], offer_id="nope")])
    assert e.value.path == "schedules[0].offer_id"
    with pytest.raises(FlexOfferError) as e:
        disaggregate_many(aggs, [scheds[0], scheds[0]])
    assert e.value.path == "schedules[1].offer_id"
    bad = dataclasses.replace(scheds[2], start=aggs[2].start_before + 1)
    with pytest.raises(InfeasibleScheduleError) as e:
        disaggregate_many(aggs, [scheds[0], bad])
    assert e.value.path == "schedules[1].start"
    low = dataclasses.replace(scheds[3], energy=(-1.0,) + scheds[3].energy[1:])
    with pytest.raises(InfeasibleScheduleError) as e:
        disaggregate_many(aggs, [low, bad])
    assert e.value.path == "schedules[0].energy[0]" and "1 more" in e.value.reason
    with pytest.raises(FlexOfferError) as e:
        disaggregate_many([offers[0]], [])
    assert e.value.path == "aggregates[0]"


def test_aggregates_of_aggregates_disaggregate_down_to_the_prosumers():
    offers = [offer(f"o{i}", i % 8, i % 8 + 4, [(1, 0.0, 1.0 + i % 3)]) for i in range(24)]
    level1 = aggregate(offers, AggregationParams(max_offers=3, est_tolerance=2, id_prefix="l1"))
    level2 = aggregate(level1, AggregationParams(max_offers=None, est_tolerance=8, tf_tolerance=8, id_prefix="l2"))
    assert len(level2) < len(level1) < len(offers)
    by_id = {fo.id: fo for fo in offers}
    total = 0
    for top in level2:
        e = tuple(s.max for s in top.profiles[0].slices)
        leaves = disaggregate(top, Schedule(top.id, top.start_after, e), deep=True)
        assert all(k.startswith("o") for k in leaves)
        for oid, s in leaves.items():
            assert by_id[oid].check(s) == []
            assert s.energy == tuple(sl.max for sl in by_id[oid].profiles[0].slices)
        total += len(leaves)
        one_level = disaggregate(top, Schedule(top.id, top.start_after, e))
        assert all(k.startswith("l1") for k in one_level)
    assert total == len(offers)
