"""Parts that many offers repeat are held once per process: a polytope's rows, a device model's
slices and rounded kWh (vmenergy/flexoffer/shared.py). Counted in objects, with the signs of
zero kept (equality takes -0.0 for 0.0; the wire must not)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmenergy.devices.fleet import DeviceFleet, FoaSettings
from vmenergy.devices.models import BaseLoad, HeatPump, HomeBattery, Washer
from vmenergy.flexoffer import Polytope, Slice
from vmenergy.flexoffer.parts import shared_slice
from vmenergy.flexoffer.shared import Pool, has_negative_zero
from vmenergy.flexoffer.timeutil import parse_utc

from .devices.helpers import context

START = parse_utc("2026-11-22T18:00:00Z", "-")
DAY = 86400


def _bits(x: float) -> str:
    return float(x).hex()  # tells -0.0 from 0.0


def test_a_pool_hands_back_the_object_it_holds_for_an_equal_value():
    pool = Pool(4)
    first = (1.5, 2.5)
    assert pool.share(first) is first
    assert pool.share(tuple([1.5, 2.5])) is first
    assert len(pool) == 1


def test_a_pool_with_a_key_merges_only_values_under_the_same_key():
    pool = Pool(4)
    zero, negative = (0.0,), (-0.0,)
    assert pool.share(zero) is zero
    assert pool.share(negative, b"negative") is negative  # equal to (0.0,), kept apart by its key
    assert pool.share((-0.0,), b"negative") is negative


def test_a_full_pool_starts_again_and_what_it_handed_out_stays_with_its_holders():
    pool = Pool(2)
    held = [pool.share((float(i),)) for i in range(3)]
    assert len(pool) == 1  # cleared when the third came
    assert [x[0] for x in held] == [0.0, 1.0, 2.0]


def test_a_pool_refuses_a_limit_that_is_not_a_positive_int():
    with pytest.raises(ValueError, match="Pool.limit"):
        Pool(0)


def test_negative_zero_is_found_and_positive_zero_is_not():
    assert has_negative_zero([1.0, -0.0])
    assert not has_negative_zero([0.0, -1.0])


def test_equal_rows_of_different_polytopes_are_one_tuple():
    A = np.array([[1.0, 2.0, 0.5], [0.25, 0.0, 1.0]])
    p = Polytope.of_arrays(A.copy(), np.array([3.0, 4.0]))
    q = Polytope.of_arrays(A.copy(), np.array([5.0, 6.0]))
    assert [id(r) for r in p.A] == [id(r) for r in q.A]


def test_a_row_with_a_negative_zero_is_not_merged_with_its_row_of_zeros():
    plus = Polytope.of_arrays(np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([1.0, 1.0]))
    minus = Polytope.of_arrays(np.array([[-0.0, 1.0], [2.0, 3.0]]), np.array([1.0, 1.0]))
    assert [_bits(x) for x in plus.A[0]] == ["0x0.0p+0", "0x1.0000000000000p+0"]
    assert [_bits(x) for x in minus.A[0]] == ["-0x0.0p+0", "0x1.0000000000000p+0"]
    again = Polytope.of_arrays(np.array([[-0.0, 1.0]]), np.array([1.0]))
    assert again.A[0] is minus.A[0]  # rows with a -0.0 are shared among rows of the same bits
    assert plus.A[1] is minus.A[1]


def test_equal_slices_are_one_object_and_a_negative_zero_slice_is_its_own():
    a, b = shared_slice(Slice(4, 0.123456789, 1.5)), shared_slice(Slice(4, 0.123456789, 1.5))
    assert a is b
    neg = shared_slice(Slice(1, -0.0, 0.0))
    assert _bits(neg.min) == "-0x0.0p+0"
    assert shared_slice(Slice(1, 0.0, 0.0)) is not neg


def test_a_fleets_day_of_offers_holds_each_distinct_row_slice_and_bound_once():
    # an FOA's ~2,700 daily offers repeated three rows in four and a third of their slices, each
    # its own object (bench/RESULTS.md, "A million devices")
    ctx = context()
    kinds = [(HeatPump, {}), (BaseLoad, {}), (HomeBattery, {}), (Washer, {})]
    devices = [cls(f"h{i}-{cls.kind}", cls.Params(**params), ctx, START // 900)
               for i in range(6) for cls, params in kinds]
    f = DeviceFleet(devices, ctx, FoaSettings(), start=START, until=START + 3 * DAY)
    offers = []
    now = START
    while now is not None and now < START + 2 * DAY:
        offers += [fo for _, fo in f.offers(now)]
        now = f.next_due(now)
    assert {fo.label for fo in offers} >= {"heat_pump", "base_load", "battery", "washer"}
    slices = [s for fo in offers for p in fo.profiles for s in p.slices]
    distinct = {(s.duration, _bits(s.min), _bits(s.max), s.values) for s in slices}
    assert len({id(s) for s in slices}) == len(distinct) < len(slices)
    rows = [r for fo in offers for p in fo.profiles if p.polytope is not None for r in p.polytope.A]
    assert len({id(r) for r in rows}) == len({tuple(map(_bits, r)) for r in rows}) < len(rows)
    # the slice bounds the models round to 9 decimals (every kind but the wet appliances, whose
    # programme steps keep their own rounding): one float object per value
    bounds = [x for fo in offers if fo.label != "washer" for p in fo.profiles for s in p.slices
              for x in (s.min, s.max) if x != 0]
    assert len({id(x) for x in bounds}) == len({_bits(x) for x in bounds})
    assert not any(math.copysign(1.0, x) < 0 for x in bounds if x == 0)


def test_a_slice_made_of_ints_holds_floats_so_sharing_it_with_its_float_twin_keeps_its_json():
    floats = shared_slice(Slice(2, 1.0, 3.0))
    ints = shared_slice(Slice(2, 1, 3))
    assert ints is floats and ints.to_dict() == Slice(2, 1, 3).to_dict()


def test_offers_read_from_json_share_their_equal_slices():
    from vmenergy.flexoffer import FlexOffer
    doc = {"id": "o1", "resolution": 900, "start_after": "2026-11-23T00:00:00Z",
           "profiles": [{"slices": [{"duration": 1, "min": 0.5, "max": 1.25}] * 3}]}
    a = FlexOffer.from_dict(doc)
    b = FlexOffer.from_dict({**doc, "id": "o2"})
    slices = [s for fo in (a, b) for s in fo.profiles[0].slices]
    assert len({id(s) for s in slices}) == 1
    assert a.to_json() == FlexOffer.from_json(a.to_json()).to_json()
