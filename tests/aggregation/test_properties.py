"""Property tests on random offer sets with every constraint kind.

- every aggregate is a valid flex-offer, respects the bin bounds, and its members partition the
  aggregated offers (the rest is excluded with a reason);
- random feasible schedules of each aggregate disaggregate into schedules feasible for each
  member's *own* offer, whose energies add up to the aggregate's, slice by slice, within
  TOLERANCE (the documented bound; members never cross an aggregate slice boundary);
- the columnar engine gives the same aggregates and member schedules as the pure-Python reference;
- aggregates of aggregates disaggregate down to feasible prosumer schedules.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.aggregation.strategies import NOW, aggregate_schedule, offer_lists, params
from vmenergy.aggregation import AggregationParams, aggregate, disaggregate, disaggregate_many
from tests.aggregation.reference import reference_aggregate, reference_disaggregate
from vmenergy.flexoffer import TOLERANCE, FlexOffer


def _members_sum(agg, schedule, parts, offers_by_id) -> list[float]:
    """Sum of member energies per aggregate slice, computed from the member schedules alone."""
    bounds = [0]
    for s in agg.profiles[0].slices:
        bounds.append(bounds[-1] + s.duration)
    terms: list[list[float]] = [[] for _ in agg.profiles[0].slices]
    for oid, part in parts.items():
        prof = offers_by_id[oid].profiles[part.profile]
        t = part.start - schedule.start
        for sl, e in zip(prof.slices, part.energy):
            k = max(i for i in range(len(bounds) - 1) if bounds[i] <= t)
            assert t + sl.duration <= bounds[k + 1], "a member slice crosses an aggregate slice boundary"
            terms[k].append(e)
            t += sl.duration
        assert t <= bounds[-1]
    return [math.fsum(x) for x in terms]


@given(offers=offer_lists(), p=params())
def test_aggregates_are_valid_offers_within_bounds_and_partition_the_members(offers, p):
    res = aggregate(offers, p)
    by_id = {fo.id: fo for fo in offers}
    seen: list[str] = []
    for agg in res:
        plain = agg.plain()
        assert isinstance(agg, FlexOffer)
        assert FlexOffer(**{f: getattr(plain, f) for f in FlexOffer.__dataclass_fields__}) == plain
        assert FlexOffer.from_json(agg.to_json()) == plain
        members = agg.members
        seen += [m.offer_id for m in members]
        assert p.max_offers is None or len(members) <= p.max_offers
        assert sum(s.duration for s in agg.profiles[0].slices) <= p.max_length
        if p.max_energy is not None:
            assert sum(max(abs(sum(m.lo)), abs(sum(m.hi))) for m in members) <= p.max_energy + 1e-9
        for m in members:
            fo = by_id[m.offer_id]
            # every start the aggregate allows is a start the member allows
            now = p.now_at(fo.resolution)
            assert fo.earliest_start(now, m.profile) <= agg.start_after + m.offset
            assert agg.start_before + m.offset <= fo.latest_start(now, m.profile)
            assert m.offset >= 0 and fo.resolution == agg.resolution
            if not p.mix_directions:
                lo = min(min(mm.lo) for mm in members)
                hi = max(max(mm.hi) for mm in members)
                assert lo >= 0 or hi <= 0 or all(min(mm.lo) < 0 < max(mm.hi) for mm in members)
    assert len(seen) == len(set(seen))
    assert set(seen) | set(res.excluded) == set(by_id) and not set(seen) & set(res.excluded)
    assert all(res.excluded[i] for i in res.excluded)


@given(offers=offer_lists(), p=params(), data=st.data())
def test_feasible_aggregate_schedules_disaggregate_into_feasible_member_schedules_that_sum(offers, p, data):
    res = aggregate(offers, p)
    by_id = {fo.id: fo for fo in offers}
    scheds = []
    for k, agg in enumerate(res):
        s = data.draw(aggregate_schedule(agg, f"s{k}"))
        scheds.append(s)
        assert agg.check(s) == []
        parts = disaggregate(agg, s, now=NOW)
        assert sorted(parts) == sorted(agg.member_ids)
        for oid, part in parts.items():
            now = p.now_at(part.resolution)
            assert by_id[oid].check(part, now) == [], (oid, by_id[oid].check(part, now))
            assert part.schedule_id == s.schedule_id
        sums = _members_sum(agg, s, parts, by_id)
        assert all(abs(a - b) <= TOLERANCE for a, b in zip(sums, s.energy)), (sums, s.energy)
    many = disaggregate_many(res, scheds, now=NOW)
    want = {}
    for agg, s in zip(res, scheds):
        want.update(disaggregate(agg, s, now=NOW))
    assert many.to_dict() == want
    assert all(r.n_feasible == len(r.flags) for r in many.check(NOW))  # NOW is at 900 s, the default


@given(offers=offer_lists(simple=True, max_size=20), method=st.sampled_from(["start", "flex"]),
       est=st.sampled_from([1, 4, 12]), tf=st.sampled_from([1, 4, 12]), cap=st.sampled_from([None, 1, 3]),
       mix=st.booleans(), data=st.data())
def test_the_engine_equals_the_pure_python_reference(offers, method, est, tf, cap, mix, data):
    p = AggregationParams(method=method, est_tolerance=est, tf_tolerance=tf, max_offers=cap, mix_directions=mix)
    res = aggregate(offers, p)
    ref = reference_aggregate(offers, p)
    assert [a.plain() for a in res] == [r.offer for r in ref]  # bit for bit
    assert [[(m.offer_id, m.offset) for m in a.members] for a in res] == [
        [(fo.id, off) for fo, off in r.members] for r in ref]
    for agg, r in zip(res, ref):
        s = data.draw(aggregate_schedule(agg))
        got = {k: (v.start, list(v.energy)) for k, v in disaggregate(agg, s).items()}
        assert got == reference_disaggregate(r, s.start, list(s.energy))


@settings(max_examples=40)
@given(offers=offer_lists(max_size=20), p1=params(), p2=params(), data=st.data())
def test_aggregates_of_aggregates_disaggregate_to_feasible_prosumer_schedules(offers, p1, p2, data):
    level1 = aggregate(offers, p1)
    level2 = aggregate(level1, AggregationParams(**{**p2.__dict__, "id_prefix": "top", "states": p1.states}))
    by_id = {fo.id: fo for fo in offers}
    below = {a.id: a for a in level1}
    for top in level2:
        s = data.draw(aggregate_schedule(top))
        leaves = disaggregate(top, s, now=NOW, deep=True)
        assert sorted(leaves) == sorted(i for l1 in top.member_ids for i in below[l1].member_ids)
        for oid, part in leaves.items():
            assert by_id[oid].check(part, p1.now_at(part.resolution)) == []
