"""Hypothesis properties of the model and codecs: exact round trips, columnar == scalar."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.strategies import offer_and_schedule, offers
from vmenergy.flexoffer import FlexOffer, FlexOfferSet, Schedule, ScheduleSet
from vmenergy.flexoffer.offerset import check
from vmenergy.wire import json as wjson
from vmenergy.wire import xml as wxml


@given(offers())
def test_json_round_trip_is_exact(fo):
    assert FlexOffer.from_json(fo.to_json()) == fo
    assert FlexOffer.from_dict(fo.to_dict()) == fo


@given(offers())
def test_xml_round_trip_is_exact(fo):
    text = wxml.to_xml(fo, op="update")
    op, back = wxml.read_flexoffer(wxml.parse_element(text))
    assert op == "update" and back == fo


@given(offers())
def test_json_and_xml_agree(fo):
    assert wxml.parse(wxml.to_xml(fo)) == wjson.parse_offer(fo.to_json())


@given(offer_and_schedule())
def test_schedule_round_trips(t):
    fo, s, now = t
    assert Schedule.from_json(s.to_json()) == s
    assert wxml.parse(wxml.to_xml(s)) == s
    assert fo.is_feasible(s, now)


@given(offer_and_schedule(), st.integers(0, 5), st.floats(-3, 3))
def test_perturbed_schedules_are_judged_like_the_bounds_say(t, which, delta):
    """Moving one slice's energy outside its bounds (by more than the tolerance) is always caught
    and named."""
    fo, s, now = t
    i = which % len(s.energy)
    sl = fo.profiles[s.profile].slices[i]
    e = list(s.energy)
    e[i] = sl.max + 1e-3 + abs(delta) if delta >= 0 else sl.min - 1e-3 - abs(delta)
    bad = Schedule(s.offer_id, s.start, tuple(e), s.schedule_id, s.update_id, s.profile, s.resolution)
    assert f"energy[{i}]" in [v.field for v in fo.check(bad, now)]


@given(st.lists(offers(), min_size=1, max_size=8))
def test_offerset_round_trip_is_lossless(items):
    fs = FlexOfferSet.from_offers(items)
    assert fs.to_offers() == items
    assert len(fs) == len(items)
    assert int(fs.slice_count.sum()) == sum(p.n_slices for fo in items for p in fo.profiles)
    rows = np.arange(len(items))[::-1]
    assert fs.take(rows).to_offers() == [items[i] for i in rows]
    assert FlexOfferSet.concat([fs, fs.take(rows[:1])]).to_offers() == items + [items[rows[0]]]


@given(st.lists(offer_and_schedule(), min_size=1, max_size=10), st.lists(st.integers(0, 8), max_size=10), st.data())
def test_vectorised_check_equals_scalar_check(pairs, breakers, data):
    """Build feasible schedules, break some of them in various ways, and compare the columnar
    verdict with FlexOffer.check for every schedule."""
    ids = [fo.id for fo, _, _ in pairs]
    assume(len(set(ids)) == len(ids))
    offers_ = [fo for fo, _, _ in pairs]
    now = pairs[0][2]
    schedules = []
    for k, (fo, s, _) in enumerate(pairs):
        kind = breakers[k] if k < len(breakers) else 0
        e = list(s.energy)
        start, profile = s.start, s.profile
        if kind == 1:
            start = fo.latest_start(now, profile) + 1
        elif kind == 2:
            start = fo.earliest_start(now, profile) - 1
        elif kind == 3:
            e = e + [0.0]
        elif kind == 4:
            e[0] += data.draw(st.floats(-5, 5))
        elif kind == 5:
            profile = len(fo.profiles)
        elif kind == 6:
            e = [x + data.draw(st.floats(-1, 1)) for x in e]
        schedules.append(Schedule(s.offer_id, start, tuple(e), s.schedule_id, 0, min(profile, 15), s.resolution))
    fs = FlexOfferSet.from_offers(offers_)
    ss = ScheduleSet.from_schedules(schedules, fs)
    result = check(fs, ss, now=now)
    for k, (fo, s) in enumerate(zip(offers_, schedules)):
        scalar = fo.is_feasible(s, now)
        assert bool(result.feasible[k]) == scalar, (k, fo.check(s, now), result.violated(k))
