"""The short way a protocol message takes through an agent's client (agents/received.py) skips
matching it against every slixmpp handler: on connected agents, with every plugin SPADE and VME
load, a protocol message matches slixmpp's message handler alone, so nothing is skipped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.integration.test_presence import eventually
from tests.integration.test_resume_dead_link import agent_pair
from vmenergy.agents.base import protocol_stanza
from vmenergy.protocol.messages import Ack, OfferMessage
from vmenergy.wire.messages import summary

pytestmark = pytest.mark.integration


async def test_on_connected_agents_a_protocol_message_matches_slixmpps_message_handler_alone(prosody_server, tmp_path):
    agg, home = agent_pair(prosody_server, tmp_path, "rp")
    agg_jid, home_jid = str(agg.jid), str(home.jid)
    fo = home.engine.ledger.get("offers", "rp-0").offer
    await agg.start(auto_register=True)
    await home.start(auto_register=True)
    try:
        # the offer went the short way both ways
        await eventually(lambda: home.engine.counts().get("accepted") == 1, what="offer accepted")
        for agent, msg, sender in ((agg, OfferMessage("insert", fo.id, fo), home_jid),
                                   (home, Ack("flexoffer", fo.id, "accepted", None, 0), agg_jid)):
            client = agent.client
            sent = protocol_stanza(client, str(agent.jid), sender, summary(msg), msg)
            stanza = client._build_stanza(ET.fromstring(ET.tostring(sent.xml)))
            assert [h.name for h in client._XMLStream__handlers if h.match(stanza)] == ["IM"]
    finally:
        await home.stop()
        await agg.stop()
