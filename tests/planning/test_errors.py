"""Bad planning input fails with a PlanningError that names the field and the reason."""

from __future__ import annotations

import pytest

from vmenergy.flexoffer import FlexOffer, FlexOfferError, Profile, Slice
from vmenergy.planning import CapacityLimit, Objective, PlanningError, schedule_offers

from .helpers import offer


def _err(call) -> PlanningError:
    with pytest.raises(PlanningError) as info:
        call()
    assert isinstance(info.value, FlexOfferError)  # one error type for agents to catch
    return info.value


def test_duplicate_ids():
    a = offer("x", [(1, 1)], (0, 0))
    e = _err(lambda: schedule_offers([a, a], Objective.energy_min()))
    assert e.path == "offers[1].id" and "duplicate" in e.reason


def test_mixed_resolutions():
    a = offer("a", [(1, 1)], (0, 0))
    b = offer("b", [(1, 1)], (0, 0), resolution=3600)
    e = _err(lambda: schedule_offers([a, b], Objective.energy_min()))
    assert e.path == "offers[1].resolution"


def test_not_an_offer():
    e = _err(lambda: schedule_offers([{"id": "a"}], Objective.energy_min()))
    assert e.path == "offers[0]"


def test_not_an_objective():
    e = _err(lambda: schedule_offers([], "cost"))
    assert e.path == "objective"


def test_implicit_offer_without_now():
    fo = FlexOffer(id="wm", profiles=(Profile((Slice(1, 1, 1),)),), start_before_duration=4)
    e = _err(lambda: schedule_offers([fo], Objective.energy_min()))
    assert e.path == "offers[0].start_after" and "now" in e.reason


def test_implicit_offer_whose_window_has_passed():
    fo = FlexOffer(id="wm", profiles=(Profile((Slice(1, 1, 1),)),), start_before=50)
    e = _err(lambda: schedule_offers([fo], Objective.energy_min(), now=60))
    assert e.path == "offers[0].start_before"


def test_series_not_covering_the_horizon():
    fo = offer("a", [(1, 1)], (0, 5))
    e = _err(lambda: schedule_offers([fo], Objective.target([1, 2, 3], start=0), horizon=(0, 6)))
    assert e.path == "objective.values" and "[0, 3)" in e.reason


def test_offer_that_cannot_run_inside_the_horizon():
    fo = offer("a", [(1, 1), (1, 1)], (5, 6))
    e = _err(lambda: schedule_offers([fo], Objective.cost([0.1] * 6, start=0)))
    assert e.path == "offers[0]" and "horizon" in e.reason


@pytest.mark.parametrize("make, path", [
    (lambda: Objective.target([1.0, float("nan")], start=0), "objective.values[1]"),
    (lambda: Objective.target([1.0, 2.0]), "objective.values.start"),
    (lambda: Objective.target([1.0], start=0, over=-1), "objective.over"),
    (lambda: Objective.cost([], start=0), "objective.prices"),
    (lambda: Objective.cost("cheap", start=0), "objective.prices"),
    (lambda: Objective.peak(weight=-1.0), "objective.weight"),
    (lambda: Objective.follow_market({}), "objective.commitment"),
    (lambda: Objective.follow_market({"ten": 1.0}), "objective.commitment"),
])
def test_bad_objectives(make, path):
    assert _err(make).path == path


def test_bad_solver_options():
    fo = offer("a", [(1, 1)], (0, 0))
    assert _err(lambda: schedule_offers([fo], Objective.energy_min(), solver="gurobi")).path == "solver"
    assert _err(lambda: schedule_offers([fo], Objective.energy_min(), time_limit=-1)).path == "time_limit"
    assert _err(lambda: schedule_offers([fo], Objective.energy_min(), gap=2)).path == "gap"
    assert _err(lambda: schedule_offers([fo], Objective.energy_min(), now="soon")).path == "now"
    assert _err(lambda: schedule_offers([fo], Objective.energy_min(), horizon=(5, 5))).path == "horizon"


def test_bad_capacity_limits():
    fo = offer("a", [(1, 1)], (0, 0))
    obj = Objective.energy_min()
    e = _err(lambda: schedule_offers([fo], obj, capacity=[CapacityLimit("f", upper=1, lower=2)]))
    assert e.path == "capacity[0].lower"
    e = _err(lambda: schedule_offers([fo], obj, capacity=[CapacityLimit("f")]))
    assert e.path == "capacity[0]"
    e = _err(lambda: schedule_offers([fo], obj, capacity=[CapacityLimit("f", upper=1)], congestion_points={"zz": "f"}))
    assert e.path == "congestion_points['zz']"
    e = _err(lambda: schedule_offers([fo], obj, capacity=[CapacityLimit("f", upper=1), CapacityLimit("f", upper=2)]))
    assert e.path == "capacity[1].point"
