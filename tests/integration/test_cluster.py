"""An ejabberd cluster of two nodes on loopback (as two machines would be): clients on different
nodes see each other's presence and exchange messages, and a scenario run with its prosumers on
node A and its aggregator and market on node B gives the same summary as on one node."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import connect_plain_client, disconnect_all, next_item
from vmenergy.runtime.orchestrator import run_scenario
from vmenergy.runtime.servers import ServerInfo, check_kind, start_server, stop_server
from vmenergy.runtime.servers.cluster import start_cluster, stop_cluster

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenarios" / "demo.toml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    ok, reason = check_kind("ejabberd")
    if not ok:
        pytest.skip(reason)
    c = start_cluster(tmp_path_factory.mktemp("cluster"), nodes=2, registration=True)
    try:
        yield c
    finally:
        stop_cluster(c)


def server(node: ServerInfo, parts: dict[str, ServerInfo] | None = None) -> dict:
    d = {"kind": node.kind, "host": node.host, "port": node.port, "domain": node.domain, "ca_file": node.ca_file}
    if parts:
        d["parts"] = {p: {"host": n.host, "port": n.port, "ca_file": n.ca_file} for p, n in parts.items()}
    return d


async def test_clients_on_two_nodes_see_each_other_and_talk(cluster):
    a, b = cluster.nodes
    assert a.port != b.port and a.domain == b.domain and a.extra["node"] != b.extra["node"]
    alice = await connect_plain_client(a, "alice-cl", "pw-a")
    bob = await connect_plain_client(b, "bob-cl", "pw-b")
    try:
        alice.send_presence_subscription(pto=bob.boundjid.bare)
        while (await next_item(alice.presences, what="presence of bob across the cluster"))["from"].bare != bob.boundjid.bare:
            pass
        alice.send_message(mto=bob.boundjid.bare, mbody="across nodes", mtype="chat")
        msg = await next_item(bob.messages, what="message across the cluster")
        assert msg["body"] == "across nodes" and msg["from"].bare == alice.boundjid.bare
    finally:
        await disconnect_all([alice, bob])
    # an account made through one node is known to the other (Mnesia replicates it)
    again = await connect_plain_client(b, "alice-cl", "pw-a")
    await disconnect_all([again])


def test_a_scenario_split_over_two_nodes_gives_the_summary_of_one_node(cluster, tmp_path):
    a, b = cluster.nodes
    # the reference: the same scenario on a single ejabberd (the agents' accounts are the same
    # JIDs with other passwords, so not on the cluster itself)
    single = start_server("ejabberd", tmp_path / "single-xmpp", registration=True)
    try:
        one = run_scenario(DEMO, tmp_path / "one", server=server(single), timeout=600, out=lambda line: None)
    finally:
        stop_server(single.run_dir)
    assert one.outcome == "done", one
    # prosumers on node A, the aggregator and the market on node B: every offer, ack, assignment,
    # measurement and bill between them crosses the cluster
    split = run_scenario(DEMO, tmp_path / "split", server=server(a, {"prosumers-0": a, "aggregators": b, "market": b}),
                         timeout=600, out=lambda line: None)
    assert split.outcome == "done", split
    assert (tmp_path / "split" / "summary.json").read_text() == (tmp_path / "one" / "summary.json").read_text()
