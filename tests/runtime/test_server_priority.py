"""The private server runs at a higher priority than the agents (runtime/servers/process.py):
every agent's traffic passes through its one process, and at 10,000 prosumers on 2 cores it
was starved behind the agent processes (bench/RESULTS.md)."""

from __future__ import annotations

import os
import sys

import pytest

from vmenergy.runtime.servers import process


def _can_raise() -> bool:
    """Whether this process may lower a niceness (root or CAP_SYS_NICE)."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    if ours == -20:
        return False
    try:
        os.setpriority(os.PRIO_PROCESS, 0, ours - 1)
    except OSError:
        return False
    os.setpriority(os.PRIO_PROCESS, 0, ours)
    return True


def _spawn_waiting(tmp_path):
    # a child that waits on its stdin-less sleep: the niceness is read while it lives
    return process.spawn([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path)


@pytest.mark.skipif(not _can_raise(), reason="raising a priority needs root or CAP_SYS_NICE")
def test_the_server_child_runs_at_a_raised_priority_where_the_os_allows_it(tmp_path):
    proc = _spawn_waiting(tmp_path)
    try:
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == max(-20, ours + process.SERVER_NICENESS)
        assert process.priority_note(proc.pid) is None
        # under autogroup scheduling its session's group is weighed as much (else the niceness
        # only counts against the server itself: it starts its own session)
        group = f"/proc/{proc.pid}/autogroup"
        if os.path.exists(group):
            assert open(group).read().split()[-1] == str(process.SERVER_NICENESS)
    finally:
        proc.kill()
        proc.wait()


def test_a_server_at_the_agents_priority_is_reported(tmp_path):
    # a process at our own niceness (this test process itself) is what a server looks like
    # when the OS refused the raise
    note = process.priority_note(os.getpid())
    if os.getpriority(os.PRIO_PROCESS, 0) == -20:
        assert note is None
    else:
        assert note is not None and "CAP_SYS_NICE" in note


def _recorded(tmp_path, pid: int):
    from vmenergy.runtime.servers.info import ServerInfo, write_info

    tmp_path.mkdir()
    write_info(ServerInfo(kind="prosody", domain="localhost", host="127.0.0.1", port=1, pid=pid, ca_file="",
                          log_path="", run_dir=str(tmp_path)), tmp_path)
    return tmp_path


def test_a_run_says_once_when_its_server_has_the_agents_priority_and_only_for_its_own_server(tmp_path):
    """The run's user reads the note on the console (`vmenergy run`), once however many nodes;
    an external server (no pid of ours) is never judged."""
    from types import SimpleNamespace

    from vmenergy.runtime.orchestrator import Swarm

    if os.getpriority(os.PRIO_PROCESS, 0) == -20:
        pytest.skip("this process is at the highest priority: no server can be above it")
    a, b = _recorded(tmp_path / "a", os.getpid()), _recorded(tmp_path / "b", os.getpid())
    own = SimpleNamespace(_own_server=True, _server_dirs={"xmpp-node-a": a, "xmpp-node-b": b})
    (note,) = Swarm.priority_notes(own)
    assert "CAP_SYS_NICE" in note
    assert Swarm.priority_notes(SimpleNamespace(_own_server=False, _server_dirs={"xmpp-server": a})) == []
    external = _recorded(tmp_path / "external", 0)
    assert Swarm.priority_notes(SimpleNamespace(_own_server=True, _server_dirs={"xmpp-server": external})) == []
