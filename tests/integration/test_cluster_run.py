"""A city on a cluster, from the scenario file alone: ``vmenergy run`` starts the two-node ejabberd
cluster its ``[server]`` asks for (``nodes = 2``), connects the prosumers to node a and the
aggregator and market to node b as the scenario names them, and gives the summary of the same
scenario on a single ejabberd. Sharded over a standing cluster, each shard connects its parts to
the nodes its own copy of the scenario names."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import run_two_shards
from vmenergy.runtime.scenario import Plan
from vmenergy.runtime.servers import check_kind, server_status
from vmenergy.runtime.servers.cluster import start_cluster, stop_cluster

pytestmark = pytest.mark.integration

DEMO = (ROOT / "scenarios" / "demo.toml").read_text()
SERVER = '[server]\nkind = "prosody"'
#: the aggregator and the market on node b, the prosumers on node a (written, though it is the default)
SPLIT = (('[market]\nname = "market"\n', '[market]\nname = "market"\nnode = "b"\n'),
         ('name = "aggregator"\nupstream', 'name = "aggregator"\nnode = "b"\nupstream'),
         ('processes = 1\n', 'processes = 1\nnode = "a"\n'))


@pytest.fixture(autouse=True)
def _ejabberd():
    ok, reason = check_kind("ejabberd")
    if not ok:
        pytest.skip(reason)


def scenario(tmp_path: Path, name: str, server: str, changes=()) -> Path:
    """The demo with another [server] (its inputs and templates are found under scenarios/)."""
    text = DEMO
    for old, new in ((SERVER, server),) + tuple(changes):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def vmenergy(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vmenergy", *args], capture_output=True, text=True, timeout=timeout)


def connected(run_dir: Path) -> dict[str, int]:
    """Each agent's server port, from the processes' logs (``event=connected server=HOST:PORT``)."""
    found = {}
    for log in (run_dir / "logs").glob("*.log"):
        for m in re.finditer(r"agent=([\w.-]+)@\S+ .*?event=connected server=[^:\s]+:(\d+)", log.read_text()):
            found.setdefault(m.group(1), int(m.group(2)))
    return found


def test_vmenergy_run_starts_the_cluster_its_scenario_names_and_gives_the_single_node_summary(tmp_path):
    one = vmenergy("run", str(scenario(tmp_path, "one", '[server]\nkind = "ejabberd"')), "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stdout + one.stderr
    split = vmenergy("run", str(scenario(tmp_path, "split", '[server]\nkind = "ejabberd"\nnodes = 2', SPLIT)),
                     "--out", str(tmp_path / "split"))
    assert split.returncode == 0, split.stdout + split.stderr
    assert "note: cluster node b on 127.0.0.1:" in split.stdout
    plan = Plan.load(tmp_path / "split" / "plan.json")
    nodes = plan.server["nodes"]
    assert nodes["a"]["port"] != nodes["b"]["port"]
    ports = connected(tmp_path / "split")
    houses = {name: port for name, port in ports.items() if name.startswith("house")}
    assert len(houses) == 6 and set(houses.values()) == {nodes["a"]["port"]}
    assert ports["aggregator"] == ports["market"] == nodes["b"]["port"]
    # every offer, acknowledgement, assignment, measurement and bill crossed the cluster, with
    # the results of one node
    assert (tmp_path / "split" / "summary.json").read_text() == (tmp_path / "one" / "summary.json").read_text()
    # the run stopped its cluster (both nodes and the epmd)
    assert not any(server_status(tmp_path / "split" / "xmpp" / d).running for d in ("node1", "node2"))


def test_shards_connect_to_the_standing_cluster_nodes_their_own_scenario_names(tmp_path):
    """A city on two machines: shard 1 runs the market and the aggregator on node b, shard 2 all
    the prosumers (``shard = 2``) on node a, the node nearest to it, which its copy of the
    scenario reaches by another name (``localhost``); the summary is the one-node run's."""
    single = vmenergy("run", str(scenario(tmp_path, "one", '[server]\nkind = "ejabberd"')), "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stdout + single.stderr
    cluster = start_cluster(tmp_path / "cluster", nodes=2, registration=True)
    try:
        a, b = cluster.nodes
        standing = ('[server]\nkind = "external"\n'
                    f'[server.nodes.a]\nhost = "127.0.0.1"\nport = {a.port}\nca_file = "{a.ca_file}"\n'
                    f'[server.nodes.b]\nhost = "127.0.0.1"\nport = {b.port}\nca_file = "{b.ca_file}"\n')
        pinned = SPLIT + (('node = "a"\n', 'node = "a"\nshard = 2\n'),)
        mine = scenario(tmp_path, "shard1", standing, pinned)
        (tmp_path / "m2").mkdir()
        theirs = scenario(tmp_path / "m2", "shard2", standing.replace('host = "127.0.0.1"\nport = %d' % a.port,
                                                                     'host = "localhost"\nport = %d' % a.port), pinned)
        second = run_two_shards([str(mine)], [str(theirs), "--out", str(tmp_path / "s2")], tmp_path / "s1")
        assert "sent 6 agent stores" in second.stdout
    finally:
        stop_cluster(cluster)
    shard2 = Plan.load(tmp_path / "s2" / "plan.json")
    mine_parts = [p for p in shard2.parts if shard2.shard(p) == 2]
    assert mine_parts == ["prosumers-s2-0"]
    assert shard2.server["parts"]["prosumers-s2-0"] == {"host": "localhost", "port": a.port, "ca_file": a.ca_file}
    houses = connected(tmp_path / "s2")
    assert len(houses) == 6 and set(houses.values()) == {a.port}
    log = (tmp_path / "s2" / "logs" / "prosumers-s2-0.log").read_text()
    assert f"event=connected server=localhost:{a.port}" in log
    ports = connected(tmp_path / "s1")
    assert ports["aggregator"] == ports["market"] == b.port
    assert (tmp_path / "s1" / "summary.json").read_text() == (tmp_path / "one" / "summary.json").read_text()


def test_a_cluster_node_killed_mid_run_is_restarted_and_the_run_decides_what_it_would_have(tmp_path):
    """The server drill on a private cluster: kill -9 of one node (drawn by the seed) while the
    day's work goes on; the run restarts it on its port (its Mnesia copy brings it back into the
    cluster), the agents reconnect, and the result is the undisturbed run's."""
    from tests.integration.test_drills import SCENARIO
    from vmenergy.runtime.drill.run import UNDISTURBED, run_drill

    text = SCENARIO.replace('[server]\nkind = "prosody"', '[server]\nkind = "ejabberd"\nnodes = 2')
    text = text.replace('name = "ds-agg"\n', 'name = "ds-agg"\nnode = "b"\n')
    assert text.count('nodes = 2') == 1 and text.count('node = "b"') == 1
    path = tmp_path / "drill-cluster.toml"
    path.write_text(text)
    undisturbed = run_drill(path, UNDISTURBED, tmp_path / "undisturbed", seed=1, timeout=400)
    assert undisturbed.ok, undisturbed.line()
    result = run_drill(path, "server", tmp_path / "killed", seed=1, timeout=400)
    told = "\n".join([result.line(), *result.notes, *(f"{e.log}: {e.exception} at {e.where}" for e in result.exceptions)])
    assert result.fault.startswith("kill -9 xmpp-node-"), told
    assert any(r.startswith("xmpp-node-") for r in result.restarts), told
    assert result.items is not None and result.items.lost == 0 and result.items.finished, told
    assert result.ok and result.result == undisturbed.result, told
