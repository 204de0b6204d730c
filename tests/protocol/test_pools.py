"""Pools through the engines: an aggregator bids its plan as orders in a one- or two-sided pool,
the market answers each order, reserves and activates flexibility, and bills all of it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.protocol.net import Net
from tests.protocol.test_engines import AGG, LATER, NOW, execute_all, offer
from tests.protocol.test_market_engine import LIQ, MKT
from tests.protocol.test_market_engine import world as market_world
from vmenergy.flexoffer import FlexOffer, FlexOfferError, Prices, Profile, Schedule, Slice, SlicePrice, TotalEnergy
from vmenergy.protocol.aggregator import AGGREGATES, AggregateRecord, AggregatorConfig, AggregatorEngine
from vmenergy.protocol.engine import Note, Send
from vmenergy.protocol.market import MarketConfig, MarketEngine, market_summary
from vmenergy.protocol.messages import (ActivationMessage, AssignmentMessage, BidMessage, Clearing, Measurement,
                                        MarketSessionNotice, Registration, ReservationMessage)
from vmenergy.protocol.prosumer import ProsumerEngine
from vmenergy.settlement.money import cents
from vmenergy.protocol.trading import (ORDERS, OrderRecord, TradingSettings, activated_schedule, pool_orders,
                                       residual_position)
from vmenergy.protocol.upstream import PlanUpstream

ONE_SIDED = MarketConfig(mechanism="one-sided", time_limit=10, demand={"volume": 2.0, "price": 0.2, "kind": "down"},
                         activation={"share": 0.5, "notice": 900})
TWO_SIDED = MarketConfig(mechanism="two-sided", time_limit=10, liquidity=LIQ)


def world(market: MarketConfig, trading: dict | None = None, n: int = 4):
    """A market, an aggregator trading on it with ``trading`` settings, and n prosumers."""
    agg_config = AggregatorConfig(upstream="market", upstream_jid=MKT, trading=trading or {})
    return market_world(n, market, agg_config=agg_config)


def ticks(net: Net, start: int, n: int) -> int:
    t = start
    for _ in range(n):
        net.tick(t)
        t += 900
    return t


def sent(net: Net, kind: type) -> list:
    return [m for _, _, m in net.delivered if isinstance(m, kind)]


def test_two_sided_pool_clears_the_aggregators_plan_as_buy_orders_and_bills_what_cleared():
    mkt, agg, pros, net = world(TWO_SIDED)
    t = ticks(net, NOW, 6)
    orders = list(agg.ledger.values("orders"))
    assert orders and all(o.kind == "energy" and o.side == "buy" for o in orders)
    # the members were assigned the plan the orders were made from
    assert agg.counts() == {"assigned": 4}
    plan = {}
    for r in agg.ledger.values("aggregates"):
        prof = r.offer.profiles[r.schedule.profile]
        for k, e in enumerate(prof.spread(r.schedule.energy)):
            plan[r.schedule.start + k] = plan.get(r.schedule.start + k, 0.0) + e
    assert sum(o.volume for o in orders) == pytest.approx(sum(v for v in plan.values() if v > 1e-6))
    summary = market_summary(mkt.ledger)
    assert summary["cleared"] > 0 and summary["session_details"][0]["mechanism"] == "two-sided"
    # every order was answered with a clearing; each rejection says why
    clearings = sent(net, Clearing)
    assert {c.bid_id for c in clearings} == set(agg.ledger.table("orders"))
    assert all(c.reason for c in clearings if c.status == "rejected")
    execute_all(net, t)
    net.tick(LATER)
    net.tick(LATER + 2 * 86400)
    (bill,) = agg.ledger.values("upstream_bills")
    assert bill.total_cents == sum(o.amount_cents for o in agg.ledger.values("orders")) < 0  # it bought energy
    assert sum(r.revenue_cents for r in agg.ledger.values("aggregates")) == bill.total_cents


def test_two_sided_order_above_every_seller_is_rejected_out_of_merit():
    # it values energy below the cheapest seller's price: nothing clears, and the reason says so
    mkt, agg, pros, net = world(TWO_SIDED, {"energy_value": 0.01})
    ticks(net, NOW, 6)
    clearings = sent(net, Clearing)
    assert clearings and all(c.status == "rejected" for c in clearings)
    assert all(c.reason == "out of merit: no seller at or below its limit price" for c in clearings)
    assert agg.counts() == {"assigned": 4}  # the plan stands: what did not clear is imbalance


def test_one_sided_pool_reserves_in_merit_order_activates_and_pays_both():
    mkt, agg, pros, net = world(ONE_SIDED, {"product": "down", "activation_price": 0.12})
    t = ticks(net, NOW, 6)
    orders = list(agg.ledger.values("orders"))
    assert orders and all(o.kind == "down" and o.side == "sell" for o in orders)
    # each offer carries its reservation price, activation price, volume and expiry (its interval's start)
    placed = [b for b in sent(net, BidMessage)]
    assert placed and all(b.activation_price == 0.12 and b.expiry == b.start * 900 and b.volume > 0 for b in placed)
    reservations = sent(net, ReservationMessage)
    assert reservations and {r.bid_id for r in reservations} == {k for k, o in agg.ledger.table("orders").items()
                                                                 if o.status in ("accepted", "partial")}
    # the buyer wants 2 kWh per interval: never more is reserved in one interval
    per_interval: dict[int, float] = {}
    for r in reservations:
        per_interval[r.start] = per_interval.get(r.start, 0.0) + r.volume
    assert max(per_interval.values()) <= 2.0 + 1e-9
    t = ticks(net, t, 40)  # the night passes: every reservation is activated before it starts
    activations = sent(net, ActivationMessage)
    assert len(activations) == len(reservations)
    # each activation moved the aggregate's schedule: members got updated assignments
    updates = [m for m in sent(net, AssignmentMessage) if m.schedule.update_id > 0]
    assert updates
    for _, e in net.executions:
        assert e.offer.is_feasible(e.schedule)
    moved = sum(o.activated for o in agg.ledger.values("orders"))
    assert moved == pytest.approx(sum(a.volume for a in activations))
    execute_all(net, t)
    net.tick(LATER + 2 * 86400)
    (bill,) = agg.ledger.values("upstream_bills")
    codes = {line.code for line in bill.lines}
    assert codes == {"market_reservation", "market_activation"}
    activation_cents = sum(line.amount_cents for line in bill.lines if line.code == "market_activation")
    assert activation_cents == sum(cents(a.volume * 0.12) for a in activations)  # each rounded once
    assert all(line.amount_cents > 0 for line in bill.lines)  # both are paid to the aggregator
    # and the aggregator booked both as the revenue of its aggregates
    assert sum(r.revenue_cents for r in agg.ledger.values("aggregates")) == bill.total_cents


def test_one_sided_order_above_the_cutoff_is_rejected_with_the_price_reason():
    mkt, agg, pros, net = world(ONE_SIDED, {"product": "down", "flex_cost": 0.5})
    ticks(net, NOW, 6)
    clearings = sent(net, Clearing)
    assert clearings and all(c.status == "rejected" and "above the buyer's cut-off" in c.reason for c in clearings)
    assert not sent(net, ReservationMessage)


def test_one_sided_pool_refuses_a_product_it_does_not_buy_with_a_reason():
    mkt, agg, pros, net = world(ONE_SIDED, {"product": "up", "flex_cost": 0.01})
    # the plan is at the minima (peak objective): no room up, so nothing is offered at all ...
    ticks(net, NOW, 2)
    assert not agg.ledger.table("orders")
    # ... and an order of the wrong product is refused with the field and the reason
    out = mkt.receive(AGG, BidMessage("b-up", "s-1", "sell", volume=1.0, price=0.01, start=1994872, end=1994873,
                                      order_type="up"), NOW + 60)
    (ack,) = [e.msg for e in out if isinstance(e, Send)]
    assert not ack.accepted and ack.reason == "kind: this session buys down, not up"


def test_registering_again_after_deregistering_registers_again_and_so_on():
    """register, deregister, register: the third is the same message as the first but must be
    handled, not answered from memory; the same for a second deregister."""
    mkt, agg, pros, net = world(TWO_SIDED)
    for i, op in enumerate(("register", "deregister", "register", "deregister", "register")):
        out = mkt.receive(AGG, Registration(op, AGG), NOW + 10 * i)
        assert [e.msg for e in out if isinstance(e, Send)][0].accepted
        assert not any(isinstance(e, Note) and e.event == "duplicate" for e in out), op
        assert mkt.registered(AGG) == (op == "register"), (i, op)
    # a resend of the last one is still a repeat (answered again, changes nothing)
    out = mkt.receive(AGG, Registration("register", AGG), NOW + 60)
    assert any(isinstance(e, Note) and e.event == "duplicate" for e in out)


def test_deregistering_withdraws_the_participants_live_bids():
    mkt, agg, pros, net = world(TWO_SIDED)
    ticks(net, NOW, 2)  # s-1 open, orders placed
    live = [b for b in mkt.ledger.values("bids") if b.status == "placed"]
    assert live
    out = mkt.receive(AGG, Registration("deregister", AGG), NOW + 1000)
    assert [e.msg for e in out if isinstance(e, Send)][0].accepted
    assert {b.status for b in mkt.ledger.values("bids")} == {"withdrawn"}
    assert all(b.clearing.reason == "withdrawn: the participant deregistered" for b in mkt.ledger.values("bids"))
    assert AGG not in mkt.ledger.table("participants")
    ticks(net, NOW + 1800, 2)  # the session clears without them
    assert market_summary(mkt.ledger)["cleared"] == 0
    # and a bid from the party that left is refused as unregistered
    out = mkt.receive(AGG, BidMessage("b-late", "s-2", "buy", volume=1.0, price=0.3, start=1994872,
                                      end=1994873), NOW + 3700)
    (ack,) = [e.msg for e in out if isinstance(e, Send)]
    assert not ack.accepted and ack.reason == f"{AGG} is not a registered participant"


def test_trading_settings_errors_name_the_field():
    for table, path in (({"margin": 1.5}, "trading.margin"), ({"product": "sideways"}, "trading.product"),
                        ({"horizon": -1}, "trading.horizon"), ({"colour": 1}, "trading.colour"),
                        ({"flex_cost": float("nan")}, "trading.flex_cost")):
        with pytest.raises(FlexOfferError) as info:
            AggregatorConfig(trading=table)
        assert info.value.path == path
    for table, path in (({"kind": "sideways", "volume": 1, "price": 1}, "demand.kind"),):
        with pytest.raises(FlexOfferError) as info:
            MarketConfig(mechanism="one-sided", demand=table)
        assert info.value.path == path
    with pytest.raises(FlexOfferError) as info:
        MarketConfig(activation={"share": 2})
    assert info.value.path == "activation.share"


SESSION = MarketSessionNotice("s-1", "open", "one-sided", 0, 100, 200)


def flexible(prices=None) -> FlexOffer:
    return FlexOffer("agg-1", profiles=(Profile((Slice(1, 1.0, 3.0), Slice(2, 0.0, 4.0))),), start_after=120,
                     start_before=120, prices=prices)


def test_flexibility_orders_price_cost_plus_proportional_margin_plus_absolute_margin_at_maximum_deviation():
    fo = flexible(Prices((SlicePrice(0.04, 0.10),)))
    plan = Schedule("agg-1", 120, (1.0, 2.0))
    s = TradingSettings(product="down", margin=0.1, margin_at_max=0.02)
    orders = pool_orders(fo, plan, SESSION, s, now=0)
    # interval 120: 2 kWh of room down out of 2 (full deviation); 121, 122: 1 of 2 kWh each
    assert [(o.interval, o.volume) for o in orders] == [(120, 2.0), (121, 1.0), (122, 1.0)]
    assert orders[0].price == pytest.approx(0.04 * 1.1 + 0.02)  # down regulation: the offer's up price
    assert orders[1].price == pytest.approx(0.04 * 1.1 + 0.01)
    up = pool_orders(fo, plan, SESSION, TradingSettings(product="up"), now=0)
    assert [(o.interval, o.volume, o.price) for o in up] == [(121, 1.0, 0.10), (122, 1.0, 0.10)]
    # without prices of its own the aggregate costs flex_cost; the horizon cuts what is bid
    bare_orders = pool_orders(flexible(), plan, SESSION, TradingSettings(product="down", horizon=1), now=120 * 900)
    assert [(o.interval, o.price) for o in bare_orders] == [(120, 0.05)]


def test_an_activation_moves_the_schedule_as_far_as_the_offer_allows():
    fo = flexible()
    plan = Schedule("agg-1", 120, (1.0, 2.0))
    moved = activated_schedule(fo, plan, {121: 1.5}, now=100)
    assert moved.start == 120 and moved.energy == pytest.approx((1.0, 3.5))
    assert fo.is_feasible(moved)
    too_far = activated_schedule(fo, plan, {120: -5.0}, now=100)  # below the slice's minimum: as far as it goes
    assert too_far.energy == pytest.approx((1.0, 2.0)) and fo.is_feasible(too_far)
    # a total the direct move would break: planned to the nearest feasible schedule instead
    capped = FlexOffer("agg-1", profiles=(Profile((Slice(1, 1.0, 3.0), Slice(2, 0.0, 4.0)), total=TotalEnergy(0.0, 4.0)),),
                       start_after=120, start_before=120)
    moved = activated_schedule(capped, plan, {121: 1.0, 122: 1.0}, now=100)
    assert capped.is_feasible(moved) and moved.start == 120 and sum(moved.energy) == pytest.approx(4.0)


ZONAL = MarketConfig(mechanism="implicit-capacity", time_limit=10, liquidity=LIQ, zones=("north", "south"),
                     links=({"a": "north", "b": "south", "capacity": 10.0, "cost": 0.02},))


def test_a_market_with_zones_refuses_a_registration_without_one_of_its_zones():
    for zone, reason in ((None, "zone: must be one of this market's zones north, south (got None)"),
                         ("east", "zone: must be one of this market's zones north, south (got 'east')")):
        mkt = MarketEngine(MKT, ZONAL)
        out = mkt.receive(AGG, Registration("register", AGG, zone=zone), NOW)
        (ack,) = [e.msg for e in out if isinstance(e, Send)]
        assert not ack.accepted and ack.reason == reason
    mkt = MarketEngine(MKT, ZONAL)
    out = mkt.receive(AGG, Registration("register", AGG, zone="south"), NOW)
    assert [e.msg for e in out if isinstance(e, Send)][0].accepted
    plain = MarketEngine(MKT, TWO_SIDED)
    out = plain.receive(AGG, Registration("register", AGG, zone="south"), NOW)
    assert [e.msg for e in out if isinstance(e, Send)][0].reason == "zone: this market has no zones (got 'south')"


def test_zonal_market_config_errors_name_the_field():
    for kw, path in (({"zones": ()}, "zones"), ({"zones": ("a",), "links": ({"a": "a", "b": "x", "capacity": 1},)},
                                                 "links[0]"),
                     ({"zones": ("a", "b"), "links": ({"a": "a", "b": "b"},)}, "links[0].capacity"),
                     ({"zones": ("a", "b"), "links": ({"a": "a", "b": "b", "capacity": -1},)}, "links[0].capacity"),
                     ({"zones": ("a",), "liquidity_zone": "b"}, "liquidity_zone")):
        with pytest.raises(FlexOfferError) as info:
            MarketConfig(mechanism="implicit-capacity", **kw)
        assert info.value.path == path, kw
    with pytest.raises(FlexOfferError) as info:
        MarketConfig(zones=("a",))
    assert info.value.path == "zones"


def test_an_aggregator_registers_in_its_trading_zone_and_its_clearing_carries_that_zones_price():
    mkt, agg, pros, net = world(ZONAL, {"zone": "south"})
    ticks(net, NOW, 6)
    (reg,) = sent(net, Registration)
    assert reg.zone == "south" and mkt.ledger.get("zones", AGG) == "south"
    clearings = [c for c in sent(net, Clearing) if c.status == "accepted"]
    assert clearings
    # the south imports everything over the link: its price is the north's sellers' (0.08 at
    # night) plus the transport cost
    assert all(c.price == pytest.approx(0.10) for c in clearings)


def test_aggregators_meter_cleared_orders_and_the_market_bills_imbalance_beyond_the_cutoff():
    cfg = MarketConfig(mechanism="two-sided", time_limit=10, liquidity=LIQ, imbalance={"price": 0.5, "cutoff": 0.01})
    mkt, agg, pros, net = world(cfg)
    t = ticks(net, NOW, 6)
    execute_all(net, t, deviation=0.1)
    metering = [m for m in sent(net, Measurement) if m.offer_id.startswith("ord-")]
    cleared = {k for k, o in agg.ledger.table("orders").items() if o.status in ("accepted", "partial")}
    assert {m.offer_id for m in metering} == cleared  # once each, cleared energy orders only
    for b in mkt.ledger.values("bids"):
        if b.bid.bid_id in cleared:
            (e,) = b.metered.energy
            off = abs(e - b.clearing.volume)
            assert b.imbalance_kwh == pytest.approx(max(0.0, off - 0.01), abs=1e-6)
            assert b.imbalance_cents == cents(0.5 * b.imbalance_kwh)
    fees = sum(b.imbalance_cents for b in mkt.ledger.values("bids"))
    assert fees > 0
    net.tick(LATER + 2 * 86400)
    (bill,) = agg.ledger.values("upstream_bills")
    assert -sum(line.amount_cents for line in bill.lines if line.code == "market_imbalance") == fees


def test_metering_that_settles_nothing_is_refused_with_the_reason():
    mkt, agg, pros, net = world(ONE_SIDED, {"product": "down"})
    ticks(net, NOW, 6)
    reserved = next(b for b in mkt.ledger.values("bids") if b.reservation is not None)
    m = Measurement("mm-x", reserved.bid.bid_id, reserved.bid.start, (1.0,))
    out = mkt.receive(AGG, m, NOW + 7200)
    (ack,) = [e.msg for e in out if isinstance(e, Send)]
    assert ack.reason == f"bid {reserved.bid.bid_id} reserved down flexibility: it is settled by its activation, not metered"
    out = mkt.receive("mallory@localhost", replace(m, measurement_id="mm-y"), NOW + 7200)
    assert [e.msg for e in out if isinstance(e, Send)][0].reason == f"mallory@localhost has no bid {reserved.bid.bid_id}"


def test_a_cleared_flex_offer_bid_is_metered_over_its_schedule():
    cfg = MarketConfig(liquidity=LIQ, time_limit=10, imbalance={"price": 0.3})
    mkt, agg, pros, net = world(cfg)
    t = ticks(net, NOW, 6)
    execute_all(net, t, deviation=0.05)
    for b in mkt.ledger.values("bids"):
        assert b.status == "accepted" and b.metered is not None
        s = b.clearing.schedule
        assert b.metered.start == s.start and len(b.metered.energy) == b.bid.offer.profiles[s.profile].duration
    assert sum(b.imbalance_cents for b in mkt.ledger.values("bids")) > 0


def test_follow_market_plans_new_offers_into_energy_the_clearings_bought_and_the_plan_does_not_use():
    mkt = MarketEngine(MKT, TWO_SIDED)
    agg = AggregatorEngine(AGG, AggregatorConfig(upstream="market", upstream_jid=MKT,
                                                 objective={"kind": "follow_market"}))
    p = ProsumerEngine("p0@localhost", AGG)
    net = Net(mkt, agg, p)
    net.tick(NOW)  # registered, s-1 open
    # an order of this aggregator cleared 2 kWh at 02:00 that no schedule uses (bought ahead)
    bought = 1994888  # 2026-11-23T02:00Z
    agg.ledger[AGGREGATES].put("agg-agg-0", AggregateRecord("agg-agg-0", flexible(), (), "ordered", "s-1"))
    agg.ledger[ORDERS].put("ord-x", OrderRecord("agg-agg-0", "s-1", bought, "buy", "energy", 2.0, 0.2))
    out = agg.receive(MKT, Clearing("s-1", "ord-x", "accepted", 2.0, 0.08, amount=0.16), NOW + 60)
    assert [e.msg for e in out if isinstance(e, Send)][0].accepted
    assert agg.market_position(NOW // 900) == {bought: 2.0}
    # a dishwasher that may run any time from 20:00 to 05:00 is planned where that energy is
    fo = replace(offer("dishwasher-xor", 0), issuer="p0@localhost")
    net.take(p.jid, p.add_offer(fo, NOW + 60, NOW + 60))
    net.run(NOW + 60)
    agg.config = replace(agg.config, upstream="plan")  # plan it at once, no market round
    agg.upstream = PlanUpstream(None)
    net.tick(NOW + 900)
    ((_, execution),) = net.executions
    s = execution.schedule
    assert agg.strategies.planning.objective.name == "follow_market"
    assert s.start <= bought < s.start + execution.offer.profiles[s.profile].duration


def test_residual_position_is_cleared_energy_less_what_schedules_already_use():
    fo = flexible()
    orders = [OrderRecord("a", "s", 120, "buy", "energy", 3.0, 0.1, status="accepted", cleared=3.0),
              OrderRecord("a", "s", 121, "sell", "energy", 1.0, 0.1, status="partial", cleared=0.5),
              OrderRecord("a", "s", 122, "buy", "energy", 1.0, 0.1, status="rejected"),
              OrderRecord("a", "s", 119, "buy", "energy", 1.0, 0.1, status="accepted", cleared=1.0),
              OrderRecord("a", "s", 123, "sell", "down", 1.0, 0.1, status="accepted", cleared=1.0)]
    planned = [(fo, Schedule("agg-1", 120, (1.0, 2.0)))]
    assert residual_position(orders, [], planned, since=120) == {120: 2.0, 121: -1.5, 122: -1.0}
    # a cleared flex-offer schedule that is also the plan commits nothing beyond it
    assert residual_position([], planned, planned, since=0) == {}


def one_offer(template: str):
    """A market whose sessions stay open an hour, an aggregator with a 5 kWh bid update
    threshold, and one prosumer's offer from ``template``."""
    cfg = MarketConfig(liquidity=LIQ, time_limit=10, session_every=7200, gate_closure=3600, delivery_offset=3600)
    mkt = MarketEngine(MKT, cfg)
    agg = AggregatorEngine(AGG, AggregatorConfig(upstream="market", upstream_jid=MKT, trading={"update_threshold": 5.0}))
    p = ProsumerEngine("p0@localhost", AGG)
    net = Net(mkt, agg, p)
    net.take(p.jid, p.add_offer(replace(offer(template, 0), issuer=p.jid), NOW, NOW))
    net.run(NOW)
    return net


def test_the_bid_update_policy_holds_small_changes_until_the_last_round_before_gate_closure():
    # a dishwasher (1.3 kWh at most) changes the portfolio by less than 5 kWh: held while
    # a later round can still bid it; bid in the last round before the gate closes
    net = one_offer("dishwasher-xor")
    net.tick(NOW)  # s-1 opens, gate closure NOW + 3600; rounds at NOW, +900, +1800, +2700
    net.tick(NOW + 900)
    net.tick(NOW + 1800)
    assert not sent(net, BidMessage)
    net.tick(NOW + 2700)  # the last round before the gate
    (bid,) = sent(net, BidMessage)
    assert bid.session_id == "s-1"


def test_a_change_beyond_the_threshold_is_bid_at_once():
    net = one_offer("ev-overnight")  # up to 44 kWh
    net.tick(NOW)
    net.tick(NOW + 900)
    assert len(sent(net, BidMessage)) == 1


def test_flex_offer_bids_are_priced_from_the_trading_settings_unless_bid_prices_says_otherwise():
    mkt, agg, pros, net = world(MarketConfig(liquidity=LIQ, time_limit=10),
                                {"energy_value": 0.25, "energy_cost": 0.05, "margin": 0.2})
    ticks(net, NOW, 2)
    bids = sent(net, BidMessage)
    assert bids and all(b.offer is not None for b in bids)
    for b in bids:  # consumption portfolios: the most it pays is its energy value less the margin
        assert b.offer.prices.slices[0].up == pytest.approx(0.25 * 0.8)
        assert b.offer.prices.slices[0].down == pytest.approx(0.05 * 1.2)
    outright = AggregatorEngine(AGG, AggregatorConfig(trading={"energy_value": 0.25}, bid_prices={"up": 0.3, "down": 0.01}))
    assert (outright.strategies.bidding.up, outright.strategies.bidding.down) == (0.3, 0.01)


def test_the_trade_frequency_holds_new_offers_until_the_next_trading_round():
    cfg = MarketConfig(liquidity=LIQ, time_limit=10, session_every=7200, gate_closure=5400, delivery_offset=5400)
    mkt = MarketEngine(MKT, cfg)
    agg = AggregatorEngine(AGG, AggregatorConfig(upstream="market", upstream_jid=MKT, trading={"frequency": 1800}))
    pros = [ProsumerEngine(f"p{i}@localhost", AGG) for i in range(2)]
    net = Net(mkt, agg, *pros)
    net.take(pros[0].jid, pros[0].add_offer(replace(offer("ev-overnight", 0), issuer=pros[0].jid), NOW, NOW))
    net.run(NOW)
    net.tick(NOW)  # s-1 opens (gate NOW + 5400: the last round before it is at NOW + 4500)
    net.tick(NOW + 900)  # the first trade
    assert len(sent(net, BidMessage)) == 1
    net.take(pros[1].jid, pros[1].add_offer(replace(offer("ev-overnight", 1), issuer=pros[1].jid), NOW + 1000,
                                            NOW + 1000))
    net.run(NOW + 1000)
    net.tick(NOW + 1800)  # 900 s after the last trade: held
    assert len(sent(net, BidMessage)) == 1
    net.tick(NOW + 2700)  # the next trading round, 1800 s after the last
    assert len(sent(net, BidMessage)) == 2


def test_the_aggregator_expects_the_imbalance_charge_its_market_bills_under_the_same_contract_terms():
    terms = {"price": 0.5, "cutoff": 0.01}
    cfg = MarketConfig(mechanism="two-sided", time_limit=10, liquidity=LIQ, imbalance=terms)
    mkt, agg, pros, net = world(cfg, {"imbalance_fee": 0.5, "imbalance_cutoff": 0.01})
    notes: list[Note] = []
    take = net.take

    def keep(sender, effects):
        effects = list(effects)
        notes.extend(e for e in effects if isinstance(e, Note) and e.event == "metered-to-market")
        take(sender, effects)

    net.take = keep  # type: ignore[method-assign]
    t = ticks(net, NOW, 6)
    execute_all(net, t, deviation=0.1)
    expected = {n.fields["bid"]: n.fields["expected_imbalance_cents"] for n in notes}
    billed = {b.bid.bid_id: b.imbalance_cents for b in mkt.ledger.values("bids") if b.metered is not None}
    assert expected and expected == billed
