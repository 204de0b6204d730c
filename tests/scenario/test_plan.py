"""make_plan: from the typed scenario to the plan the swarm processes read (no server needed)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT
from tests.scenario.test_check import VALID, broken, write
from vmenergy.agents import ServerAddress
from vmenergy.flexoffer import FlexOffer
from vmenergy.flexoffer.timeutil import parse_utc
from vmenergy.runtime.clock import RealClock
from vmenergy.runtime.scenario import Plan, load_scenario, make_plan
from vmenergy.runtime.swarm import build_agent

START = parse_utc("2026-11-22T18:00:00Z", "-")


def plan_of(tmp_path: Path, text: str = VALID) -> Plan:
    return make_plan(load_scenario(write(tmp_path, text)), tmp_path / "run")


def test_the_plan_has_every_agent_with_its_jid_part_and_store(tmp_path):
    plan = plan_of(tmp_path)
    assert [(a.role, a.jid, a.part) for a in plan.agents] == [
        ("market", "market@localhost", "market"),
        ("aggregator", "north@localhost", "aggregators"),
        ("aggregator", "south@localhost", "aggregators"),
        ("prosumer", "h0@localhost", "prosumers-0"),
        ("prosumer", "h1@localhost", "prosumers-0"),
    ]
    assert plan.parts == ["market", "aggregators", "prosumers-0"]
    assert all(a.store == str(tmp_path / "run" / "stores" / f"{a.name}.sqlite") for a in plan.agents)
    assert (plan.name, plan.start, plan.until, plan.seed) == ("t", START, START + 86400, 3)


def test_aggregators_get_their_upstream_from_the_scenario(tmp_path):
    plan = plan_of(tmp_path)
    north, south = plan.by_role("aggregator")
    assert north.config["upstream"] == "market" and north.config["upstream_jid"] == "market@localhost"
    assert south.config["upstream"] == "parent" and south.config["upstream_jid"] == "north@localhost"
    assert north.config["objective"] == {"kind": "peak"} and north.config["cycle"] == 900
    assert plan.by_role("prosumer")[0].config == {"aggregator": "north@localhost", "deviation": 0.02}


def test_virtual_clock_has_no_speed_and_accelerated_has_its_speed(tmp_path):
    assert plan_of(tmp_path).clock == {"mode": "virtual", "speed": None, "start": START}
    plan = plan_of(tmp_path, broken(("seed = 3", 'clock = "accelerated"\nspeed = 1500')))
    assert plan.clock == {"mode": "accelerated", "speed": 1500.0, "start": START}


def test_the_server_table_is_passed_on(tmp_path):
    assert plan_of(tmp_path).server == {"kind": "prosody", "domain": "localhost"}
    plan = plan_of(tmp_path, broken(('kind = "prosody"', 'kind = "external"\nhost = "10.0.0.5"\ndomain = "vme.org"')))
    assert plan.server == {"kind": "external", "domain": "vme.org", "host": "10.0.0.5", "port": 5222,
                           "accounts": "register"}
    assert plan.by_role("prosumer")[0].jid == "h0@vme.org"


def test_offers_are_varied_templates_and_the_same_seed_gives_the_same_offers(tmp_path):
    a, b = plan_of(tmp_path), plan_of(tmp_path)
    offers = [o for p in a.by_role("prosumer") for o in p.offers]
    assert [o["offer"]["id"] for o in offers] == ["h0-0", "h1-0"]
    assert all(FlexOffer.from_dict(o["offer"]).issuer in ("h0@localhost", "h1@localhost") for o in offers)
    assert [p.offers for p in a.by_role("prosumer")] == [p.offers for p in b.by_role("prosumer")]
    other = plan_of(tmp_path, broken(("seed = 3", "seed = 4")))
    assert [p.offers for p in other.by_role("prosumer")] != [p.offers for p in a.by_role("prosumer")]


def test_a_saved_plan_loads_and_every_agent_builds_from_it(tmp_path):
    plan = plan_of(tmp_path)
    plan.save(tmp_path / "plan.json")
    loaded = Plan.load(tmp_path / "plan.json")
    assert loaded == plan
    agents = [build_agent(spec, ServerAddress("127.0.0.1", 5222, None), RealClock()) for spec in loaded.agents]
    assert [a.role for a in agents] == ["market", "aggregator", "aggregator", "prosumer", "prosumer"]


def test_the_agents_send_spade_metadata_only_when_the_scenario_says_so(tmp_path):
    def built(plan):
        return [build_agent(spec, ServerAddress("127.0.0.1", 5222, None), RealClock(), plan.seed, plan)
                for spec in plan.agents]

    plan = plan_of(tmp_path)
    assert plan.spade_metadata is False and not any(a.spade_metadata for a in built(plan))
    plan = plan_of(tmp_path, broken(("seed = 3", "seed = 3\nspade_metadata = true")))
    plan.save(tmp_path / "plan.json")
    plan = Plan.load(tmp_path / "plan.json")
    assert plan.spade_metadata is True and all(a.spade_metadata for a in built(plan))


def test_the_demo_plans(tmp_path):
    plan = make_plan(load_scenario(ROOT / "scenarios" / "demo.toml"), tmp_path)
    assert len(plan.by_role("prosumer")) == 6 and plan.clock["mode"] == "virtual"


def test_a_sharded_plan_gives_each_shard_its_share_of_every_group(tmp_path):
    text = broken(("count = 2", "count = 6"), ('name = "h{i}"', 'name = "h{i}"\nprocesses = 2'))
    plan = make_plan(load_scenario(write(tmp_path, text)), tmp_path / "run", shards=2)
    assert plan.parts == ["market", "aggregators", "prosumers-0", "prosumers-1", "prosumers-2", "prosumers-3"]
    assert plan.shard_of == {"prosumers-0": 1, "prosumers-1": 2, "prosumers-2": 1, "prosumers-3": 2}
    assert plan.shard("market") == 1
    by_shard = [sum(1 for a in plan.by_role("prosumer") if plan.shard(a.part) == s) for s in (1, 2)]
    assert by_shard == [3, 3]


def test_who_may_take_part_follows_the_topology_unless_the_scenario_says(tmp_path):
    """Deny by default (issue 16, finding 5): a stranger registered with an aggregator that
    enrolled anyone and a market open to all. Now each takes part only from its own tree."""
    plan = plan_of(tmp_path)
    market = plan.by_role("market")[0]
    north, south = plan.by_role("aggregator")
    assert market.config["registration"] == ["north@localhost"]
    assert north.config["enrolment"] == ["south@localhost", "h0@localhost", "h1@localhost"]
    assert south.config["enrolment"] == []
    opened = plan_of(tmp_path, broken(('name = "south"', 'name = "south"\nenrolment = "open"')))
    assert opened.by_role("aggregator")[1].config["enrolment"] == "open"
