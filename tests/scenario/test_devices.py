"""Scenario populations with device models: the check knows the device tables (every problem with
its key and line), and the plan draws each prosumer's devices reproducibly."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.scenario.test_check import run, write
from vmenergy.agents import ServerAddress
from vmenergy.devices.fleet import DeviceFleet
from vmenergy.devices.models import KINDS
from vmenergy.runtime.clock import RealClock
from vmenergy.runtime.scenario import load_scenario, make_plan
from vmenergy.runtime.swarm import build_agent

# line numbers below refer to this text
DEVICES = """\
[scenario]
start = "2026-11-22T11:00:00Z"
until = "2026-11-24T18:00:00Z"
seed = 3

[inputs]
weather = "inputs/piedmont-2026-11-weather.csv"
timezone = "Europe/Rome"

[[aggregator]]
name = "agg"

[[prosumers]]
count = 20
name = "h{i}"
aggregator = "agg"
owner = { comfort_cost = [0.02, 0.08] }

[prosumers.devices]
ev = 0.5
heat_pump = 1.0
base_load = 1.0

[prosumers.ev]
capacity = [40.0, 80.0]
charger = 7.4
"""


def change(*pairs: tuple[str, str]) -> str:
    text = DEVICES
    for old, new in pairs:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_a_device_population_checks_and_every_prosumer_gets_its_drawn_devices(tmp_path):
    scenario = load_scenario(write(tmp_path, DEVICES))
    plan = make_plan(scenario, tmp_path / "run")
    prosumers = plan.by_role("prosumer")
    kinds = [[d["kind"] for d in p.config["devices"]] for p in prosumers]
    assert all("heat_pump" in k and "base_load" in k for k in kinds)  # chance 1: every house
    assert 3 < sum("ev" in k for k in kinds) < 17  # chance 0.5 of 20
    for p in prosumers:
        for d in p.config["devices"]:
            assert d["id"] == f"{p.name}-{d['kind']}"
            if d["kind"] == "ev":
                assert 40.0 <= d["params"]["capacity"] <= 80.0 and d["params"]["charger"] == 7.4
        assert 0.02 <= p.config["owner"]["comfort_cost"] <= 0.08
        assert p.config["foa"] == {"offer_time": 12.0, "offer_lead": 3600, "slice_minutes": 60, "deviation": 0.02}
        assert p.offers == []  # nothing planned: the devices make the offers
    assert plan.inputs["weather"].endswith("piedmont-2026-11-weather.csv") and plan.inputs["timezone"] == "Europe/Rome"


def test_the_same_seed_draws_the_same_devices_and_the_draws_do_not_depend_on_the_group_size(tmp_path):
    a = make_plan(load_scenario(write(tmp_path, DEVICES, "a.toml")), tmp_path / "a")
    b = make_plan(load_scenario(write(tmp_path, DEVICES, "b.toml")), tmp_path / "b")
    assert [p.config for p in a.by_role("prosumer")] == [p.config for p in b.by_role("prosumer")]
    fewer = make_plan(load_scenario(write(tmp_path, change(("count = 20", "count = 5")), "c.toml")), tmp_path / "c")
    assert [p.config for p in fewer.by_role("prosumer")] == [p.config for p in a.by_role("prosumer")[:5]]


def test_a_prosumer_with_devices_is_built_with_a_device_fleet_as_offer_source_and_executor(tmp_path):
    plan = make_plan(load_scenario(write(tmp_path, DEVICES)), tmp_path / "run")
    spec = plan.by_role("prosumer")[0]
    agent = build_agent(spec, ServerAddress("127.0.0.1", 5222, None), RealClock(), plan.seed, plan)
    assert isinstance(agent.executor, DeviceFleet) and agent.source is agent.executor
    assert {d.kind for d in agent.executor.devices} == {d["kind"] for d in spec.config["devices"]}


def test_templates_and_devices_may_share_a_group(tmp_path):
    text = change(('aggregator = "agg"\nowner', 'aggregator = "agg"\noffers = ["examples/ev-overnight.json"]\nowner'))
    plan = make_plan(load_scenario(write(tmp_path, text)), tmp_path / "run")
    p = plan.by_role("prosumer")[0]
    assert len(p.offers) == 1 and p.config["devices"]


def test_an_foa_of_many_households_fronts_each_household_as_a_prosumer_of_its_name_would_be_drawn(tmp_path):
    text = change(("count = 20", "count = 2\nhouseholds = 6"))
    plan = make_plan(load_scenario(write(tmp_path, text)), tmp_path / "run")
    spec = plan.by_role("prosumer")[1]
    # the plan holds the recipe, not the draws
    assert "devices" not in spec.config and spec.config["households"]["count"] == 6
    agent = build_agent(spec, ServerAddress("127.0.0.1", 5222, None), RealClock(), plan.seed, plan)
    fleet = agent.executor
    assert isinstance(fleet, DeviceFleet) and agent.source is fleet
    # household j of prosumer h1 has the devices (ids, parameters) a prosumer named h1-hj would get
    single = make_plan(load_scenario(write(tmp_path, change(("count = 20", "count = 1"),
                                                                       ('name = "h{i}"', 'name = "h1-h{i}"')),
                                           "one.toml")), tmp_path / "one")
    alone = build_agent(single.by_role("prosumer")[0], ServerAddress("127.0.0.1", 5222, None), RealClock(),
                        single.seed, single).executor
    mine = [d for d in fleet.devices if d.id.startswith("h1-h0-")]
    assert [(d.id, d.p) for d in mine] == [(d.id, d.p) for d in alone.devices]
    assert [d.ctx.owner for d in mine] == [d.ctx.owner for d in alone.devices]
    assert len({d.id for d in fleet.devices}) == len(fleet.devices)
    assert sum(d.kind == "heat_pump" for d in fleet.devices) == 6  # chance 1: every household
    # households have their own owners (drawn in [0.02, 0.08])
    assert len({d.ctx.owner.comfort_cost for d in fleet.devices}) > 1
    assert all(d.ctx.issuer == spec.jid for d in fleet.devices)


@pytest.mark.parametrize("pairs, expected", [
    pytest.param([("count = 20", "count = 20\nhouseholds = 0")],
                 ":15: prosumers[0].households: must be >= 1", id="households"),
    pytest.param([("count = 20", "count = 20\nhouseholds = 2\noffers = [\"examples/ev-overnight.json\"]"),
                  ("[prosumers.devices]\nev = 0.5\nheat_pump = 1.0\nbase_load = 1.0\n", "")],
                 ":15: prosumers[0].households: households are drawn from the device mix", id="households without devices"),
    pytest.param([("count = 20", "count = 20\nhouseholds = 2\nhardware = \"modbus-tcp\"")],
                 ":16: prosumers[0].hardware: emulated hardware runs one household per prosumer", id="households on hardware"),
    pytest.param([("heat_pump = 1.0", "heatpump = 1.0")],
                 ":21: prosumers[0].devices.heatpump: unknown device kind (known: " + ", ".join(KINDS) + ") "
                 "(did you mean heat_pump?)", id="unknown kind"),
    pytest.param([("ev = 0.5", "ev = 1.5")], ":20: prosumers[0].devices.ev: a chance between 0 and 1", id="chance"),
    pytest.param([("capacity = [40.0, 80.0]", "capacity = [80.0, 40.0]")],
                 ":25: prosumers[0].ev.capacity: range [80, 40]: low above high", id="range"),
    pytest.param([("charger = 7.4", "chargr = 7.4")], ":26: prosumers[0].ev.chargr: unknown parameter", id="param"),
    pytest.param([("charger = 7.4", "charger = -1")], ":26: prosumers[0].ev.charger: must be > 0 (got -1)",
                 id="bound"),
    pytest.param([("charger = 7.4", 'charger = "fast"')],
                 ":26: prosumers[0].ev.charger: must be a number or a [low, high] range", id="type"),
    pytest.param([("comfort_cost = [0.02, 0.08]", "priority = [0, 3]")],
                 ":17: prosumers[0].owner.priority: must be >= 1 (got 0)", id="owner"),
    pytest.param([('weather = "inputs/piedmont-2026-11-weather.csv"', 'weather = "missing.csv"')],
                 ":7: inputs.weather: file not found", id="missing input"),
    pytest.param([('until = "2026-11-24T18:00:00Z"', 'until = "2026-12-24T18:00:00Z"')],
                 ":6: inputs: piedmont-2026-11-weather.csv covers 2026-11-18T00:00:00Z to 2026-11-29T23:00:00Z",
                 id="input too short"),
    pytest.param([('timezone = "Europe/Rome"', 'timezone = "Europe/Atlantis"')],
                 ":8: inputs.timezone: unknown time zone 'Europe/Atlantis'", id="time zone"),
    pytest.param([("[prosumers.devices]\nev = 0.5\nheat_pump = 1.0\nbase_load = 1.0\n", "")],
                 ":13: prosumers[0].offers: a group needs offer templates (offers) or devices", id="nothing to offer"),
])
def test_a_broken_device_population_is_refused_with_key_and_line(tmp_path, pairs, expected):
    f = write(tmp_path, change(*pairs))
    rc, out = run("check", str(f))
    assert rc == 1, out
    where, _, rest = expected.partition(": ")
    assert any(line.startswith(f"{f}{where}: {rest}") for line in out.splitlines()), out


def test_parameters_for_a_kind_the_group_does_not_have_are_a_warning(tmp_path):
    f = write(tmp_path, DEVICES + "\n[prosumers.battery]\ncapacity = 5.0\n")
    rc, out = run("check", str(f))
    assert rc == 0 and "warning: prosumers[0].battery: parameters for battery" in out


@pytest.mark.parametrize("name", ["demo.toml", "city-1k.toml"])
def test_the_shipped_device_scenarios_check_and_plan(tmp_path, name):
    rc, out = run("check", str(ROOT / "scenarios" / name))
    assert rc == 0, out
    plan = make_plan(load_scenario(ROOT / "scenarios" / name), tmp_path)
    prosumers = plan.by_role("prosumer")
    assert prosumers and all(p.config.get("devices") for p in prosumers)
    if name == "city-1k.toml":
        assert len(prosumers) == 1000 and len(plan.by_role("aggregator")) == 2
        kinds = {d["kind"] for p in prosumers for d in p.config["devices"]}
        assert kinds == set(KINDS)
