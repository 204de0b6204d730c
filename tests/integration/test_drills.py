"""Fault drills (issue 16) on a small scenario day, one per kind: kill -9 of a prosumer process,
the aggregators, the market and the XMPP server; a network that delays, drops and cuts; a full
disk under the stores. Each must end with every offer final, nothing lost, no exception from
outside VME in the logs, and the part that died restarted by the run's own supervision.
The long drills (scenarios/drill-day.toml, every kind) are marked slow; ``make drills`` runs them."""

from __future__ import annotations

import io

import pytest

from tests.conftest import ROOT
from vmenergy import cli
from vmenergy.runtime.drill import KINDS
from vmenergy.runtime.drill.disk import can_mount
from vmenergy.runtime.drill.run import UNDISTURBED, run_drill

pytestmark = pytest.mark.integration

SCENARIO = """
[scenario]
name = "drill-small"
start = "2026-11-22T18:00:00Z"
until = "2026-11-24T04:00:00Z"
seed = 3

[server]
kind = "prosody"

[market]
name = "ds-market"
mechanism = "many-to-many"
session_every = 3600
gate_closure = 1800
liquidity.sell = { volume = 50.0, prices = [0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.18, 0.24, 0.22, 0.16, 0.14, 0.12,
                                            0.12, 0.13, 0.15, 0.18, 0.26, 0.32, 0.34, 0.30, 0.22, 0.16, 0.12, 0.10] }

[[aggregator]]
name = "ds-agg"
upstream = "market"
cycle = 900

[[prosumers]]
count = 8
name = "ds-house{i}"
aggregator = "ds-agg"
offers = ["examples/ev-overnight.json", "examples/dishwasher-xor.json"]
processes = 2
"""

#: The part each kill drill should find restarted in the report.
RESTARTED = {"prosumer": "prosumers-", "aggregator": "aggregators", "market": "market", "server": "xmpp-server"}


@pytest.fixture(scope="module")
def scenario_and_undisturbed(tmp_path_factory):
    """The small scenario, and what its run decides when nothing disturbs it."""
    folder = tmp_path_factory.mktemp("drill-small")
    path = folder / "drill-small.toml"
    path.write_text(SCENARIO)
    reference = run_drill(path, UNDISTURBED, folder / "undisturbed", seed=1, timeout=400)
    assert reference.ok and reference.items is not None and reference.items.lost == 0, reference.line()
    return path, reference.result


@pytest.mark.parametrize("kind", KINDS)
def test_a_short_drill_loses_nothing_and_decides_what_the_undisturbed_run_decides(tmp_path, kind,
                                                                                  scenario_and_undisturbed):
    if kind == "disk" and (why := can_mount()):
        pytest.skip(why)
    path, undisturbed = scenario_and_undisturbed
    result = run_drill(path, kind, tmp_path / "run", seed=1, timeout=400)
    told = "\n".join([result.line(), *result.notes, *(f"{e.log}: {e.exception} at {e.where}" for e in result.exceptions)])
    assert result.fault, told  # the fault came while there was work to disturb
    assert result.items is not None and result.items.offered == 16, told
    assert result.items.lost == 0 and result.items.finished, told
    assert result.items.assigned == result.items.measured, told
    assert not result.foreign_exceptions, told
    assert result.recover_seconds is not None, told
    assert result.ok, told
    # coordinated time: a full recovery leaves the same summary as no fault at all
    assert result.result == undisturbed, told
    if kind in RESTARTED:
        assert any(r.startswith(RESTARTED[kind]) for r in result.restarts), told
    else:
        assert not result.restarts, told  # nothing died: the agents rode it out
    if kind == "network":
        assert any("streams cut" in n and not n.startswith("proxy: 0 bytes") for n in result.notes), told


@pytest.mark.slow
def test_every_drill_on_the_drill_day_loses_nothing(tmp_path):
    out = io.StringIO()
    code = cli.main(["drill", str(ROOT / "scenarios" / "drill-day.toml"), "--seed", "7", "--out", str(tmp_path)], out)
    assert code == 0, out.getvalue()
    assert "items lost 0" in out.getvalue(), out.getvalue()
