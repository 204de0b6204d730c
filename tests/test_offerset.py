"""FlexOfferSet / ScheduleSet: columnar construction, validation, selection and the bulk check."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import EXAMPLES
from vmenergy.flexoffer import FlexOffer, FlexOfferError, FlexOfferSet, Schedule, ScheduleSet
from vmenergy.flexoffer.offerset import NA, check


def small_set(**overrides) -> FlexOfferSet:
    kw = dict(
        ids=["a", "b", "c"],
        start_after=np.array([10, 20, 30]),
        start_before=np.array([12, 20, 34]),
        slice_count=np.array([2, 1, 3]),
        min=np.array([0.0, 1.0, -1.0, 0.0, 0.0, 0.0]),
        max=np.array([1.0, 2.0, 0.0, 1.0, 1.0, 1.0]),
    )
    kw.update(overrides)
    return FlexOfferSet.from_arrays(**kw)


def test_from_arrays_matches_objects():
    fs = small_set(total_min=np.array([-np.inf, -1.0, 1.0]), total_max=np.array([np.inf, 0.0, 2.0]))
    offers = fs.to_offers()
    assert [o.id for o in offers] == ["a", "b", "c"]
    assert offers[0].profiles[0].slices[1].max == 2.0
    assert offers[1].profiles[0].total.min == -1.0 and offers[0].profiles[0].total is None
    assert FlexOfferSet.from_offers(offers).to_offers() == offers
    assert fs[1] == offers[1] and fs[-1] == offers[2]
    with pytest.raises(IndexError):
        fs[3]


@pytest.mark.parametrize(
    "overrides, path, why",
    [
        ({"min": np.array([0.0, 3.0, -1.0, 0.0, 0.0, 0.0])}, "[0].profiles[0].slices[1]", "min > max"),
        ({"max": np.array([1.0, 2.0, np.nan, 1.0, 1.0, 1.0])}, "[1].profiles[0].slices[0].max", "finite"),
        ({"start_before": np.array([12, 19, 34])}, "[1].start_before", "start_before before start_after"),
        ({"slice_count": np.array([2, 0, 4])}, "[1].profiles[0].slices", "at least one slice"),
        ({"ids": ["a", "", "c"]}, "[1].id", "required"),
        ({"total_min": np.array([5.0, -np.inf, -np.inf])}, "[0].profiles[0].total", "outside the sum"),
        ({"total_min": np.array([0.0, 0.0, 2.0]), "total_max": np.array([1.0, 0.0, 1.0])}, "[2].profiles[0].total",
         "min > max"),
        ({"duration": np.array([1, 1, 1, 0, 1, 1])}, "[2].profiles[0].slices[0].duration", ">= 1"),
    ],
)
def test_from_arrays_validation_names_the_offer(overrides, path, why):
    with pytest.raises(FlexOfferError) as info:
        small_set(**overrides)
    assert info.value.path == path and why in info.value.reason


def test_from_arrays_length_mismatch():
    with pytest.raises(FlexOfferError, match="sum\\(slice_count\\)"):
        small_set(min=np.zeros(5))


def test_padded_and_derived_columns():
    fs = small_set()
    mx = fs.padded("max")
    assert mx.shape == (3, 3)
    assert np.array_equal(mx[0, :2], [1.0, 2.0]) and np.isnan(mx[0, 2])
    assert np.array_equal(fs.padded("min", fill=0.0)[2], [0.0, 0.0, 0.0])
    assert list(fs.slice_count) == [2, 1, 3]
    assert list(fs.profile_duration) == [2, 1, 3]
    assert list(fs.offer_of_profile) == [0, 1, 2]
    assert list(fs.profile_of_slice) == [0, 0, 1, 2, 2, 2]
    assert fs.nbytes > 0


def test_take_and_concat_keep_sidecars():
    examples = [FlexOffer.from_json(p.read_text()) for p in sorted(EXAMPLES.glob("*.json")) if "schedule" not in p.name]
    fs = FlexOfferSet.from_offers(examples)
    assert fs.to_offers() == examples
    mask = np.array([o.prices is not None for o in examples])
    assert fs[mask].to_offers() == [o for o in examples if o.prices is not None]
    both = FlexOfferSet.concat([fs, fs[::2]])
    assert both.to_offers() == examples + examples[::2]
    assert FlexOfferSet.concat([]).to_offers() == []
    assert fs.has_scalar_constraints().sum() == sum(
        any(p.polytope is not None or any(s.values for s in p.slices) for p in o.profiles) for o in examples
    )


def test_bulk_check_flags_each_kind():
    fs = small_set(total_min=np.array([-np.inf, -np.inf, 0.5]), total_max=np.array([np.inf, np.inf, 2.5]))
    ss = ScheduleSet.from_arrays(
        offer_index=np.array([0, 0, 1, 2, 2, 5, 1]),
        start=np.array([11, 13, 20, 30, 31, 0, 20]),
        energy_offsets=np.array([0, 2, 4, 5, 8, 11, 12, 13]),
        energy=np.array([0.5, 1.5, 0.5, 1.5, -0.5, 1.0, 1.0, 1.0, 0.0, 0.0, 0.2, 0.0, 0.5]),
        profile=np.array([0, 0, 0, 0, 0, 0, 0]),
    )
    r = check(fs, ss)
    assert r.violated(0) == []
    assert r.violated(1) == ["start"]
    assert r.violated(2) == []
    assert r.violated(3) == ["total"]
    assert r.violated(4) == ["total"]
    assert r.violated(5) == ["offer_id"]
    assert r.violated(6) == ["energy[i]"]
    assert r.n_feasible == 2 and r.counts()["total"] == 2


def test_bulk_check_length_profile_resolution_and_implicit():
    fo = FlexOffer.from_json((EXAMPLES / "washer-implicit.json").read_text())
    dw = FlexOffer.from_json((EXAMPLES / "dishwasher-xor.json").read_text())
    fs = FlexOfferSet.from_offers([fo, dw])
    ok = Schedule(fo.id, 105, (0.9, 0.3, 0.5))
    cases = [
        ok,
        Schedule(fo.id, 113, (0.9, 0.3, 0.5)),  # now=100: latest 112
        Schedule(fo.id, 105, (0.9, 0.3)),
        Schedule(fo.id, 105, (0.9, 0.3, 0.5), profile=1),
        Schedule(fo.id, 105, (0.9, 0.3, 0.5), resolution=3600),
        Schedule(dw.id, dw.start_after, (0.4, 0.15, 0.3), profile=1),
        Schedule(dw.id, dw.start_after, (0.4, 0.15, 0.3), profile=0),
    ]
    ss = ScheduleSet.from_schedules(cases, fs)
    r = check(fs, ss, now=100)
    for k, s in enumerate(cases):
        owner = fo if s.offer_id == fo.id else dw
        assert bool(r.feasible[k]) == owner.is_feasible(s, now=100), k
    assert r.violated(2) == ["energy"] and r.violated(3) == ["profile"] and "resolution" in r.violated(4)
    # without now, the implicit offer's start cannot be judged
    r2 = check(fs, ScheduleSet.from_schedules([ok], fs))
    assert r2.violated(0) == ["start"]
    assert fs.start_after[0] == NA


def test_bulk_check_polytope_and_values_use_the_scalar_rules():
    bat = FlexOffer.from_json((EXAMPLES / "battery-dependency.json").read_text())
    kettle = FlexOffer.from_json(json.dumps({
        "id": "k", "start_after": "2026-11-22T07:00:00Z", "start_before": "2026-11-22T08:00:00Z",
        "profiles": [{"slices": [{"duration": 1, "min": 0.0, "max": 0.5, "values": [0.0, 0.5]}]}]}))
    fs = FlexOfferSet.from_offers([bat, kettle])
    cases = [
        Schedule(bat.id, bat.start_after, (1.25, 1.25, 1.25, 1.25, 0.0, -1.0, 0.0, 0.0)),  # soc 10 > 9.5
        Schedule(bat.id, bat.start_after, (1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
        Schedule("k", kettle.start_after, (0.25,)),
        Schedule("k", kettle.start_after, (0.5,)),
    ]
    r = check(fs, ScheduleSet.from_schedules(cases, fs))
    assert r.violated(0) == ["polytope"] and r.violated(1) == [] and r.violated(2) == ["energy[i] values"]
    assert r.violated(3) == []
    for k, s in enumerate(cases):
        owner = bat if s.offer_id == bat.id else kettle
        assert bool(r.feasible[k]) == owner.is_feasible(s)
