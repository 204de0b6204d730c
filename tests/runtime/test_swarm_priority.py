"""The many prosumer processes yield the CPU to the few that a round waits on (aggregators,
market, coordinator), without privilege: runtime/priority.py. At 10,000 prosumers on 2 cores
the aggregators' LP threads waited in the run queue behind them (bench/RESULTS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vmenergy.runtime import priority
from vmenergy.runtime.priority import SWARM_NICENESS, lower_own_priority, part_niceness, spawn_options


def test_a_process_of_prosumers_only_yields():
    assert part_niceness(["prosumer"] * 3) == SWARM_NICENESS > 0


@pytest.mark.parametrize("roles", [["aggregator"], ["prosumer", "aggregator"], ["market"], ["dso"],
                                   ["prosumer", "market"], []])
def test_a_process_holding_any_agent_a_round_waits_on_does_not_yield(roles):
    assert part_niceness(roles) == 0


def test_lowering_by_a_negative_amount_is_refused_naming_the_argument():
    with pytest.raises(ValueError, match="by: -1"):
        lower_own_priority(-1)


_CHILD = """
import json, os, sys
from vmenergy.runtime.priority import lower_own_priority, own_priority
before = own_priority().group
p = lower_own_priority(int(sys.argv[1]))
print(json.dumps({"niceness": p.niceness, "group": p.group, "group_before": before,
                  "leader": p.session_leader, "session": os.getsid(0), "pgid": os.getpgid(0)}))
"""


@pytest.mark.parametrize("content", ["", "\n", "/autogroup-7 nice\n", "garbage"])
def test_a_session_outside_any_autogroup_reads_as_no_group(tmp_path, monkeypatch, content):
    """The kernel prints nothing for a session that never called setsid() (a container's init and
    everything it starts without one, as on the CI runner): its tasks sit in the root group, so
    there is no group niceness to read or lower."""
    path = tmp_path / "autogroup"
    path.write_text(content)
    monkeypatch.setattr(priority, "AUTOGROUP", str(path))
    assert priority.own_priority().group is None
    assert lower_own_priority(0).group is None


def test_a_session_group_reads_as_its_niceness(tmp_path, monkeypatch):
    path = tmp_path / "autogroup"
    path.write_text("/autogroup-123 nice 10\n")
    monkeypatch.setattr(priority, "AUTOGROUP", str(path))
    assert priority.own_priority().group == 10


def _child(by: int, *, own_session: bool = False, **options) -> dict:
    options.setdefault("start_new_session", own_session)
    out = subprocess.run([sys.executable, "-c", _CHILD, str(by)], capture_output=True, text=True, check=True,
                         **options)
    return json.loads(out.stdout)


def _expected(by: int) -> int:
    return min(priority.MAX_NICENESS, os.getpriority(os.PRIO_PROCESS, 0) + by)


def test_a_session_leader_lowers_its_niceness_and_its_session_group():
    """As a swarm process does (started with start_new_session): under autogroup scheduling only
    the session group's niceness weighs it against the other processes."""
    got = _child(SWARM_NICENESS, own_session=True)
    assert got["niceness"] == _expected(SWARM_NICENESS)
    if got["group_before"] is not None:
        assert got["group"] == min(priority.MAX_NICENESS, got["group_before"] + SWARM_NICENESS)


def test_a_process_in_someone_elses_session_leaves_the_shared_group_alone():
    # its session group is this test run's: lowering it would slow the test run, not just the child
    got = _child(SWARM_NICENESS, own_session=False)
    assert got["niceness"] == _expected(SWARM_NICENESS)
    if got["group_before"] is not None:
        assert got["group"] == got["group_before"]


def test_nothing_to_yield_changes_nothing():
    got = _child(0, own_session=True)
    assert got["niceness"] == os.getpriority(os.PRIO_PROCESS, 0)
    if got["group_before"] is not None:
        assert got["group"] == got["group_before"]


def test_a_yielding_process_shares_the_runs_session_in_a_process_group_of_its_own():
    """Under autogroup scheduling a session is one CPU share: the many prosumer processes share
    the run's, and a Ctrl-C at the run's terminal (sent to its foreground process group) does
    not reach them directly."""
    got = _child(SWARM_NICENESS, **spawn_options(["prosumer"]))
    assert got["session"] == os.getsid(0) and not got["leader"]
    assert got["pgid"] != os.getpgid(0)
    assert got["niceness"] == _expected(SWARM_NICENESS)
    if got["group_before"] is not None:
        assert got["group"] == got["group_before"]  # the run's group is left as it was


@pytest.mark.parametrize("roles", [["aggregator"], ["market"], ["prosumer", "aggregator"]])
def test_a_process_a_round_waits_on_leads_a_session_of_its_own(roles):
    got = _child(part_niceness(roles), **spawn_options(roles))
    assert got["leader"] and got["session"] != os.getsid(0)
    assert got["niceness"] == os.getpriority(os.PRIO_PROCESS, 0)
