"""Presence subscriptions on a real Prosody: every subscription request is answered once.

slixmpp answers requests by itself (approve, a directed presence and a request back) and VME's
handler answered them again: five stanzas per request, each answered again by the peer. With 500
prosumers subscribing at once that flood put the aggregator's stream far behind the server
(bench/RESULTS.md, issue 15). The stanzas are counted on the wire, as each agent sends them."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from vmenergy.agents import AggregatorAgent, ProsumerAgent, ServerAddress
from vmenergy.protocol.aggregator import AggregatorConfig
from tests.integration.test_presence import eventually

pytestmark = pytest.mark.integration


class _Counting:
    """Counts presence stanzas an agent sends and receives, by (direction, type, peer)."""

    seen: Counter

    async def _async_connect(self) -> None:
        self.seen = Counter()
        self.client.add_filter("out", lambda s: self._count("out", s, "to"))
        self.client.add_filter("in", lambda s: self._count("in", s, "from"))
        await super()._async_connect()  # type: ignore[misc]

    def _count(self, direction: str, stanza, peer_field: str):
        if stanza.name == "presence" and stanza[peer_field]:
            self.seen[direction, stanza["type"] or "available", stanza[peer_field].bare] += 1
        return stanza


class CountingAggregator(_Counting, AggregatorAgent):
    pass


class CountingProsumer(_Counting, ProsumerAgent):
    pass


def answered_once(agent: _Counting, peer: str) -> None:
    requests = agent.seen["in", "subscribe", peer]
    assert requests >= 1, f"{agent.jid} got no request from {peer}"
    assert agent.seen["out", "subscribed", peer] == requests, agent.seen
    # asked back at most once, and no extra directed presence (the server sends the current
    # presence itself when a subscription is approved, RFC 6121 3.1.5)
    assert agent.seen["out", "subscribe", peer] <= 1, agent.seen
    assert agent.seen["out", "available", peer] == 0, agent.seen


async def test_each_subscription_request_is_answered_once(prosody_server, tmp_path):
    addr = ServerAddress(prosody_server.host, prosody_server.port, prosody_server.ca_file)
    agg_jid = prosody_server.jid("sub-agg")
    agg = CountingAggregator(agg_jid, "pw", config=AggregatorConfig(cycle=10_000, lead=60), server=addr,
                             store_path=tmp_path / "agg.sqlite")
    await agg.start(auto_register=True)
    homes = []
    try:
        for i in range(3):
            jid = prosody_server.jid(f"sub-home{i}")
            home = CountingProsumer(jid, "pw", aggregator=agg_jid, server=addr,
                                    store_path=tmp_path / f"home{i}.sqlite")
            await home.start(auto_register=True)
            homes.append(home)
        await asyncio.wait_for(asyncio.gather(*(h.wait_ready() for h in homes)), 20)
        await eventually(lambda: all(agg._available.get(str(h.jid)) for h in homes),
                         what="the aggregator sees every prosumer")
        for home in homes:
            answered_once(agg, str(home.jid))
            answered_once(home, agg_jid)
            # a prosumer asks once when it starts and never again once it has the presence
            assert home.seen["out", "subscribe", agg_jid] == 1, home.seen
            assert home.seen["out", "subscribed", agg_jid] == 1, home.seen
    finally:
        for home in homes:
            await home.stop()
        await agg.stop()


async def test_an_aggregator_and_its_market_see_each_other(prosody_server, tmp_path):
    """The market approves an aggregator it admits (a scenario's market admits the aggregators
    that bid on it) before that one has registered, and asks back; the aggregator is ready."""
    from vmenergy.agents import MarketAgent
    from vmenergy.protocol.market import MarketConfig

    addr = ServerAddress(prosody_server.host, prosody_server.port, prosody_server.ca_file)
    market_jid, agg_jid = prosody_server.jid("sub-market"), prosody_server.jid("sub-agg2")
    market = MarketAgent(market_jid, "pw", server=addr, store_path=tmp_path / "m.sqlite",
                         config=MarketConfig(registration=(agg_jid,)))
    agg = CountingAggregator(agg_jid, "pw", server=addr, store_path=tmp_path / "a.sqlite",
                             config=AggregatorConfig(cycle=10_000, lead=60, upstream="market",
                                                     upstream_jid=market_jid))
    await market.start(auto_register=True)
    await agg.start(auto_register=True)
    try:
        await asyncio.wait_for(agg.wait_ready(), 20)
        await eventually(lambda: market._available.get(agg_jid) is True, what="the market sees the aggregator")
        assert agg.seen["out", "subscribe", market_jid] == 1, agg.seen
        answered_once(agg, market_jid)
    finally:
        await agg.stop()
        await market.stop()


async def test_a_request_held_while_the_aggregator_was_away_is_answered_when_it_connects(prosody_server, tmp_path):
    """The server keeps a request for an offline account and hands it over with the account's
    first presence, before the agent's setup; it does not deliver the prosumer's repeats while
    that one is pending. Unanswered, the prosumer would wait for good."""
    addr = ServerAddress(prosody_server.host, prosody_server.port, prosody_server.ca_file)
    agg_jid, home_jid = prosody_server.jid("sub-agg3"), prosody_server.jid("sub-home3")

    def aggregator() -> CountingAggregator:
        return CountingAggregator(agg_jid, "pw", config=AggregatorConfig(cycle=10_000, lead=60), server=addr,
                                  store_path=tmp_path / "agg.sqlite")

    first = aggregator()
    await first.start(auto_register=True)  # the account exists
    await first.stop()
    home = CountingProsumer(home_jid, "pw", aggregator=agg_jid, server=addr, store_path=tmp_path / "home.sqlite")
    await home.start(auto_register=True)
    agg = aggregator()
    try:
        await eventually(lambda: home.seen["out", "subscribe", agg_jid] >= 1, what="the request sent")
        await agg.start(auto_register=True)
        await asyncio.wait_for(home.wait_ready(), 30)
        answered_once(agg, home_jid)
    finally:
        await home.stop()
        await agg.stop()
