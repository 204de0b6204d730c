"""A cluster in the scenario file: ``[server] nodes = N`` (a private ejabberd cluster the run
starts) or ``[server.nodes.NAME]`` tables (a standing one), and ``node = "b"`` on the market, the
aggregators, the DSOs and the prosumer groups; ``vmenergy check`` names the key and its line, the
plan puts every part on its node, and a shard on another machine reaches the nodes its own copy
of the scenario names."""

from __future__ import annotations

import pytest

from tests.scenario.test_check import VALID, broken, check, run, write
from vmenergy.runtime.orchestrator import local_nodes, with_parts
from vmenergy.runtime.scenario import ScenarioError, load_scenario, make_plan

PRIVATE = ('[server]\nkind = "prosody"', '[server]\nkind = "ejabberd"\nnodes = 2')
ON_B = ('name = "market"\n', 'name = "market"\nnode = "b"\n')


def standing(tmp_path, b_ca: str = "b.crt") -> tuple[str, str]:
    (tmp_path / "a.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (tmp_path / "b.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    return ('[server]\nkind = "prosody"',
            '[server]\nkind = "external"\ndomain = "city.example"\n'
            '[server.nodes.west]\nhost = "xmpp-west.city.example"\nca_file = "a.crt"\n'
            f'[server.nodes.east]\nhost = "xmpp-east.city.example"\nport = 5223\nca_file = "{b_ca}"\n')


def test_a_private_cluster_names_its_nodes_a_b_and_parts_default_to_the_first(tmp_path):
    scenario = load_scenario(write(tmp_path, broken(PRIVATE, ON_B)))
    assert scenario.server.node_names == ("a", "b")
    assert scenario.market.node == "b" and all(a.node is None for a in scenario.aggregators)
    plan = make_plan(scenario, tmp_path / "run")
    assert plan.node_of == {"market": "b", "aggregators": "a", "prosumers-0": "a"}
    assert "nodes" not in plan.server and plan.server["kind"] == "ejabberd"


def test_parts_on_another_node_get_a_process_of_their_own(tmp_path):
    text = broken(PRIVATE, ('name = "south"\n', 'name = "south"\nnode = "b"\n'),
                  ('count = 2\n', 'count = 2\nnode = "b"\nprocesses = 2\n'))
    text += '\n[[prosumers]]\ncount = 2\nname = "w{i}"\naggregator = "south"\noffers = ["examples/ev-overnight.json"]\n'
    plan = make_plan(load_scenario(write(tmp_path, text)), tmp_path / "run", shards=2)
    assert plan.node_of == {"market": "a", "aggregators": "a", "aggregators-b": "b",
                            "prosumers-0-b": "b", "prosumers-1-b": "b", "prosumers-0": "a", "prosumers-1": "a"}
    assert {a.name: a.part for a in plan.agents if a.role != "prosumer"} == {
        "market": "market", "north": "aggregators", "south": "aggregators-b"}
    assert {a.name: a.part for a in plan.agents if a.role == "prosumer"} == {
        "h0": "prosumers-0-b", "h1": "prosumers-1-b", "w0": "prosumers-0", "w1": "prosumers-1"}
    # each shard runs its share of every group, on the group's node
    assert plan.shard_of == {"prosumers-0-b": 1, "prosumers-1-b": 2, "prosumers-0": 1, "prosumers-1": 2}


def test_without_a_cluster_the_plan_has_no_nodes(tmp_path):
    plan = make_plan(load_scenario(write(tmp_path, VALID)), tmp_path / "run")
    assert plan.node_of == {} and sorted(plan.parts) == ["aggregators", "market", "prosumers-0"]


def test_a_standing_cluster_names_its_nodes_and_the_first_is_the_server_the_run_probes(tmp_path):
    scenario = load_scenario(write(tmp_path, broken(standing(tmp_path), ('name = "north"\n', 'name = "north"\nnode = "east"\n'))))
    west, east = scenario.server.cluster
    assert (west.name, west.host, west.port, west.ca_file) == ("west", "xmpp-west.city.example", 5222,
                                                               str(tmp_path / "a.crt"))
    assert (east.name, east.host, east.port, east.ca_file) == ("east", "xmpp-east.city.example", 5223,
                                                               str(tmp_path / "b.crt"))
    assert scenario.server.as_plan() == {"kind": "external", "domain": "city.example", "accounts": "register",
                                         "host": "xmpp-west.city.example", "port": 5222,
                                         "ca_file": str(tmp_path / "a.crt")}
    plan = make_plan(scenario, tmp_path / "run")
    assert plan.node_of == {"market": "west", "aggregators": "west", "aggregators-east": "east", "prosumers-0": "west"}


def test_the_server_table_gets_each_parts_node_address_and_a_callers_parts_win():
    server = {"kind": "ejabberd", "host": "127.0.0.1", "port": 1, "nodes": {
        "a": {"host": "127.0.0.1", "port": 1, "ca_file": "a.crt"}, "b": {"host": "127.0.0.1", "port": 2, "ca_file": "b.crt"}}}
    out = with_parts(server, {"market": "b", "prosumers-0": "a"})
    assert out["parts"] == {"market": server["nodes"]["b"], "prosumers-0": server["nodes"]["a"]}
    mine = with_parts(dict(server, parts={"market": {"port": 9}}), {"market": "b"})
    assert mine["parts"] == {"market": {"port": 9}}
    assert with_parts({"kind": "prosody"}, {}) == {"kind": "prosody"}


def test_a_shard_connects_its_parts_to_the_nodes_its_own_scenario_names(tmp_path):
    """Shard 1's plan carries its addresses; shard k's copy of the scenario may reach the same
    nodes by other names (and has its CA files in its own folder)."""
    (tmp_path / "k").mkdir()
    east = ('name = "market"\n', 'name = "market"\nnode = "east"\n')
    one = load_scenario(write(tmp_path, broken(standing(tmp_path), east)))
    plan = make_plan(one, tmp_path / "run")
    server = with_parts(dict(plan.server, nodes={n.name: n.address() for n in one.server.cluster}), plan.node_of)
    text = broken(standing(tmp_path / "k"), east)
    mine = load_scenario(write(tmp_path / "k", text.replace("xmpp-east.city.example", "127.0.0.1")))
    local = local_nodes(server, plan.node_of, mine)
    assert local["parts"]["market"] == {"host": "127.0.0.1", "port": 5223, "ca_file": str(tmp_path / "k" / "b.crt")}
    assert local["parts"]["prosumers-0"]["ca_file"] == str(tmp_path / "k" / "a.crt")
    # a private cluster's addresses are known to shard 1 only: its plan stands
    private = load_scenario(write(tmp_path / "k", broken(PRIVATE), "p.toml"))
    assert local_nodes(server, plan.node_of, private) is server
    # a node this machine's scenario does not name is refused before anything starts
    other = load_scenario(write(tmp_path / "k", text.replace("east", "north"), "o.toml"))
    with pytest.raises(ValueError, match="server.nodes: the run puts parts on node.s. east"):
        local_nodes(server, plan.node_of, other)


# -- vmenergy check: the key, its line and the reason -------------------------------------------
@pytest.mark.parametrize("changes, expected", [
    ([('aggregator = "north"\n', 'aggregator = "north"\nnode = "b"\n')],
     ':30: prosumers[0].node: names node "b", but the [server] is not a cluster'),
    ([PRIVATE, ('aggregator = "north"\n', 'aggregator = "north"\nnode = "c"\n')],
     ':31: prosumers[0].node: no node named "c" in the [server] cluster (its nodes: a, b)'),
    ([PRIVATE, ('name = "south"\n', 'name = "south"\nnode = "bb"\n')],
     ':24: aggregator[1].node: no node named "bb" in the [server] cluster (its nodes: a, b) (did you mean b?)'),
    ([PRIVATE, ('name = "market"\n', 'name = "market"\nnode = "z"\n')],
     ':13: market.node: no node named "z" in the [server] cluster'),
    ([PRIVATE, ('name = "market"\n', 'name = "market"\nnode = 2\n')], ':13: market.node: must be a string, got 2'),
    ([('[server]\nkind = "prosody"', '[server]\nkind = "prosody"\nnodes = 2')],
     ':9: server.nodes: a cluster the run starts is of ejabberd nodes: set kind = "ejabberd" (got "prosody")'),
    ([('[server]\nkind = "prosody"', '[server]\nkind = "ejabberd"\nnodes = 0')], ':9: server.nodes: must be 1 to 26 nodes, got 0'),
    ([('[server]\nkind = "prosody"', '[server]\nkind = "ejabberd"\nnodes = "two"')],
     ':9: server.nodes: the number of nodes of a cluster the run starts (nodes = 2), or one table per node'),
    ([('[server]\nkind = "prosody"', '[server]\nkind = "ejabberd"\n[server.nodes.a]\nhost = "x"')],
     ':9: server.nodes: named nodes are a standing cluster\'s: set kind = "external" (got "ejabberd")'),
    ([('[server]\nkind = "prosody"', '[server]\nkind = "external"\nhost = "x"\n[server.nodes.a]\nhost = "y"')],
     ':9: server.host: give each node its own in [server.nodes.NAME]'),
    ([('[server]\nkind = "prosody"', '[server]\nkind = "external"\n[server.nodes.a]\nport = 5222')],
     ':9: server.nodes.a.host: required: the node\'s host name or address'),
    ([('[server]\nkind = "prosody"', '[server]\nkind = "external"\n[server.nodes.a]\nhost = "y"\nport = 70000')],
     ':11: server.nodes.a.port: must be <= 65535, got 70000'),
    ([('[server]\nkind = "prosody"', '[server]\nkind = "external"\n[server.nodes.a]\nhost = "y"\nca_file = "no.crt"')],
     ':11: server.nodes.a.ca_file: CA file not found'),
    ([('[server]\nkind = "prosody"', '[server]\nkind = "external"\n[server.nodes.a]\nhost = "y"\nweight = 2')],
     ':11: server.nodes.a.weight: unknown key'),
    ([PRIVATE, ('name = "north"\n', 'name = "north"\npart = "aggs"\n'),
      ('name = "south"\n', 'name = "south"\npart = "aggs"\nnode = "b"\n')],
     ':26: aggregator[1].node: "b", but part "aggs" also runs aggregator[0] on node "a"'),
])
def test_a_wrong_cluster_or_node_is_refused_with_key_and_line(tmp_path, changes, expected):
    rc, out, f = check(tmp_path, broken(*changes))
    assert rc == 1 and f"{f}{expected}" in out, out


def test_server_address_keys_beside_a_private_cluster_are_warnings(tmp_path):
    rc, out, f = check(tmp_path, broken(('[server]\nkind = "prosody"', '[server]\nkind = "ejabberd"\nnodes = 2\nport = 5222')))
    assert rc == 0 and 'server.port: has no effect with kind = "ejabberd" (VME starts a private cluster)' in out, out


def test_every_named_node_and_part_of_a_valid_cluster_scenario_passes(tmp_path):
    text = broken(PRIVATE, ON_B, ('name = "south"\n', 'name = "south"\nnode = "b"\n'),
                  ('aggregator = "north"\n', 'aggregator = "north"\nnode = "a"\n'))
    rc, out, f = check(tmp_path, text)
    assert rc == 0 and out.startswith(f"OK {f}"), out


# -- a group pinned to a shard: a machine's prosumers on its nearest node ----------------------
def test_a_group_pinned_to_a_shard_runs_all_its_processes_there_on_its_node(tmp_path):
    text = broken(PRIVATE, ('count = 2\n', 'count = 4\nnode = "b"\nshard = 2\nprocesses = 2\n'))
    text += '\n[[prosumers]]\ncount = 2\nname = "w{i}"\naggregator = "south"\noffers = ["examples/ev-overnight.json"]\n'
    plan = make_plan(load_scenario(write(tmp_path, text)), tmp_path / "run", shards=2)
    assert {a.name: a.part for a in plan.agents if a.role == "prosumer"} == {
        "h0": "prosumers-s2-0-b", "h1": "prosumers-s2-1-b", "h2": "prosumers-s2-0-b", "h3": "prosumers-s2-1-b",
        "w0": "prosumers-0", "w1": "prosumers-1"}
    assert plan.shard_of == {"prosumers-s2-0-b": 2, "prosumers-s2-1-b": 2, "prosumers-0": 1, "prosumers-1": 2}
    assert plan.node_of["prosumers-s2-0-b"] == "b" and plan.node_of["prosumers-0"] == "a"


def test_a_run_with_fewer_shards_than_a_group_names_is_refused_with_the_key_and_line(tmp_path):
    f = write(tmp_path, broken(('count = 2\n', 'count = 2\nshard = 3\n')))
    with pytest.raises(ScenarioError, match=r"prosumers\[0\]\.shard: shard 3, but the run has 2 shards"):
        make_plan(load_scenario(f), tmp_path / "run", shards=2)
    rc, out = run("run", str(f), "--out", str(tmp_path / "run"))
    assert rc == 1 and f"{f}:28: prosumers[0].shard: shard 3, but the run has 1 shard (vmenergy run" in out, out
    assert not (tmp_path / "run").exists()
    rc, out, _ = check(tmp_path, broken(('count = 2\n', 'count = 2\nshard = 0\n')))
    assert rc == 1 and "prosumers[0].shard: must be >= 1, got 0" in out
