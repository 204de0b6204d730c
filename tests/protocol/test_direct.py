"""GOFLEX direct trading through the aggregator (``upstream = "direct"``): offers scheduled in merit
order against the market prices where it pays, the rest rejected with the reason, prosumers paid
at their offers' own prices."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, LATER, NOW, execute_all, offer
from vmenergy.flexoffer import FlexOfferError, Prices, SlicePrice
from vmenergy.protocol.aggregator import AggregatorConfig, AggregatorEngine
from vmenergy.protocol.messages import OfferRejection
from vmenergy.protocol.prosumer import ProsumerEngine

# expensive evening (UTC 17-22), cheap night
PRICES = [0.05] * 6 + [0.20] * 11 + [0.40] * 6 + [0.05]


def direct_world(prices, offers):
    agg = AggregatorEngine(AGG, AggregatorConfig(upstream="direct", trading={"prices": prices}))
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(len(offers))]
    net = Net(agg, *pros)
    for i, (p, fo) in enumerate(zip(pros, offers)):
        net.take(p.jid, p.add_offer(replace(fo, issuer=p.jid), NOW, NOW))
    net.run(NOW)
    return agg, pros, net


def test_direct_trading_moves_profitable_offers_off_their_default_and_pays_prosumers_at_their_offer_price():
    ev = offer("ev-overnight", 0)  # default: charge at 22:00 (0.40 EUR/kWh); the night is 0.05
    agg, pros, net = direct_world(PRICES, [ev])
    net.tick(NOW)
    ((_, e),) = net.executions
    assert e.schedule.start > ev.baseline.start  # moved into the cheap night
    assert e.offer.is_feasible(e.schedule)
    assert agg.ledger.get("offers", ev.id).aggregate_id == "(single)"
    execute_all(net, NOW + 60)
    net.tick(LATER)
    (bill,) = pros[0].ledger.values("bills")
    assert "offer_price" in {line.code for line in bill.lines} and bill.total_cents > 0


def test_direct_trading_rejects_an_offer_that_does_not_pay_and_cannot_wait_with_the_reason():
    ev = offer("ev-overnight", 0)
    # flat prices: only using less energy could earn, and its owner asks 1 EUR per kWh of
    # deviation for that; and no later round can still assign it
    late = replace(ev, acceptance_before=NOW + 300, assignment_before=NOW + 600,
                   prices=Prices((SlicePrice(1.0, 1.0),)))
    agg, pros, net = direct_world([0.10] * 24, [late])
    net.tick(NOW)
    (rej,) = [m for _, _, m in net.delivered if isinstance(m, OfferRejection)]
    assert rej.reason.startswith("not profitable at these prices") and "no later decision possible" in rej.reason
    assert pros[0].counts() == {"rejected": 1}


def test_direct_mode_needs_its_prices():
    with pytest.raises(FlexOfferError) as info:
        AggregatorConfig(upstream="direct")
    assert info.value.path == "trading.prices"
    with pytest.raises(FlexOfferError) as info:
        AggregatorConfig(upstream="direct", trading={"prices": [0.1] * 23})
    assert info.value.path == "trading.prices"
