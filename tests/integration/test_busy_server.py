"""A server that is behind is not a dead link (agents/keepalive.py): at 10,000 prosumers the
noon burst kept Prosody's loop minutes behind, every agent's ping went unanswered past the cut,
and the agents cut all 10,000 links at once (bench/RESULTS.md). Here the server process is
stopped (SIGSTOP: its kernel still acknowledges what the agent sends, as a starved server's
does) past the ping and the cut time; the agent waits and keeps its link."""

from __future__ import annotations

import os
import signal

import pytest

from tests.integration.test_presence import eventually
from vmenergy.agents import ProsumerAgent, ServerAddress
from vmenergy.agents.keepalive import LinkPolicy

pytestmark = pytest.mark.integration


async def test_an_agent_keeps_its_link_to_a_server_that_stops_answering_but_still_receives(fresh_xmpp_server, tmp_path):
    info = fresh_xmpp_server("prosody")
    addr = ServerAddress(info.host, info.port, info.ca_file)
    home = ProsumerAgent(info.jid("busy-home"), "pw-home", aggregator=info.jid("busy-agg"), offers=[],
                         server=addr, tick=0.2, store_path=tmp_path / "home.sqlite")
    await home.start(auto_register=True)
    watch = home.keepalive
    busy: list[float] = []
    cuts: list[float] = []
    cut, report = watch.cut, watch.busy

    def cut_noted() -> None:
        cuts.append(watch.clock())
        cut()

    def busy_noted() -> None:
        busy.append(watch.clock())
        if report is not None:
            report()

    watch.cut, watch.busy = cut_noted, busy_noted
    # a ping after half a second of silence, overdue a second later; hung only after two minutes
    watch.policy = LinkPolicy(ping_after=0.5, cut_after=1.0, hung_after=120.0)
    stopped = False
    try:
        await eventually(lambda: home.link_up, what="link up")
        watch.start()
        os.kill(info.pid, signal.SIGSTOP)
        stopped = True
        await eventually(lambda: bool(busy), timeout=30, what="the watch judging the server busy")
        assert cuts == [] and home.link_up
        sent = watch.policy.ping_sent
        assert sent is not None and watch.clock() - sent >= watch.policy.cut_after  # the old rule's cut time
        os.kill(info.pid, signal.SIGCONT)
        stopped = False
        # the server reads the ping it held and answers: heard, nothing owed
        await eventually(lambda: watch.policy.ping_sent is None or watch.policy.ping_sent > sent, timeout=30,
                         what="the late answer")
        assert cuts == [] and home.link_up
    finally:
        if stopped:
            os.kill(info.pid, signal.SIGCONT)
        await home.stop()


def test_the_private_prosody_accepts_a_long_queue_of_connections_and_runs_at_a_raised_priority(fresh_xmpp_server):
    """10,000 agents connecting: Prosody's default listen queue of 128 was full most of the time
    (each refused SYN costs the client a second or more), and behind a dozen agent processes the
    server got a quarter of a core. ``ss`` shows a listening socket's queue limit as Send-Q."""
    import shutil
    import subprocess

    from vmenergy.runtime.servers import process

    if not shutil.which("ss"):
        pytest.skip("ss (iproute2) is not installed")
    info = fresh_xmpp_server("prosody")
    out = subprocess.run(["ss", "-ltnH", f"sport = :{info.port}"], capture_output=True, text=True, check=True).stdout
    limits = {int(line.split()[2]) for line in out.splitlines() if line.strip()}
    assert limits == {min(1024, int(open("/proc/sys/net/core/somaxconn").read()))}
    if os.geteuid() == 0:  # allowed to raise it (CAP_SYS_NICE): it was raised
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, info.pid) == max(-20, ours + process.SERVER_NICENESS)
