"""Placing schedules and defaults in time, from objects and from columnar sets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmenergy.flexoffer import FlexOfferSet, Schedule, ScheduleSet
from vmenergy.settlement import OfferFlag, SettlementError, assignments_from_offers, assignments_from_sets

from ..strategies import offer_and_schedule
from .helpers import DAY0, meter, offer


def test_slices_are_placed_with_their_durations_and_the_default_at_the_earliest_start():
    fo = offer("o", "h1", [(1, 0.0, 1.0), (3, 0.0, 6.0)], DAY0 + 2, DAY0 + 5)  # no default
    m = meter([[0.0] * 8, [0.0] * 8])
    asg = assignments_from_offers([fo], [Schedule(offer_id="o", start=DAY0 + 4, energy=(1.0, 3.0))], m)
    assert asg.prosumer.tolist() == [1]
    assert asg.offer_offsets.tolist() == [0, 0, 1] and asg.slice_offsets.tolist() == [0, 0, 4]
    # schedule slices at t4 (1 interval) and t5 (3 intervals); the default runs them from t2
    assert asg.t0.tolist() == [DAY0 + 4, DAY0 + 5, DAY0 + 2, DAY0 + 3]
    assert asg.sign.tolist() == [1, 1, -1, -1] and asg.duration.tolist() == [1, 3, 1, 3]
    assert asg.default_start.tolist() == [DAY0 + 2]
    assert asg.time_flexibility.tolist() == [3] and asg.energy_flexibility.tolist() == [7.0]
    assert asg.flexible_energy.tolist() == [4.0] and asg.activated.tolist() == [True]
    assert asg.flags[0] & OfferFlag.NO_DEFAULT and asg.flags[0] & OfferFlag.NO_PRICES
    assert not asg.flags[0] & OfferFlag.INFEASIBLE


def test_schedule_equal_to_the_default_is_not_an_activation_and_the_latest_update_binds():
    fo = offer("o", "h0", [(1, 0.0, 2.0)], DAY0, DAY0 + 3, default=[1.0], default_start=DAY0 + 1)
    m = meter([[0.0] * 4])
    first = Schedule(offer_id="o", start=DAY0 + 3, energy=(2.0,), update_id=0)
    again = Schedule(offer_id="o", start=DAY0 + 1, energy=(1.0,), update_id=1)
    asg = assignments_from_offers([fo], [again, first], m)
    assert asg.start.tolist() == [DAY0 + 1] and asg.activated.tolist() == [False]
    with pytest.raises(SettlementError) as e:
        assignments_from_offers([fo], [first, Schedule(offer_id="o", start=DAY0, energy=(0.0,))], m)
    assert e.value.path == "schedules[1].update_id"


@pytest.mark.parametrize(
    "schedule, path, reason",
    [
        (Schedule(offer_id="x", start=DAY0, energy=(1.0,)), "schedules[0].offer_id", "no offer 'x'"),
        (Schedule(offer_id="o", start=DAY0, energy=(1.0, 1.0)), "schedules[0].energy", "cannot be placed"),
        (Schedule(offer_id="o", start=DAY0, energy=(1.0,), profile=1), "schedules[0].profile", "no profile 1"),
        (Schedule(offer_id="o", start=DAY0, energy=(1.0,), resolution=3600), "schedules[0].resolution", "900 s"),
    ],
)
def test_schedules_that_cannot_be_placed_are_errors(schedule, path, reason):
    fo = offer("o", "h0", [(1, 0.0, 2.0)], DAY0, DAY0 + 3)
    with pytest.raises(SettlementError) as e:
        assignments_from_offers([fo], [schedule], meter([[0.0] * 4]))
    assert e.value.path == path and reason in e.value.reason


def test_offer_of_a_prosumer_without_metering_is_an_error():
    fo = offer("o", "ghost", [(1, 0.0, 2.0)], DAY0, DAY0 + 3)
    with pytest.raises(SettlementError) as e:
        assignments_from_offers([fo], [Schedule(offer_id="o", start=DAY0, energy=(1.0,))], meter([[0.0] * 4]))
    assert e.value.path == "offers[0].issuer" and "row of NaN" in e.value.reason


@st.composite
def offer_batches(draw):
    items = draw(st.lists(offer_and_schedule(allow_polytope=False).filter(lambda t: t[0].resolution == 900),
                          min_size=1, max_size=4,
                          unique_by=lambda t: t[0].id))
    return [fo for fo, _, _ in items], [s for _, s, _ in items]


@settings(max_examples=30)
@given(offer_batches(), st.integers(1, 3))
def test_columnar_builder_equals_object_builder(batch, n_prosumers):
    offers, schedules = batch
    m = meter([[0.0] * 4] * n_prosumers)
    rows = [k % n_prosumers for k in range(len(offers))]
    by_objects = assignments_from_offers(offers, schedules, m,
                                         prosumer_of={fo.id: f"h{r}" for fo, r in zip(offers, rows)})
    fs = FlexOfferSet.from_offers(offers)
    by_sets = assignments_from_sets(fs, ScheduleSet.from_schedules(schedules, fs), m, prosumer=np.array(rows))
    for name in ("offer_ids", "prosumer", "start", "default_start", "time_flexibility", "activated", "priced",
                 "flags", "owner", "sign", "t0", "duration", "offer_offsets", "slice_offsets"):
        np.testing.assert_array_equal(getattr(by_sets, name), getattr(by_objects, name), err_msg=name)
    for name in ("energy_flexibility", "flexible_energy", "energy", "price_up", "price_down"):
        np.testing.assert_allclose(getattr(by_sets, name), getattr(by_objects, name), rtol=1e-12, atol=1e-9,
                                   err_msg=name)


def test_columnar_builder_keeps_the_latest_update_and_takes_columns():
    fs = FlexOfferSet.from_arrays(ids=["a", "b"], start_after=np.array([DAY0, DAY0]),
                                  start_before=np.array([DAY0 + 2, DAY0 + 2]), slice_count=np.array([1, 1]),
                                  min=np.array([0.0, 0.0]), max=np.array([2.0, 2.0]), issuers=["h0", "h0"])
    ss = ScheduleSet.from_arrays(offer_index=np.array([0, 1, 0]), start=np.array([DAY0, DAY0 + 1, DAY0 + 2]),
                                 energy_offsets=np.array([0, 1, 2, 3]), energy=np.array([1.0, 2.0, 0.5]))
    ss.update_ids = np.array([0, 0, 3])
    m = meter([[0.0] * 4])
    # columns are aligned with the schedule set given (three schedules, the first one superseded)
    asg = assignments_from_sets(fs, ss, m, default_start=np.array([DAY0 + 1, DAY0, DAY0]),
                                default_energy=np.array([9.0, 2.0, 1.0]), price_up=np.array([9.0, 0.2, 0.1]),
                                price_down=np.array([9.0, 0.0, 0.05]))
    # schedule 0 (a, update 0) is replaced by schedule 2 (a, update 3); offers stay in schedule order
    assert asg.offer_ids.tolist() == ["b", "a"]
    assert asg.start.tolist() == [DAY0 + 1, DAY0 + 2]
    assert asg.default_start.tolist() == [DAY0, DAY0]
    assert asg.energy.tolist() == [2.0, 2.0, 0.5, 1.0]  # per offer: schedule slice, then default slice
    assert asg.priced.all() and asg.price_up.tolist() == [0.2, 0.2, 0.1, 0.1]
    assert asg.activated.tolist() == [True, True]
    ss.update_ids = np.array([0, 0, 0])
    with pytest.raises(SettlementError) as e:
        assignments_from_sets(fs, ss, m)
    assert e.value.path == "schedules[2].update_id"
    bad = ScheduleSet.from_arrays(offer_index=np.array([0]), start=np.array([DAY0]),
                                  energy_offsets=np.array([0, 2]), energy=np.array([1.0, 1.0]))
    with pytest.raises(SettlementError) as e:
        assignments_from_sets(fs, bad, m)
    assert e.value.path == "schedules[0].energy"
