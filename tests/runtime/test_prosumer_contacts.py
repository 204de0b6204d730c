"""Which subscriptions a run writes ahead into a private server's rosters: each prosumer's to its
aggregator, and to its trading pool's market when it trades (vmenergy.runtime.orchestrator)."""

from __future__ import annotations

from pathlib import Path

from vmenergy.runtime.orchestrator import prosumer_contacts
from vmenergy.runtime.scenario import load_scenario, make_plan

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def test_every_prosumer_of_a_city_gets_its_aggregator_and_nothing_else(tmp_path):
    plan = make_plan(load_scenario(SCENARIOS / "city-1k.toml"), tmp_path / "run")
    contacts = prosumer_contacts(plan)
    assert len(contacts) == 1000
    assert contacts["north0"] == ["north@localhost"] and contacts["south499"] == ["south@localhost"]
    assert all(len(peers) == 1 for peers in contacts.values())


def test_a_trading_prosumer_also_gets_its_pools_market(tmp_path):
    plan = make_plan(load_scenario(SCENARIOS / "market-peer-to-peer.toml"), tmp_path / "run")
    traders = [s for s in plan.by_role("prosumer") if s.config.get("market")]
    assert traders, "the scenario has trading prosumers"
    contacts = prosumer_contacts(plan)
    for spec in traders:
        assert contacts[spec.jid.partition("@")[0]] == [spec.config["aggregator"], spec.config["market"]]
