"""Scale runs (``make bench`` only): soundness on a million offers and on a large mixed set.

No timings here (bench/bench_aggregation.py measures those); these check that what holds on small
random sets still holds at scale: nothing excluded that should not be, every member schedule
feasible for its own offer (the columnar check, with the same rules as FlexOffer.check), member
sums equal to the aggregate schedules, and the flexibility-aware method losing less time
flexibility than start alignment with the same number of aggregates.
"""

from __future__ import annotations

import numpy as np
import pytest

from vmenergy.aggregation import AggregationParams, aggregate, disaggregate_many, flexibility_loss
from vmenergy.flexoffer import TOLERANCE, FlexOfferSet, Schedule
from vmenergy.flexoffer.builders import battery_profile

T0 = 1_994_800


def consumption_offers(n: int, seed: int, totals: bool = False) -> FlexOfferSet:
    rng = np.random.default_rng(seed)
    counts = rng.integers(4, 33, n)
    total = int(counts.sum())
    lo = rng.uniform(0.0, 1.0, total)
    hi = lo + rng.uniform(0.0, 1.0, total)
    sa = T0 + rng.integers(0, 96, n)
    kw = {}
    if totals:
        offsets = np.concatenate(([0], np.cumsum(counts)))
        smin, smax = np.add.reduceat(lo, offsets[:-1]), np.add.reduceat(hi, offsets[:-1])
        has = rng.random(n) < 1 / 3
        kw = dict(total_min=np.where(has, smin + 0.4 * (smax - smin), -np.inf),
                  total_max=np.where(has, smin + 0.6 * (smax - smin), np.inf))
    return FlexOfferSet.from_arrays(ids=[f"fo-{seed}-{i}" for i in range(n)], start_after=sa,
                                    start_before=sa + rng.integers(0, 33, n), slice_count=counts, min=lo, max=hi, **kw)


def random_schedules(aggs, seed: int) -> list[Schedule]:
    rng = np.random.default_rng(seed)
    out = []
    for a in aggs:
        sl = a.profiles[0].slices
        e = [s.min + rng.random() * (s.max - s.min) for s in sl]
        out.append(Schedule(a.id, int(rng.integers(a.start_after, a.start_before + 1)), e, resolution=a.resolution))
    return out


def check_sound(aggs, scheds, n_members: int, now=None) -> None:
    parts = disaggregate_many(aggs, scheds, now=now)
    assert len(parts) == n_members
    for result in parts.check(now):
        assert result.n_feasible == len(result.flags), result.counts()
    # member sums per aggregate slice, from the member schedules and the aggregates' slices alone
    by_id = {a.id: (a, s) for a, s in zip(aggs, scheds)}
    for offers, ss in parts.parts:
        starts = {}
        for a in aggs:
            for r in a.run.member_rows(a.position).tolist():
                starts[r] = a.id
        sums = {a.id: np.zeros(len(a.profiles[0].slices)) for a in aggs}
        edges = {a.id: np.cumsum([0] + [s.duration for s in a.profiles[0].slices]) for a in aggs}
        for k in range(len(ss)):
            r = int(ss.offer_index[k])
            a, s = by_id[starts[r]]
            j = int(ss.profile[k])
            p = offers.profile_offsets[r] + j
            durs = offers.duration[offers.slice_offsets[p]:offers.slice_offsets[p + 1]]
            t = int(ss.start[k]) - s.start + np.concatenate(([0], np.cumsum(durs)[:-1]))
            idx = np.searchsorted(edges[a.id], t, side="right") - 1
            np.add.at(sums[a.id], idx, ss.energy[ss.energy_offsets[k]:ss.energy_offsets[k + 1]])
        for a, s in zip(aggs, scheds):
            assert np.max(np.abs(sums[a.id] - np.asarray(s.energy))) <= TOLERANCE


@pytest.mark.slow
def test_a_million_offers_aggregate_and_disaggregate_soundly_and_flex_aware_loses_less():
    offers = consumption_offers(1_000_000, seed=1)
    losses = {}
    for method in ("start", "flex"):
        res = aggregate(offers, AggregationParams(method=method, est_tolerance=4, tf_tolerance=4, max_offers=1000))
        assert not res.excluded and sum(a.n_members for a in res) == len(offers)
        assert all(a.n_members <= 1000 for a in res)
        scheds = random_schedules(res, seed=2)
        parts = disaggregate_many(res, scheds)
        assert len(parts) == len(offers)
        assert all(r.n_feasible == len(r.flags) for r in parts.check())
        losses[method] = flexibility_loss(res)
    assert losses["flex"].n_aggregates == losses["start"].n_aggregates
    assert losses["flex"].time_loss < losses["start"].time_loss
    assert abs(losses["flex"].energy_loss) <= 1e-6 * losses["flex"].energy_before  # boxes sum exactly


@pytest.mark.slow
def test_a_large_mixed_set_with_constraints_stays_sound():
    from vmenergy.flexoffer import FlexOffer, Profile, Slice, TotalEnergy

    base = consumption_offers(20_000, seed=3, totals=True)
    extra = []
    for i in range(300):  # batteries (polytopes), two-mode offers (XOR), implicit windows
        sa = T0 + i % 96
        extra.append(FlexOffer(id=f"bat-{i}", profiles=(battery_profile(8, capacity=10.0, soc=5.0, charge=2.5,
                                                                         discharge=2.5),),
                               start_after=sa, start_before=sa + i % 9))
        extra.append(FlexOffer(id=f"xor-{i}", profiles=(
            Profile((Slice(1, 0.5, 1.5), Slice(2, 0.0, 2.0)), total=TotalEnergy(1.0, 3.0)),
            Profile((Slice(1, 0.0, 3.0, (0.0, 3.0)),), start_after=sa + 1, start_before=sa + 4)),
            start_after=sa, start_before=sa + 8))
        extra.append(FlexOffer(id=f"imp-{i}", profiles=(Profile((Slice(1, 0.0, 1.0),) * (1 + i % 5)),),
                               start_before_duration=i % 12))
    offers = FlexOfferSet.concat([base, FlexOfferSet.from_offers(extra)])
    now = T0 + 10
    res = aggregate(offers, AggregationParams(max_offers=200, now=now, mix_directions=True))
    members = sum(a.n_members for a in res)
    assert members + len(res.excluded) == len(offers)
    assert all("ended before now" in r for r in res.excluded.values())  # only windows already past
    scheds = random_schedules(res, seed=4)
    check_sound(res, scheds, members, now=now)
