"""A scenario run on its own private server, disturbed the way the hostile-input probe (issue 16)
disturbed it: a prosumer process and the XMPP server are killed with SIGKILL in the middle of the
day. Each is restarted (the process from its agents' stores, the server on its port), the run
goes on to the end, nothing is lost, and the report says what was restarted and when. The run
folder is readable by its owner only, and a stranger on the same server can change nothing."""

from __future__ import annotations

import json
import os
import signal
import stat

import pytest

from tests.integration.test_swarm import check_complete
from vmenergy.runtime.orchestrator import Swarm
from vmenergy.runtime.servers import read_info, register_accounts

pytestmark = pytest.mark.integration

SCENARIO = """
[scenario]
name = "hostile"
start = "2026-11-22T18:00:00Z"
until = "2026-11-23T16:00:00Z"
seed = 5

[server]
kind = "prosody"

[[aggregator]]
name = "h-agg"
upstream = "plan"
cycle = 900

[[prosumers]]
count = 20
name = "h-house{i}"
aggregator = "h-agg"
offers = ["examples/ev-overnight.json", "examples/dishwasher-xor.json"]
processes = 2
"""


def middle(p) -> bool:
    c = p.prosumer_offers
    return c.get("not started", 0) == 0 and c.get("offered", 0) == 0 and c.get("assigned", 0) >= 5 \
        and c.get("settled", 0) <= 30


def test_a_run_survives_a_killed_prosumer_process_and_a_killed_server(tmp_path):
    path = tmp_path / "hostile.toml"
    path.write_text(SCENARIO)
    run_dir = tmp_path / "run"
    swarm = Swarm(path, run_dir, out=lambda line: None)
    try:
        swarm.start()
        assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
        prog = swarm.wait(timeout=180, every=0.3, until=middle)
        assert middle(prog), prog.line()
        # a stranger with an account on the same server (its operator made one) is refused
        info = read_info(run_dir / "xmpp")
        assert info is not None and not info.registration
        register_accounts(info, [("stranger", "stranger-pw")])
        # the failures: a prosumer process and the server die on their own (no Swarm.kill)
        os.kill(swarm.procs["prosumers-1"].pid, signal.SIGKILL)
        os.kill(info.pid, signal.SIGKILL)
        prog = swarm.wait(timeout=300)
        assert prog.done, prog.line()
    finally:
        swarm.stop()
    swarm.report()
    data = check_complete(run_dir, 40)
    restarted = [r["part"] for r in data["outcome"]["restarts"]]
    assert sorted(restarted) == ["prosumers-1", "xmpp-server"], data["outcome"]
    # no secret in a file others can read: the folder is the owner's, and so is every file
    # holding a password or the run's token, and every store
    plan = json.loads((run_dir / "plan.json").read_text())
    secrets = [a["password"].encode() for a in plan["agents"]] + [plan["coordinator"]["token"].encode()]
    for f in run_dir.rglob("*"):
        if f.is_file() and (f.suffix == ".sqlite" or any(x in f.read_bytes() for x in secrets)):
            assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f
    agg = next(a for a in plan["agents"] if a["role"] == "aggregator")
    assert len(agg["config"]["enrolment"]) == 20 and "stranger@localhost" not in agg["config"]["enrolment"]
