"""`[[dso]]` tables and the groups' `congestion_point` in `vmenergy check`, and what the plan
tells the DSO and the aggregators."""

from __future__ import annotations

from tests.conftest import ROOT
from tests.scenario.test_check import check
from vmenergy.runtime.scenario import make_plan
from vmenergy.runtime.scenario.check import load_scenario

SCENARIO = (ROOT / "scenarios" / "dso-congestion.toml").read_text()


def test_a_group_behind_a_point_no_dso_has_is_refused_with_a_suggestion(tmp_path):
    rc, out, f = check(tmp_path, SCENARIO.replace('congestion_point = "feeder-1"', 'congestion_point = "feeder-2"'))
    assert rc == 1
    assert 'prosumers[0].congestion_point: no [[dso]] has a congestion point named "feeder-2" (did you mean feeder-1?)' in out


def test_the_dsos_aggregators_come_from_the_topology_not_the_file(tmp_path):
    text = SCENARIO.replace("request_every = 1800", 'request_every = 1800\naggregators = { "x@localhost" = ["feeder-1"] }')
    rc, out, f = check(tmp_path, text)
    assert rc == 1 and "dso[0].aggregators: set by the scenario from the prosumer groups' congestion_point" in out


def test_dso_settings_are_checked_by_the_dsos_own_code(tmp_path):
    rc, out, f = check(tmp_path, SCENARIO.replace("tolerance = 0.10", "tolerance = 1.5")
                       .replace("37.532,", "-37.532,"))
    assert rc == 1
    assert "dso[0].tolerance: must be in [0, 1] (got 1.5)" in out
    assert "dso[0].points.feeder-1.limit: every value must be > 0" in out


def test_a_dso_needs_a_unique_name_and_a_point_belongs_to_one_dso(tmp_path):
    second = '\n[[dso]]\nname = "aggregator"\npoints.feeder-1 = { limit = 10.0 }\n'
    rc, out, f = check(tmp_path, SCENARIO.replace("[[aggregator]]", second + "\n[[aggregator]]"))
    assert rc == 1
    assert 'dso[1].points.feeder-1: congestion point feeder-1 is also dso "dso"\'s' in out
    assert 'agent name "aggregator" is also used at' in out


def test_the_plan_tells_the_aggregator_where_its_prosumers_are_and_the_dso_whom_to_ask(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.replace('offers = ["examples/ev-evening.json"]',
                                     f'offers = ["{ROOT / "scenarios" / "examples" / "ev-evening.json"}"]'))
    scenario = load_scenario(path)
    plan = make_plan(scenario, tmp_path / "run")
    (dso,) = plan.by_role("dso")
    (agg,) = plan.by_role("aggregator")
    assert dso.config["aggregators"] == {"aggregator@localhost": ["feeder-1"]}
    assert agg.config["dsos"] == {"feeder-1": "dso@localhost"}
    assert len(agg.config["locations"]) == 30 and set(agg.config["locations"].values()) == {"feeder-1"}
    assert plan.parts[:2] == ["dso", "aggregators"]
