"""Offers and schedules read back inside ``already_checked`` (the report reading the agents' own
stores) are the objects the checked way builds, and skip only the rules: outside the block every
rule applies again."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from tests.strategies import offer_and_schedule
from vmenergy.flexoffer import TRANSITIONS, FlexOffer, FlexOfferError, Schedule, State
from vmenergy.flexoffer.checked import already_checked, is_checked
from vmenergy.store.codec import dumps, loads


@settings(max_examples=80, deadline=None)
@given(offer_and_schedule())
def test_an_offer_and_schedule_read_back_unchecked_equal_the_checked_ones(case):
    fo, schedule, _ = case
    if State.OFFERED in TRANSITIONS[fo.state]:  # a state other than the default, read back as a State
        fo = fo.with_state(State.OFFERED)
    text, stext = dumps(fo), dumps(schedule)
    with already_checked():
        fast, fast_s = loads(text), loads(stext)
    slow, slow_s = loads(text), loads(stext)
    assert fast == slow == fo and fast_s == slow_s == schedule
    assert type(fast.state) is State and fast.to_json() == slow.to_json()
    assert [type(p) for p in fast.profiles] == [type(p) for p in slow.profiles]


BAD_BASELINE = {"id": "x", "resolution": 900, "start_after": "2026-11-23T00:00:00Z",
                "profiles": [{"slices": [{"duration": 1, "min": 0.0, "max": 1.0}]}],
                "baseline": {"profile": 0, "energy": [5.0]}}


def test_the_rules_are_skipped_only_inside_the_block():
    with pytest.raises(FlexOfferError, match="baseline"):
        FlexOffer.from_dict(BAD_BASELINE)
    with already_checked():
        assert is_checked()
        FlexOffer.from_dict(BAD_BASELINE)  # not checked: only for what VME wrote itself
    assert not is_checked()
    with pytest.raises(FlexOfferError, match="baseline"):
        FlexOffer.from_dict(BAD_BASELINE)


def test_a_missing_field_still_raises_inside_the_block():
    doc = json.loads(json.dumps(BAD_BASELINE))
    del doc["profiles"]
    with already_checked(), pytest.raises(FlexOfferError, match="profiles"):
        FlexOffer.from_dict(doc)
    with already_checked(), pytest.raises(FlexOfferError):
        Schedule.from_dict({"offer_id": "x", "energy": [1.0]})
