"""The ``[operators]`` table of scenarios and agent node configs: checked by the same schema
(`vmenergy check` names key and line), carried by the plan to every agent, and an operator
account the run creates."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.scenario.test_check import VALID, run, write
from vmenergy.agents.config import ConfigError, build, load_config
from vmenergy.protocol.operators import Access, Operators
from vmenergy.runtime.scenario import load_scenario, make_plan

OPERATORS = """
[operators]
controllers = ["Alice@Example.org"]
viewers = ["bob@example.org"]
"""


def with_operators(text: str) -> str:
    return VALID + text


def test_a_scenarios_operators_reach_every_agent_of_the_plan(tmp_path):
    scenario = load_scenario(write(tmp_path, with_operators(OPERATORS)))
    assert scenario.operators.access == Operators(("alice@example.org",), ("bob@example.org",))
    plan = make_plan(scenario, tmp_path / "run")
    assert {tuple(a.operators["controllers"]) for a in plan.agents} == {("alice@example.org",)}
    assert all(a.operators["viewers"] == ["bob@example.org"] for a in plan.agents)
    assert plan.operator == {}
    plain = make_plan(load_scenario(write(tmp_path, VALID, "plain.toml")), tmp_path / "run2")
    assert all(Operators.from_dict(a.operators).access("alice@example.org") is Access.NONE for a in plain.agents)


def test_an_operator_account_of_the_run_is_a_controller_with_its_own_name(tmp_path):
    scenario = load_scenario(write(tmp_path, with_operators(OPERATORS + 'account = "ops"\n')))
    assert scenario.operators.account == "ops"
    assert scenario.operators.access.access("ops@localhost") is Access.CONTROL
    plan = make_plan(scenario, tmp_path / "run")
    assert plan.operator["jid"] == "ops@localhost" and len(plan.operator["password"]) >= 12
    assert "ops@localhost" in plan.agents[0].operators["controllers"]


@pytest.mark.parametrize("table, expected", [
    pytest.param('controllers = "alice@example.org"', "operators.controllers: must be an array",
                 id="not a list"),
    pytest.param('viewers = ["bob"]', "operators.viewers[0]: 'bob' is not a bare JID (user@domain)",
                 id="not a JID"),
    pytest.param('viewers = ["bob@example.org/phone"]', "has a resource; name the account only", id="resource"),
    pytest.param('controlers = ["alice@example.org"]', "operators.controlers: unknown key (known: account, "
                 "controllers, viewers) (did you mean controllers?)", id="misspelt key"),
    pytest.param('account = "h0"', 'operators.account: agent name "h0" is also used at', id="name clash"),
    pytest.param('account = "a b"', "operators.account: an agent name is 1-64 letters", id="bad name"),
])
def test_a_bad_operators_table_is_reported_with_key_and_line(tmp_path, table, expected):
    f = write(tmp_path, with_operators(f"\n[operators]\n{table}\n"))
    line = f.read_text().splitlines().index(table) + 1
    rc, out = run("check", str(f))
    assert rc == 1 and f"{f}:{line}: " in out and expected in out, out


def test_an_operator_account_needs_a_server_that_vme_can_make_it_on(tmp_path):
    f = write(tmp_path, with_operators('\n[operators]\naccount = "ops"\n').replace('kind = "prosody"',
                                                                                   'kind = "embedded"'))
    rc, out = run("check", str(f))
    assert rc == 1 and "operators.account: the embedded server has no account tool" in out


def test_a_node_configs_operators_are_checked_and_given_to_its_agent(tmp_path):
    cfg = ROOT / "agents" / "aggregator" / "aggregator.toml"
    data = load_config(cfg)
    data["agent"].pop("password_file")
    data["agent"]["password"] = "x"
    data["agent"]["store"] = str(tmp_path / "a.sqlite")
    agent = build("aggregator", data)
    assert agent.operators.access("alice@vme.example.org") is Access.CONTROL
    assert agent.operators.access("bob@vme.example.org") is Access.VIEW
    f = write(tmp_path, cfg.read_text().replace('viewers = ["bob@vme.example.org"]', 'viewers = ["bob"]'),
              "agg.toml")
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert info.value.path == "operators.viewers[0]" and "not a bare JID" in info.value.reason
