"""Prosumers trading peer to peer in a two-sided pool (eDREAM): each bids its assigned schedule's
energy per interval, a producer's surplus clears against a neighbour's consumption at one uniform
price, and the market bills each prosumer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, NOW, execute_all, offer
from tests.protocol.test_market_engine import MKT
from vmenergy.flexoffer import FlexOffer, Profile, Slice
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import Send
from vmenergy.protocol.market import MarketConfig, MarketEngine
from vmenergy.protocol.messages import BidMessage, Clearing, MarketSessionNotice
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.protocol.trading import TradingSettings

DAY = 86400
PER_DAY = DAY // 900


def tomorrow(fo: FlexOffer, jid: str) -> FlexOffer:
    return replace(fo, issuer=jid, start_after=fo.start_after + PER_DAY, start_before=fo.start_before + PER_DAY,
                   baseline=replace(fo.baseline, start=fo.baseline.start + PER_DAY))


def p2p_world():
    market = MarketEngine(MKT, MarketConfig(mechanism="two-sided", delivery_length=DAY))  # no supplier: peers only
    agg = AggregatorEngine(AGG, AggregatorConfig())  # plans its members itself
    pv = ProsumerEngine("roof@localhost", AGG, market=MKT, trading=TradingSettings(energy_cost=0.04))
    home = ProsumerEngine("home@localhost", AGG, market=MKT, trading=TradingSettings(energy_value=0.20))
    net = Net(market, agg, pv, home)
    solar = tomorrow(offer("pv-producer", 0), pv.jid)
    noon = solar.start_after
    load = FlexOffer("heat-1", issuer=home.jid, profiles=(Profile(tuple(Slice(1, 0.5, 0.8) for _ in range(12))),),
                     start_after=noon, start_before=noon)
    net.take(pv.jid, pv.add_offer(solar, NOW, NOW))
    net.take(home.jid, home.add_offer(load, NOW, NOW))
    net.run(NOW)
    return market, agg, pv, home, net


def test_a_producer_and_a_consumer_trade_their_schedules_peer_to_peer_at_one_uniform_price():
    market, agg, pv, home, net = p2p_world()
    t = NOW
    for _ in range(6):
        net.tick(t)
        t += 900
    bids = list(market.ledger.values("bids"))
    sells = [b for b in bids if b.participant == pv.jid]
    buys = [b for b in bids if b.participant == home.jid]
    assert sells and buys and all(b.bid.side == "sell" for b in sells) and all(b.bid.side == "buy" for b in buys)
    cleared = [b for b in bids if b.status in ("accepted", "partial")]
    assert cleared
    # one price per interval for both sides: between the seller's ask and the buyer's bid
    by_interval: dict[int, set] = {}
    for b in cleared:
        by_interval.setdefault(b.bid.start, set()).add(round(b.clearing.price, 9))
    assert all(len(p) == 1 and 0.04 <= next(iter(p)) <= 0.20 for p in by_interval.values())
    # in each interval the home buys what the roof sells (no one else trades)
    for t0 in by_interval:
        sold = sum(b.clearing.volume for b in cleared if b.bid.start == t0 and b.bid.side == "sell")
        bought = sum(b.clearing.volume for b in cleared if b.bid.start == t0 and b.bid.side == "buy")
        assert sold == pytest.approx(bought)
    # each prosumer knows its own orders' outcome
    assert {o.status for o in pv.ledger.values("orders")} <= {"accepted", "partial", "rejected"}
    assert any(o.cleared > 0 for o in home.ledger.values("orders"))
    execute_all(net, t)
    net.tick(NOW + 3 * DAY)  # after delivery: the market bills both
    (bill,) = [b for b in pv.ledger.values("bills") if b.bill_id.startswith("bill-s-")]
    assert bill.total_cents > 0  # the roof is paid
    (bill,) = [b for b in home.ledger.values("bills") if b.bill_id.startswith("bill-s-")]
    assert bill.total_cents < 0  # the home pays


def test_a_prosumer_takes_market_messages_only_from_its_market():
    market, agg, pv, home, net = p2p_world()
    out = pv.receive("mallory@localhost", Clearing("s-9", "b", "rejected", reason="x"), NOW)
    assert [e.msg for e in out if isinstance(e, Send)][0].reason == "mallory@localhost is not this prosumer's aggregator"
    out = pv.receive(AGG, Clearing("s-9", "b", "rejected", reason="x"), NOW)
    assert [e.msg for e in out if isinstance(e, Send)][0].reason == f"{AGG} is not this prosumer's market"
    out = home.receive(MKT, BidMessage("b", "s-9", "buy", volume=1.0, price=0.1, start=1, end=2), NOW)
    assert "it takes no bid from it" in [e.msg for e in out if isinstance(e, Send)][0].reason
    # a session notice from its aggregator is not one to trade in
    out = pv.receive(AGG, MarketSessionNotice("s-9", "open", "two-sided", NOW + 1800, 1, 2), NOW)
    assert not pv.ledger.table("sessions")
