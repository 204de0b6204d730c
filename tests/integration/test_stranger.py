"""A stranger with an account on the run's server (issue 16): it reads nothing and changes
nothing, whatever it sends to whichever role. Mallory, a plain client (no VME code), sends every
protocol message a role takes (offers, a delete of another's offer, a measurement, a market
registration, a bid, an assignment, a bill) and chat commands, and asks for each agent's
presence. The agents' ledgers stay as they were, and all mallory gets back are refusals.

Also covered elsewhere, not repeated here: registration of new accounts closed on a run's own
server (test_external_server), ad-hoc commands hidden from and refused to a stranger and chat
steering refused (test_operators), squatted offer ids (tests/hostile/test_squatting)."""

from __future__ import annotations

import asyncio
import copy
import time
import xml.etree.ElementTree as ET

import pytest

from tests.integration.test_operators import future_offer
from tests.integration.test_presence import eventually
from tests.protocol.test_market_engine import LIQ
from vmenergy.agents import AggregatorAgent, MarketAgent, ProsumerAgent, ServerAddress
from vmenergy.flexoffer import Schedule
from vmenergy.protocol.aggregator import AggregatorConfig
from vmenergy.protocol.market import MarketConfig
from vmenergy.protocol.messages import (AssignmentMessage, BidMessage, BillLine, BillMessage, Measurement, OfferMessage,
                                        Registration)
from vmenergy.protocol.operators import Operators
from vmenergy.runtime.clock import RealClock
from vmenergy.wire.stanzas import NS
from vmenergy.wire.messages import to_xml

pytestmark = pytest.mark.integration

#: Tables that hold what a stranger must not be able to change, per role.
GUARDED = {"market": ("participants", "bids", "sessions"), "aggregator": ("offers", "aggregates", "bills"),
           "prosumer": ("offers", "bills")}


def guarded(agent, role: str) -> dict:
    return {t: copy.deepcopy(agent.engine.ledger.tables.get(t, {})) for t in GUARDED[role]}


@pytest.fixture
async def world(prosody_server, tmp_path, xmpp_client):
    info = prosody_server
    addr = ServerAddress(info.host, info.port, info.ca_file)
    common = dict(server=addr, clock=RealClock(), tick=0.2, operators=Operators((info.jid("st-alice"),), ()))
    house, agg, market = info.jid("st-house"), info.jid("st-agg"), info.jid("st-market")
    agents = {
        "market": MarketAgent(market, "pw-m", config=MarketConfig(liquidity=LIQ, time_limit=10, registration=(agg,)),
                              store_path=tmp_path / "m.sqlite", **common),
        "aggregator": AggregatorAgent(agg, "pw-a", config=AggregatorConfig(
            upstream="market", upstream_jid=market, cycle=10_000, lead=60, enrolment=(house,)),
            store_path=tmp_path / "a.sqlite", **common),
        "prosumer": ProsumerAgent(house, "pw-p", aggregator=agg,
                                  offers=[(0, future_offer(f"st-fo-{i}", house, time.time())) for i in (1, 2)],
                                  store_path=tmp_path / "p.sqlite", **common),
    }
    for a in agents.values():
        await a.start(auto_register=True)
    try:
        await eventually(lambda: agents["aggregator"].engine.counts().get("accepted") == 2, what="offers accepted")
        yield agents, await xmpp_client(info, "st-mallory", "mallory-pw")
    finally:
        for a in reversed(list(agents.values())):
            await a.stop()


def send_payload(client, to: str, xml: str) -> None:
    msg = client.make_message(mto=to, mbody="hello", mtype="normal")
    msg.append(ET.fromstring(xml))
    msg.send()


async def test_a_stranger_on_the_server_reads_nothing_and_changes_nothing(world):
    agents, mallory = world
    me = mallory.boundjid.bare
    market, agg, house = (str(agents[r].jid) for r in ("market", "aggregator", "prosumer"))
    before = {role: guarded(a, role) for role, a in agents.items()}
    theirs = agents["prosumer"].engine.ledger.get("offers", "st-fo-1").offer
    mine = future_offer("m-1", me, time.time())
    schedule = Schedule(theirs.id, theirs.start_after, (1.0, 1.0), "s-forged")
    hostile = [
        (agg, OfferMessage("insert", mine.id, mine)),  # not enrolled
        (agg, OfferMessage("delete", theirs.id, version=1)),  # someone else's offer
        (agg, Measurement("m-forged", theirs.id, theirs.start_after, (1.0, 1.0))),
        (market, Registration("register", me)),  # not in the market's registration list
        (market, BidMessage("b-forged", "s-1", "buy", volume=5.0, price=0.5, start=theirs.start_after,
                            end=theirs.start_after + 4)),
        (house, AssignmentMessage(schedule)),  # not from its aggregator
        (house, BillMessage("bill-forged", 0, 1, (BillLine("offer", "a gift", -10_000, theirs.id),))),
    ]
    for to, msg in hostile:
        send_payload(mallory, to, to_xml(msg))
    for jid in (market, agg, house):
        mallory.send_presence(pto=jid, ptype="subscribe")  # asks to see its status
        for text in ("status", "offers", "help", "pause"):
            mallory.send_message(mto=jid, mbody=text, mtype="chat")
    refused, rejected = [], []  # chat refusals; protocol acks (each must be a rejection)
    deadline = time.monotonic() + 30
    while (len(refused) < 3 or len(rejected) < len(hostile)) and time.monotonic() < deadline:
        try:
            m = await asyncio.wait_for(mallory.messages.get(), max(0.1, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            break
        payloads = [el for el in m.xml if isinstance(el.tag, str) and el.tag.startswith("{" + NS + "}")]
        if payloads:
            rejected += [(el.tag.split("}", 1)[1], el.get("status"), m["body"]) for el in payloads]
        elif m["body"]:
            refused.append(m["body"])
    after = {role: guarded(a, role) for role, a in agents.items()}
    assert after == before  # changes nothing
    # reads nothing: every chat line is refused, every protocol message answered with a
    # rejection naming only the sender and why, never data
    # (a stranger is told once per agent; what it says again gets no answer)
    assert len(refused) >= 3 and set(refused) == {"not authorized"}, refused
    assert len(rejected) == len(hostile) and {(kind, status) for kind, status, _ in rejected} == {("ack", "rejected")}, \
        rejected
    # no agent lets it see its presence (the status line carries its counts)
    seen = []
    while not mallory.presences.empty():
        p = mallory.presences.get_nowait()
        seen.append(str(p["from"].bare))
    assert not set(seen) & {market, agg, house}, seen
