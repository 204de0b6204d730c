"""Finding 6 of the hostile-input probe (issue 16), the agents' side: after the XMPP server was
killed, an agent's stream was gone for good and nothing noticed (the process stayed alive). Now
an agent reconnects with backoff when its stream drops, resumes or starts a new session, tells
whoever watches its link, and the protocol carries on."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from tests.integration.test_presence import eventually, future_offer
from vmenergy.agents import AggregatorAgent, ProsumerAgent, ServerAddress
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.runtime.clock import RealClock
from vmenergy.runtime.servers import server_status, start_server
from vmenergy.runtime.servers.process import port_in_use

pytestmark = pytest.mark.integration


async def test_agents_reconnect_after_their_server_is_killed_and_restarted_on_its_port(fresh_xmpp_server, tmp_path):
    info = fresh_xmpp_server("prosody")
    addr = ServerAddress(info.host, info.port, info.ca_file)
    agg_jid, home_jid = info.jid("rc-agg"), info.jid("rc-home")
    agg = AggregatorAgent(agg_jid, "pw-agg", config=AggregatorConfig(cycle=10_000, lead=60), server=addr,
                          clock=RealClock(), tick=0.2, store_path=tmp_path / "agg.sqlite")
    home = ProsumerAgent(home_jid, "pw-home", aggregator=agg_jid, offers=[(0, future_offer("rc-1", home_jid))],
                         server=addr, tick=0.2, store_path=tmp_path / "home.sqlite")
    links: list[tuple[str, bool]] = []
    for a in (agg, home):
        a.link_watchers.append(lambda agent, up: links.append((str(agent.jid), up)))
    await agg.start(auto_register=True)
    await home.start(auto_register=True)
    try:
        await eventually(lambda: agg.engine.counts().get("accepted") == 1, what="first offer accepted")
        os.kill(info.pid, signal.SIGKILL)
        await eventually(lambda: not agg.link_up and not home.link_up, what="both links down")
        assert agg.down_for() > 0 and (agg_jid, False) in links and (home_jid, False) in links
        assert not server_status(info.run_dir).running
        # its clients' sockets linger in TIME_WAIT; the port still counts as free (it was refused
        # for 54 s when the probe bound without SO_REUSEADDR), so the server restarts on it at once
        assert not port_in_use(info.port)
        again = await asyncio.to_thread(start_server, "prosody", info.run_dir, info.domain, info.port,
                                        None, True)
        assert again.port == info.port
        await eventually(lambda: agg.link_up and home.link_up, timeout=60, what="both links back")
        assert links.count((agg_jid, True)) >= 1 and links[-1][1] is True
        # the protocol carries on over the new sessions
        await home.handle(lambda now: home.engine.add_offer(future_offer("rc-2", home_jid), now, now))
        await eventually(lambda: agg.engine.counts().get("accepted") == 2, timeout=30, what="offer after restart")
    finally:
        await home.stop()
        await agg.stop()
