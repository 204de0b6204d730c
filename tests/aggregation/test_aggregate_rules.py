"""Hand-computed cases for every aggregation rule: alignment, slice merging, grouping, bins,
the two methods, and the input errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.aggregation.helpers import bounds, offer, prof
from vmenergy.aggregation import AggregatedFlexOffer, AggregationParams, aggregate
from vmenergy.flexoffer import FlexOffer, FlexOfferError, FlexOfferSet, State

WIDE = dict(est_tolerance=4, tf_tolerance=8)


def test_start_alignment_sums_bounds_at_earliest_starts_and_keeps_the_smallest_window():
    a = offer("a", 10, 14, [(1, 0.0, 1.0), (1, 1.0, 2.0)])
    b = offer("b", 11, 13, [(1, 0.5, 0.5), (1, 0.0, 3.0), (1, 2.0, 2.0)])
    [agg] = aggregate([a, b], AggregationParams(method="start", **WIDE))
    assert isinstance(agg, AggregatedFlexOffer) and isinstance(agg, FlexOffer)
    assert (agg.start_after, agg.start_before) == (10, 12)  # est 10, tf = min(4, 2)
    assert bounds(agg) == [(1, 0.0, 1.0), (1, 1.5, 2.5), (1, 0.0, 3.0), (1, 2.0, 2.0)]
    assert [(m.offer_id, m.offset) for m in agg.members] == [("a", 0), ("b", 1)]
    assert agg.id == "agg-900-c-8-0-0"  # est column 2 (starts at 8), tf row 0, bin 0
    assert agg.n_members == 2 and agg.member_ids == ["a", "b"]


def test_slice_boundaries_inside_a_member_slice_are_merged():
    a = offer("a", 0, 0, [(2, 0.0, 2.0), (1, 1.0, 1.0)])
    b = offer("b", 1, 1, [(1, 0.0, 1.0), (1, 0.0, 1.0), (1, 0.0, 1.0)])
    [agg] = aggregate([a, b], AggregationParams(**WIDE))
    # a's first slice covers intervals 0-1, so intervals 0 and 1 become one aggregate slice
    assert bounds(agg) == [(2, 0.0, 3.0), (1, 1.0, 2.0), (1, 0.0, 1.0)]


def test_intervals_no_member_covers_are_zero_slices():
    a = offer("a", 0, 1, [(1, 1.0, 2.0)])
    b = offer("b", 3, 4, [(1, 0.0, 1.0)])
    [agg] = aggregate([a, b], AggregationParams(**WIDE))
    assert bounds(agg) == [(1, 1.0, 2.0), (1, 0.0, 0.0), (1, 0.0, 0.0), (1, 0.0, 1.0)]


def test_grid_cells_by_earliest_start_and_time_flexibility():
    offers = [offer("a", 0, 1), offer("b", 3, 4), offer("c", 4, 5), offer("d", 0, 9)]
    aggs = aggregate(offers, AggregationParams(est_tolerance=4, tf_tolerance=4))
    groups = sorted(sorted(a.member_ids) for a in aggs)
    assert groups == [["a", "b"], ["c"], ["d"]]  # c: next est column; d: tf 9 in another row


def test_directions_resolutions_and_keys_never_share_an_aggregate():
    cons = offer("cons", 0, 2, [(1, 0.0, 1.0)])
    prod = offer("prod", 0, 2, [(1, -1.0, 0.0)])
    mixed = offer("mixed", 0, 2, [(1, -1.0, 1.0)])
    hourly = dataclasses.replace(offer("hourly", 0, 2), resolution=3600)
    aggs = aggregate([cons, prod, mixed, hourly], AggregationParams(**WIDE))
    assert sorted(a.member_ids[0] for a in aggs) == ["cons", "hourly", "mixed", "prod"]
    assert {a.id for a in aggs} == {"agg-900-c-0-0-0", "agg-900-p-0-0-0", "agg-900-m-0-0-0", "agg-3600-c-0-0-0"}
    aggs = aggregate([cons, prod, mixed], AggregationParams(mix_directions=True, **WIDE))
    assert len(aggs) == 1 and bounds(aggs[0]) == [(1, -2.0, 2.0)] and aggs[0].id == "agg-900-all-0-0-0"
    keyed = aggregate([cons, prod], AggregationParams(mix_directions=True, **WIDE), keys={"cons": "cp1", "prod": "cp2"})
    assert len(keyed) == 2 and all("-k" in a.id for a in keyed)
    same = aggregate([cons, prod], AggregationParams(mix_directions=True, **WIDE), keys=["cp1", "cp1"])
    assert len(same) == 1


def test_bins_are_the_fewest_equal_runs_under_max_offers():
    offers = [offer(f"o{i}", 0, 0) for i in range(5)]
    aggs = aggregate(offers, AggregationParams(max_offers=2, **WIDE))
    assert [a.member_ids for a in aggs] == [["o0", "o1"], ["o2", "o3"], ["o4"]]
    assert [a.id[-2:] for a in aggs] == ["-0", "-1", "-2"]


def test_flexibility_aware_bins_hold_equal_time_flexibility():
    tfs = [4, 0, 4, 0]
    offers = [offer(f"o{i}", 0, tf) for i, tf in enumerate(tfs)]
    start = aggregate(offers, AggregationParams(method="start", max_offers=2, **WIDE))
    flex = aggregate(offers, AggregationParams(method="flex", max_offers=2, **WIDE))
    assert [a.member_ids for a in start] == [["o0", "o1"], ["o2", "o3"]]
    assert [a.start_before - a.start_after for a in start] == [0, 0]  # every bin has a tf-0 member
    assert [sorted(a.member_ids) for a in flex] == [["o1", "o3"], ["o0", "o2"]]
    assert [a.start_before - a.start_after for a in flex] == [0, 4]
    assert len(start) == len(flex)  # equal compression


def test_without_bin_bounds_both_methods_give_the_same_aggregates():
    offers = [offer(f"o{i}", i % 3, i % 3 + (7 * i) % 5, [(1, 0.1 * i, 0.2 * i + 1)]) for i in range(9)]
    p = dict(max_offers=None, est_tolerance=4, tf_tolerance=4)
    a = aggregate(offers, AggregationParams(method="start", **p))
    b = aggregate(offers, AggregationParams(method="flex", **p))
    assert [(x.id, x.profiles, x.start_after, x.start_before) for x in a] == [
        (x.id, x.profiles, x.start_after, x.start_before) for x in b]


def test_max_length_splits_bins_and_excludes_offers_longer_than_an_aggregate():
    a = offer("a", 0, 0, [(1, 0.0, 1.0)] * 3)
    b = offer("b", 3, 3, [(1, 0.0, 1.0)] * 3)
    long = offer("long", 0, 0, [(1, 0.0, 1.0)] * 5)
    res = aggregate([a, b, long], AggregationParams(max_length=4, **WIDE))
    assert sorted(x.member_ids[0] for x in res) == ["a", "b"]  # together they would span 6
    assert all(len(x.member_ids) == 1 for x in res)
    assert "max_length" in res.excluded["long"]


def test_max_energy_bounds_each_bin_and_excludes_offers_bigger_than_it():
    offers = [offer(f"o{i}", 0, 0, [(1, 0.0, 6.0)]) for i in range(3)] + [offer("big", 0, 0, [(1, 0.0, 11.0)])]
    res = aggregate(offers, AggregationParams(max_energy=10.0, **WIDE))
    assert [x.member_ids for x in res] == [["o0"], ["o1"], ["o2"]]  # 2 bins by energy, re-packed to 3
    assert all(x.profiles[0].slices[0].max <= 10.0 for x in res)
    assert "max_energy" in res.excluded["big"]


def test_totals_shrink_every_slice_by_the_same_fraction():
    both = offer("both", 0, 0, profiles=[prof([(1, 0.0, 2.0), (1, 0.0, 2.0)], total=(3.0, 3.5))])
    [agg] = aggregate([both], AggregationParams(**WIDE))
    # sum of minima 0, width 4: alpha = 3/4, beta = 3.5/4
    assert bounds(agg) == [(1, 1.5, 1.75), (1, 1.5, 1.75)]
    low = offer("low", 0, 0, profiles=[prof([(1, 0.0, 2.0), (1, 0.0, 2.0)], total=(1.0, None))])
    [agg] = aggregate([low], AggregationParams(**WIDE))
    assert bounds(agg) == [(1, 0.5, 2.0), (1, 0.5, 2.0)]
    res = aggregate([both], AggregationParams(constrained="exclude", **WIDE))
    assert len(res) == 0 and "total-energy" in res.excluded["both"]


def test_polytope_members_get_the_widest_box_inside_their_polytope():
    # a battery: |x0 + x1| <= 1 (state of charge), slices in [-1, 1]
    bat = offer("bat", 0, 0, profiles=[prof([(1, -1.0, 1.0), (1, -1.0, 1.0)],
                                            polytope=(((1.0, 1.0), (-1.0, -1.0)), (1.0, 1.0)))])
    [agg] = aggregate([bat], AggregationParams(**WIDE))
    (lo0, hi0), (lo1, hi1) = [(s.min, s.max) for s in agg.profiles[0].slices]
    assert hi0 + hi1 <= 1.0 and -(lo0 + lo1) <= 1.0  # every corner of the box is feasible
    assert (hi0 - lo0) + (hi1 - lo1) == pytest.approx(2.0, abs=1e-6)  # the most a box can keep
    res = aggregate([bat], AggregationParams(constrained="exclude", **WIDE))
    assert "polytope" in res.excluded["bat"]


def test_discrete_slices_are_pinned_to_an_allowed_value():
    kettle = offer("kettle", 0, 2, profiles=[prof([(1, 0.0, 2.0, (0.0, 0.5, 2.0)), (1, 0.0, 1.0)])])
    [agg] = aggregate([kettle], AggregationParams(**WIDE))
    assert bounds(agg) == [(1, 0.5, 0.5), (1, 0.0, 1.0)]  # nearest the slice middle (1.0)
    from vmenergy.flexoffer import Baseline

    with_base = dataclasses.replace(kettle, baseline=Baseline((2.0, 0.5)))
    [agg] = aggregate([with_base], AggregationParams(**WIDE))
    assert bounds(agg)[0] == (1, 2.0, 2.0)  # the baseline's value is preferred
    res = aggregate([kettle], AggregationParams(discrete="exclude", **WIDE))
    assert "discrete" in res.excluded["kettle"]


def test_discrete_values_that_cannot_meet_the_total_are_excluded_with_a_reason():
    odd = offer("odd", 0, 0, profiles=[prof([(1, 0.0, 2.0, (0.0, 2.0)), (1, 0.0, 2.0, (0.0, 2.0))], total=(1.0, 1.0))])
    res = aggregate([odd], AggregationParams(**WIDE))
    assert len(res) == 0 and "discrete" in res.excluded["odd"]


def test_xor_offers_are_aggregated_with_one_profile_or_excluded():
    two = offer("two", 0, 4, profiles=[prof([(1, 0.0, 1.0)]), prof([(1, 0.0, 3.0)])])
    [agg] = aggregate([two], AggregationParams(**WIDE))
    assert bounds(agg) == [(1, 0.0, 3.0)] and agg.members[0].profile == 1  # most flexible
    [agg] = aggregate([two], AggregationParams(xor="first", **WIDE))
    assert bounds(agg) == [(1, 0.0, 1.0)] and agg.members[0].profile == 0
    res = aggregate([two], AggregationParams(xor="exclude", **WIDE))
    assert "exclusive-OR" in res.excluded["two"]
    # a profile with its own, wider window wins on time flexibility
    modes = offer("modes", 0, 8, profiles=[prof([(1, 0.0, 2.0)], start_after=0, start_before=0),
                                           prof([(1, 0.0, 1.0)], start_after=2, start_before=8)])
    [agg] = aggregate([modes], AggregationParams(est_tolerance=4, tf_tolerance=8))
    assert agg.members[0].profile == 1 and (agg.start_after, agg.start_before) == (2, 8)


def test_implicit_windows_need_now_and_past_starts_are_trimmed():
    implicit = offer("imp", None, None, start_before_duration=5)
    res = aggregate([implicit], AggregationParams(**WIDE))
    assert len(res) == 0 and "now" in res.excluded["imp"]
    [agg] = aggregate([implicit], AggregationParams(now=100, **WIDE))
    assert (agg.start_after, agg.start_before) == (100, 105)
    [agg] = aggregate([offer("late", 95, 105)], AggregationParams(now=100, **WIDE))
    assert (agg.start_after, agg.start_before) == (100, 105)
    res = aggregate([offer("gone", 90, 99)], AggregationParams(now=100, **WIDE))
    assert "ended" in res.excluded["gone"]


def test_now_is_converted_to_each_offers_own_resolution():
    hourly = offer("h", None, None, resolution=3600, start_before_duration=2)
    quarter = offer("q", None, None, start_before_duration=2)
    res = aggregate([hourly, quarter], AggregationParams(now=401, **WIDE))  # 401 x 900 s = 100.25 h
    by_res = {a.resolution: a for a in res}
    assert (by_res[900].start_after, by_res[900].start_before) == (401, 403)
    assert (by_res[3600].start_after, by_res[3600].start_before) == (101, 103)  # first hour not before now
    assert AggregationParams(now=401).now_at(3600) == 101 and AggregationParams(now=400).now_at(3600) == 100
    late = offer("late", 99, 100, resolution=3600)
    assert "ended" in aggregate([late], AggregationParams(now=401)).excluded["late"]


def test_only_open_states_are_aggregated():
    offers = [offer("acc", 0, 0, state=State.ACCEPTED), offer("rej", 0, 0, state=State.REJECTED),
              offer("asg", 0, 0, state=State.ASSIGNED)]
    res = aggregate(offers, AggregationParams(**WIDE))
    assert res[0].member_ids == ["acc"]
    assert set(res.excluded) == {"rej", "asg"} and "rejected" in res.excluded["rej"]
    with pytest.raises(FlexOfferError) as e:
        aggregate(offers, AggregationParams(strict=True, **WIDE))
    assert e.value.path == "[1].state"


def test_deadlines_are_the_earliest_member_deadlines_and_before_the_latest_start():
    a = offer("a", 10, 20, acceptance_before=10 * 900 - 600, assignment_before=10 * 900 - 300)
    b = offer("b", 11, 20, acceptance_before=11 * 900 - 2000, assignment_before=20 * 900)
    [agg] = aggregate([a, b], AggregationParams(est_tolerance=4, tf_tolerance=16))
    assert agg.acceptance_before == 11 * 900 - 2000
    assert agg.assignment_before == 10 * 900 - 300


def test_a_flexofferset_and_a_list_give_the_same_aggregates():
    offers = [offer(f"o{i}", i, i + i % 4, [(1, 0.1 * i, 1.0 + 0.1 * i), (2, 0.0, 1.0)]) for i in range(12)]
    p = AggregationParams(max_offers=3)
    a = aggregate(offers, p)
    b = aggregate(FlexOfferSet.from_offers(offers), p)
    assert [(x.id, x.profiles, x.start_after, x.start_before, x.member_ids) for x in a] == [
        (x.id, x.profiles, x.start_after, x.start_before, x.member_ids) for x in b]
    assert a[0].member_offers()[0] is offers[int(a[0].member_ids[0][1:])]  # the given objects


def test_the_aggregate_is_a_flexoffer_on_the_wire_and_in_copies():
    [agg] = aggregate([offer("a", 0, 3, [(1, 0.0, 1.0)])], AggregationParams(issuer="agg1@vme.localhost"))
    plain = FlexOffer.from_json(agg.to_json())
    assert type(plain) is FlexOffer and plain == agg.plain()
    assert plain.issuer == "agg1@vme.localhost"
    offered = agg.with_state(State.OFFERED)
    assert isinstance(offered, AggregatedFlexOffer) and offered.member_ids == ["a"]
    assert offered.revised().version == 1
    assert hash(agg) == hash(dataclasses.replace(agg))


def test_empty_input_gives_no_aggregates():
    res = aggregate([], AggregationParams())
    assert list(res) == [] and res.excluded == {}


@pytest.mark.parametrize(
    "offers, keys, path",
    [
        ([offer("a", 0, 0), offer("a", 1, 1)], None, "[1].id"),
        ([offer("a", 0, 0), "not an offer"], None, "[1]"),
        (offer("a", 0, 0), None, "offers"),
        ([offer("a", 0, 0)], ["k1", "k2"], "keys"),
        ([offer("a", 0, 0)], "k", "keys"),
        ([offer("a", 0, 0)], [["unhashable"]], "keys"),
    ],
)
def test_bad_input_is_refused_with_a_path(offers, keys, path):
    with pytest.raises(FlexOfferError) as e:
        aggregate(offers, AggregationParams(), keys=keys)
    assert e.value.path == path and e.value.reason


def test_params_must_be_params():
    with pytest.raises(FlexOfferError) as e:
        aggregate([offer("a", 0, 0)], {"method": "start"})
    assert e.value.path == "params"


def test_the_caller_set_is_never_modified():
    fos = FlexOfferSet.from_offers([offer("t", 0, 0, profiles=[prof([(1, 0.0, 2.0)], total=(1.0, 1.0))])])
    before = fos.min.copy(), fos.max.copy()
    aggregate(fos)
    assert np.array_equal(fos.min, before[0]) and np.array_equal(fos.max, before[1])


def test_a_member_deadline_after_the_aggregates_latest_start_is_brought_forward():
    a = offer("a", 10, 20, assignment_before=20 * 900)
    b = offer("b", 10, 12)
    [agg] = aggregate([a, b], AggregationParams(est_tolerance=4, tf_tolerance=16))
    assert agg.start_before == 12 and agg.assignment_before == 12 * 900


def test_sums_beyond_the_models_energy_limit_are_refused():
    huge = [offer(f"o{i}", 0, 0, [(1, 0.0, 9e11)]) for i in range(3)]
    with pytest.raises(FlexOfferError) as e:
        aggregate(huge, AggregationParams())
    assert e.value.path.startswith("aggregate") and "out of range" in e.value.reason
    assert len(aggregate(huge, AggregationParams(max_energy=9.5e11))) == 3  # a bound keeps bins legal
