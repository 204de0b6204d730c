"""A whole lifecycle on a real server: a market, two aggregators and 40 prosumers, the prosumers
in a process of their own. Every offer must be acked, aggregated, cleared or planned,
disaggregated, assigned, executed, measured and billed; every assignment feasible; bills
reconciled. Also: the aggregators are killed mid-lifecycle and restarted, and the run completes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.integration.conftest import server_dict
from tests.load import busy_cpus
from vmenergy import cli
from vmenergy.runtime.orchestrator import Swarm

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _busy_machine():
    """Every swarm test runs while all cores are kept busy by another program: scenario time is
    coordinated, so the results must not depend on it."""
    with busy_cpus():
        yield

SCENARIO = """
[scenario]
name = "{name}"
start = "2026-11-22T18:00:00Z"
until = "2026-11-24T00:00:00Z"  # the market bills a day-ahead session after its delivery
{clock}
seed = 11

{market}

[[aggregator]]
name = "{name}-north"
upstream = "{upstream}"
cycle = 900

[[aggregator]]
name = "{name}-south"
upstream = "{upstream}"
cycle = 900

[[prosumers]]
count = 20
name = "{name}-n{{i}}"
aggregator = "{name}-north"
offers = ["examples/ev-overnight.json", "examples/dishwasher-xor.json", "examples/washer-implicit.json"]
processes = 1

[[prosumers]]
count = 20
name = "{name}-s{{i}}"
aggregator = "{name}-south"
offers = ["examples/ev-overnight.json", "examples/dishwasher-xor.json"]
processes = 1
"""

MARKET = """
[market]
name = "{name}-market"
mechanism = "many-to-many"
session_every = 3600
gate_closure = 1800
liquidity.sell = {{ volume = 200.0, prices = [0.08, 0.08, 0.08, 0.08, 0.08, 0.09, 0.18, 0.24, 0.22, 0.16, 0.14, 0.12,
                                              0.12, 0.13, 0.15, 0.18, 0.26, 0.32, 0.34, 0.30, 0.22, 0.16, 0.12, 0.10] }}
"""


#: Upper bounds of engine steps per offer over a whole lifecycle (measured: see bench/RESULTS.md).
STEPS_PER_OFFER = {"prosumer": 10, "aggregator": 10}  # 6.6 and 6.0-6.8 on 2026-12-07


def scenario(tmp_path: Path, name: str, upstream: str = "market", clock: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    # names are unique per test: accounts live on a server shared by the whole session
    market = MARKET.format(name=name) if upstream == "market" else ""
    path.write_text(SCENARIO.format(name=name, clock=clock, upstream=upstream, market=market))
    return path


def check_complete(report_dir: Path, n_offers: int) -> dict:
    data = json.loads((report_dir / "summary.json").read_text())
    offers, recon = data["offers"], data["reconciled"]
    assert offers["by_prosumers"] == {"settled": n_offers}, offers
    assert offers["by_aggregators"] == {"settled": n_offers}, offers
    assert recon["offers"]["ok"], recon["offers"]
    assert offers["assigned"] == n_offers
    assert recon["assignments_feasible"]["ok"], recon["assignments_feasible"]
    assert offers["measured"] == n_offers
    assert recon["bills"]["received"] >= 40 and recon["bills"]["ok"], recon["bills"]
    assert data["outcome"]["finished"], data["outcome"]
    for a in data["aggregators"]:
        assert a["unanswered_messages"] == 0
        # every offer went through an aggregate, or was scheduled on its own (with the reason logged)
        assert a["members"] + a["scheduled_alone"] >= sum(a["offers"].values())
    # anyone can re-check every final schedule against its offer from the run folder alone
    out = io.StringIO()
    assert cli.main(["validate", str(report_dir / "offers.jsonl"), str(report_dir / "schedules.jsonl")], out) == 0, \
        out.getvalue()[-2000:]
    return data


@pytest.mark.parametrize("upstream", ["market", "plan"])
def test_forty_prosumers_full_lifecycle(real_xmpp_server, tmp_path, upstream):
    if upstream == "market":
        pytest.importorskip("vmenergy.protocol.market")
    name = f"life-{upstream}-{real_xmpp_server.kind}"
    swarm = Swarm(scenario(tmp_path, name, upstream), tmp_path / "run", server=server_dict(real_xmpp_server),
                  out=lambda line: None)
    try:
        plan = swarm.start()
        parts = set(plan.parts)
        assert {"aggregators", "prosumers-0"} <= parts  # prosumers run in a process of their own
        prog = swarm.wait(timeout=240)
        assert prog.done, prog.line()
    finally:
        swarm.stop()
    swarm.report()
    data = check_complete(tmp_path / "run", 100)
    work = json.loads((tmp_path / "run" / "timings.json").read_text())["work"]
    print(f"work per offer ({upstream}, {real_xmpp_server.kind}):", {k: round(v / 100, 2) for k, v in work.items()})
    # presence carries availability only: each prosumer hears its aggregator come online, and no
    # status change of a busy aggregator reaches it (there was one per aggregator update before)
    assert work["prosumer_presence_changes"] <= 2 * 40 and work["prosumer_presence_stanzas"] <= 4 * 40, work
    # engine steps per offer's lifecycle, bounded (offer, ack, assignment, execution, metering,
    # measurement ack, bill and the timed steps between them)
    assert work["prosumer_steps"] <= STEPS_PER_OFFER["prosumer"] * 100, work
    assert work["aggregator_steps"] <= STEPS_PER_OFFER["aggregator"] * 100, work
    # the steps of one event-loop turn share one SQLite transaction
    assert work["aggregator_commits"] < work["aggregator_steps"], work
    # the drivers count the protocol messages between the run's agents by role (what the scale
    # ladder's plain-XMPP reference exchanges): every offer went up, and its ack at least came down
    assert work["messages_prosumer_to_aggregator"] >= 100 and work["messages_aggregator_to_prosumer"] >= 100, work
    if upstream == "market":
        (m,) = data["market"]["markets"]
        assert m["bids"] >= 2 and m["cleared"] >= 1


@pytest.mark.parametrize("upstream", ["plan", "market"])
def test_aggregators_killed_and_restarted_mid_lifecycle(prosody_server, tmp_path, upstream):
    """With a market, aggregates may be waiting for their clearing when the aggregators die: the
    restarted aggregators rebuild them from their stores and disaggregate the results."""
    swarm = Swarm(scenario(tmp_path, f"restart-{upstream}", upstream), tmp_path / "run",
                  server=server_dict(prosody_server), out=lambda line: None)
    try:
        swarm.start()
        # mid-lifecycle: every offer answered, some assigned and being executed, most not yet
        # settled (with virtual time the coordinator holds time at the first instant where it is so)
        def middle(p) -> bool:
            c = p.prosumer_offers
            return (c.get("initial", 0) == 0 and c.get("offered", 0) == 0 and c.get("not started", 0) == 0
                    and c.get("assigned", 0) >= 10
                    and c.get("settled", 0) <= 50)

        prog = swarm.wait(timeout=120, every=0.3, until=middle)
        assert middle(prog), prog.line()
        swarm.kill("aggregators")  # scenario time stands still until the part is back
        swarm.restart("aggregators")
        prog = swarm.wait(timeout=240)
        assert prog.done, prog.line()
    finally:
        swarm.stop()
    swarm.report()
    check_complete(tmp_path / "run", 100)


def test_accelerated_clock_starts_when_every_agent_is_up_and_runs_on_the_wall_clock(prosody_server, tmp_path):
    """The old clock stays for demos that should feel live: time starts once every agent is
    ready (not after a fixed wait) and then follows the wall clock. Its results depend on the
    machine's speed, so this only checks that time runs and the agents talk."""
    path = scenario(tmp_path, "accel", "plan", clock='clock = "accelerated"\nspeed = 600')
    swarm = Swarm(path, tmp_path / "run", server=server_dict(prosody_server), out=lambda line: None)
    try:
        plan = swarm.start()
        assert plan.clock["mode"] == "accelerated"
        prog = swarm.wait(timeout=120, every=0.2,
                          until=lambda p: p.prosumer_offers.get("accepted", 0) + p.prosumer_offers.get("assigned", 0) >= 40)
        assert prog.agents_ready == prog.agents == 42
        assert prog.sim_time > plan.start
    finally:
        swarm.stop()
