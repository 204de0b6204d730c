"""Same scenario and seed, same results: whatever the machine's load and however the prosumers
are split into processes (virtual time). Each run starts its own private Prosody, as `vmenergy
run` does, so the runs use the same JIDs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import run_two_shards
from tests.load import busy_cpus
from vmenergy.runtime.orchestrator import run_scenario
from vmenergy.runtime.servers import check_kind

pytestmark = pytest.mark.integration

DEMO = ROOT / "scenarios" / "demo.toml"


@pytest.fixture(autouse=True)
def _prosody():
    ok, reason = check_kind("prosody")
    if not ok:
        pytest.skip(reason)


def run(scenario: Path, run_dir: Path) -> str:
    """summary.json, which must be the same bytes between runs (wall-clock figures are in
    timings.json)."""
    run_scenario(scenario, run_dir, timeout=600, out=lambda line: None)
    return (run_dir / "summary.json").read_text()


def test_demo_gives_the_same_results_on_an_idle_and_on_a_busy_machine(tmp_path):
    idle = run(DEMO, tmp_path / "idle")
    with busy_cpus():
        busy = run(DEMO, tmp_path / "busy")
    assert busy == idle
    summary = json.loads(idle)
    assert summary["offers"]["by_prosumers"] == {"settled": 26}  # and the demo completes
    assert summary["outcome"]["finished"] and summary["reconciled"]["offers"]["ok"]


def test_prosumers_in_one_or_four_processes_give_the_same_results(tmp_path):
    text = DEMO.read_text()
    assert "processes = 1" in text
    one = tmp_path / "one.toml"
    four = tmp_path / "four.toml"
    # templates are found relative to the scenario file or scenarios/
    one.write_text(text)
    four.write_text(text.replace("processes = 1", "processes = 4"))
    assert run(one, tmp_path / "run1") == run(four, tmp_path / "run4")


def test_two_shards_give_the_same_results_as_one_run(tmp_path):
    """`vmenergy run --shard 1/2` and `--shard 2/2 --join FILE`, as two commands (here on one
    machine, against the private server of shard 1), give the report of a single run."""
    single = run(DEMO, tmp_path / "single")
    second = run_two_shards([str(DEMO)], [str(DEMO), "--out", str(tmp_path / "s2")], tmp_path / "s1")
    assert "sent 3 agent stores" in second.stdout
    assert stat.S_IMODE((tmp_path / "s1" / "join.json").stat().st_mode) == 0o600  # it holds the run's token
    assert (tmp_path / "s1" / "summary.json").read_text() == single


def test_aggregators_in_one_process_or_each_in_its_own_give_the_same_results(tmp_path):
    """The million-device shape runs each leaf aggregator in its own process (``part``); a copy
    with all five aggregators in one process must report the same bytes."""
    from tests.integration.test_million_shape import MILLION, scaled

    text = scaled(MILLION.read_text(), foas=1, households=12).replace('"inputs/', f'"{ROOT}/scenarios/inputs/')
    own = tmp_path / "own.toml"
    one = tmp_path / "one.toml"
    own.write_text(text)
    shared = "".join(line for line in text.splitlines(keepends=True) if not line.startswith("part = "))
    assert shared.count("\n") == text.count("\n") - 4  # the four leaves' parts, nothing else
    one.write_text(shared)
    assert run(own, tmp_path / "run-own") == run(one, tmp_path / "run-one")
