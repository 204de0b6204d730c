"""XEP-0198 with the ack window VME chose (the agents' client asks for an ack per
``smacks.WINDOW`` stanzas and at the end of a burst): asking less often must not lose anything.
Stanzas sent into a link that silently drops everything are resent when the cut stream resumes,
in either direction, each once, with the protocol's own resend switched off so only stream
management can deliver them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Optional

import pytest

from tests.integration.test_presence import eventually, future_offer
from vmenergy.agents import AggregatorAgent, ProsumerAgent, ServerAddress, smacks
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.protocol.messages import OfferMessage
from vmenergy.runtime.clock import RealClock
from vmenergy.runtime.drill.proxy import Impairment, LossyProxy
from vmenergy.wire.messages import encode_element

pytestmark = pytest.mark.integration

#: Offers sent while the link is dead: fewer than the client's ack window (and the ack requests
#: go into the dead link too), so nothing but the resumption can tell the sender they never arrived.
HELD = 3


def agent_pair(info, tmp_path, name: str, agg_server: Optional[ServerAddress] = None,
               home_server: Optional[ServerAddress] = None):
    """An aggregator that plans only when told (a long cycle) and a prosumer with one offer
    (``<name>-0``) for it, not started; both at ``info``'s server unless told otherwise."""
    addr = ServerAddress(info.host, info.port, info.ca_file)
    agg_jid, home_jid = info.jid(f"{name}-agg"), info.jid(f"{name}-home")
    agg = AggregatorAgent(agg_jid, "pw-agg", config=AggregatorConfig(cycle=10_000, lead=60),
                          server=agg_server or addr, clock=RealClock(), tick=0.2, store_path=tmp_path / "agg.sqlite")
    home = ProsumerAgent(home_jid, "pw-home", aggregator=agg_jid, offers=[(0, future_offer(f"{name}-0", home_jid))],
                         server=home_server or addr, tick=0.2, store_path=tmp_path / "home.sqlite")
    return agg, home


@pytest.mark.parametrize("cut", ["prosumer", "aggregator"])
async def test_what_was_sent_into_a_dead_link_arrives_once_after_the_stream_resumes(prosody_server, tmp_path, cut):
    info = prosody_server
    proxy = LossyProxy((info.host, info.port), seed=1)
    proxied = ServerAddress(info.host, proxy.start(), info.ca_file)
    agg, home = agent_pair(info, tmp_path, f"sm-{cut}", agg_server=proxied if cut == "aggregator" else None,
                           home_server=proxied if cut == "prosumer" else None)
    home_jid = str(home.jid)
    for a in (agg, home):
        a.engine.resend_after = a.engine.max_backoff = 10**6  # only XEP-0198 may deliver what was lost
    resumed: list[str] = []
    await agg.start(auto_register=True)
    await home.start(auto_register=True)
    cut_agent = agg if cut == "aggregator" else home
    cut_agent.client.add_event_handler("session_resumed", lambda _e: resumed.append(str(cut_agent.jid)))
    try:
        await eventually(lambda: agg.engine.counts().get("accepted") == 1, what="first offer accepted")
        proxy.impair(Impairment(blackhole=True))
        offers = [future_offer(f"sm-{cut}-{i}", home_jid) for i in range(1, HELD + 1)]
        for fo in offers:
            await home.handle(lambda now, fo=fo: home.engine.add_offer(fo, now, now))
        # the offers' payloads alone are less than what the dead link swallowed once all were sent
        payload_bytes = sum(len(ET.tostring(encode_element(OfferMessage("insert", fo.id, fo)))) for fo in offers)
        await eventually(lambda: proxy.dropped_bytes >= payload_bytes, what="the offers swallowed by the dead link")
        assert agg.engine.counts().get("accepted") == 1  # nothing got through
        proxy.impair(Impairment())
        assert proxy.cut() > 0
        await eventually(lambda: agg.engine.counts().get("accepted") == 1 + HELD, timeout=60,
                         what="the swallowed offers accepted after resumption")
        await eventually(lambda: home.engine.counts().get("accepted") == 1 + HELD, timeout=30,
                         what="their acks at the prosumer")
        assert resumed == [str(cut_agent.jid)]  # the stream was resumed, not started afresh
        notes = [n.event for a in (agg, home) for n in a.events]
        assert "resend" not in notes and "duplicate" not in notes and "stray-ack" not in notes, notes
    finally:
        await home.stop()
        await agg.stop()
        proxy.stop()


def test_stream_management_refuses_a_window_that_is_not_positive():
    for window in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="window"):
            smacks.enable_stream_management(object(), window)
