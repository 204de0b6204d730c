"""What an agent keeps after its messages went out (issue 15, the 10,000-prosumer rung): nothing
of a sent stanza once the server has it. slixmpp kept the last (up to four) stanzas a prosumer
sent in its XEP-0198 queue until its next burst, hours later (vmenergy/agents/stream_acks.py)."""

from __future__ import annotations

import pytest

from tests.integration.test_presence import eventually, future_offer
from vmenergy.agents import AggregatorAgent, ProsumerAgent, ServerAddress
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.runtime.clock import RealClock

pytestmark = pytest.mark.integration


def _unacked(agent) -> int:
    return len(agent.client.plugin["xep_0198"].unacked_queue)


async def test_a_sent_stanza_leaves_the_stream_management_queue_once_the_server_has_it(prosody_server, tmp_path):
    addr = ServerAddress(prosody_server.host, prosody_server.port, prosody_server.ca_file)
    agg_jid, home_jid = prosody_server.jid("sm-agg"), prosody_server.jid("sm-home")
    agg = AggregatorAgent(agg_jid, "pw-agg", config=AggregatorConfig(cycle=10_000, lead=60), server=addr,
                          clock=RealClock(), tick=0.2, store_path=tmp_path / "agg.sqlite")
    home = ProsumerAgent(home_jid, "pw-home", aggregator=agg_jid, offers=[(0, future_offer("sm-1", home_jid))],
                         server=addr, tick=0.2, store_path=tmp_path / "home.sqlite")
    await agg.start(auto_register=True)
    await home.start(auto_register=True)
    try:
        assert home.client.plugin["xep_0198"].enabled_out, "the server offers stream management"
        await eventually(lambda: agg.engine.counts().get("accepted") == 1, what="offer accepted")
        await eventually(lambda: _unacked(home) == 0 and _unacked(agg) == 0, what="queues empty")
        # one stanza more, fewer than slixmpp's window of 5: it too leaves the queue (it stayed)
        await home.handle(lambda now: home.engine.add_offer(future_offer("sm-2", home_jid), now, now))
        await eventually(lambda: agg.engine.counts().get("accepted") == 2, what="second offer accepted")
        await eventually(lambda: _unacked(home) == 0 and _unacked(agg) == 0, what="queues empty again")
    finally:
        await home.stop()
        await agg.stop()
