"""SPADE's metadata form on protocol messages (docs/protocol.md section 7): VME agents leave it
out by default and take messages with or without it; an agent set to send it
(``spade_metadata``) can be routed by a third-party SPADE agent's templates."""

from __future__ import annotations

import asyncio

import pytest
from spade.agent import Agent
from spade.behaviour import CyclicBehaviour
from spade.template import Template

from tests.integration.test_presence import eventually, future_offer
from vmenergy.agents import AggregatorAgent, ProsumerAgent, ServerAddress
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.runtime.clock import RealClock
from vmenergy.runtime.xmpp_tuning import tune_process

pytestmark = pytest.mark.integration


async def test_an_aggregator_takes_offers_with_and_without_the_spade_metadata_form(prosody_server, tmp_path):
    info = prosody_server
    addr = ServerAddress(info.host, info.port, info.ca_file)
    agg_jid = info.jid("meta-agg")
    agg = AggregatorAgent(agg_jid, "pw-agg", config=AggregatorConfig(cycle=10_000, lead=60), server=addr,
                          clock=RealClock(), tick=0.2, store_path=tmp_path / "agg.sqlite")
    homes = []
    for name, form in (("meta-plain", False), ("meta-form", True)):
        jid = info.jid(name)
        homes.append(ProsumerAgent(jid, f"pw-{name}", aggregator=agg_jid, offers=[(0, future_offer(f"{name}-0", jid))],
                                   server=addr, tick=0.2, store_path=tmp_path / f"{name}.sqlite",
                                   spade_metadata=form))
    await agg.start(auto_register=True)
    for home in homes:
        await home.start(auto_register=True)
    try:
        # each offer accepted by the aggregator, and its ack (sent without the form) taken by the prosumer
        for home in homes:
            await eventually(lambda home=home: home.engine.counts().get("accepted") == 1,
                             what=f"{home.jid}'s offer accepted")
        assert agg.engine.counts().get("accepted") == 2
    finally:
        for home in homes:
            await home.stop()
        await agg.stop()


class _Collect(CyclicBehaviour):
    def __init__(self, into: asyncio.Queue) -> None:
        super().__init__()
        self.into = into

    async def run(self) -> None:
        msg = await self.receive(timeout=1)
        if msg is not None:
            await self.into.put(msg)


class _ThirdPartyAggregator(Agent):
    """A plain SPADE agent (no VME code) that routes VME's offers by a template on their
    metadata and everything else to another behaviour."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.routed: asyncio.Queue = asyncio.Queue()
        self.other: asyncio.Queue = asyncio.Queue()

    async def setup(self) -> None:
        self.presence.approve_all = True
        self.presence.set_available()
        offers = Template(metadata={"ontology": "vmenergy", "performative": "propose", "vme-element": "flexoffer"})
        self.add_behaviour(_Collect(self.routed), offers)
        self.add_behaviour(_Collect(self.other), ~offers)


async def _next(queue: asyncio.Queue, what: str):
    try:
        return await asyncio.wait_for(queue.get(), 20)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_a_spade_agent_routes_offers_by_template_only_from_an_agent_set_to_send_the_form(
        prosody_server, tmp_path):
    info = prosody_server
    tune_process(info.ca_file)  # SPADE's own agent verifies the private server's certificate
    addr = ServerAddress(info.host, info.port, info.ca_file)
    spade_jid = info.jid("meta-spade")
    spade_agent = _ThirdPartyAggregator(spade_jid, "pw-spade", port=info.port, verify_security=True)
    await spade_agent.start(auto_register=True)
    homes = []
    try:
        for name, form in (("meta-to-spade", True), ("meta-to-spade-plain", False)):
            jid = info.jid(name)
            home = ProsumerAgent(jid, f"pw-{name}", aggregator=spade_jid, offers=[(0, future_offer(f"{name}-0", jid))],
                                 server=addr, tick=0.2, store_path=tmp_path / f"{name}.sqlite", spade_metadata=form)
            homes.append(home)
            await home.start(auto_register=True)
            if form:
                msg = await _next(spade_agent.routed, "the offer routed by the template")
                assert msg.get_metadata("vme-element") == "flexoffer" and msg.get_metadata("performative") == "propose"
                assert str(msg.sender).startswith(jid) and f"{name}-0" in msg.body
            else:  # without the form the template does not match: the offer reaches the other behaviour
                msg = await _next(spade_agent.other, "the offer without the form")
                assert msg.get_metadata("ontology") is None and f"{name}-0" in msg.body
        # what else arrived (resends: no ack comes) went the same ways, by sender
        while not spade_agent.routed.empty():
            assert str(spade_agent.routed.get_nowait().sender).startswith(str(homes[0].jid))
        while not spade_agent.other.empty():
            assert str(spade_agent.other.get_nowait().sender).startswith(str(homes[1].jid))
    finally:
        for home in homes:
            await home.stop()
        await spade_agent.stop()
