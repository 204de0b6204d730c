"""Many-to-many (welfare MIP over flex-offer bids) and implicit capacity trading between zones."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmenergy.flexoffer import FlexOffer, Prices, Profile, Slice, SlicePrice, TotalEnergy
from vmenergy.market import FlexOfferBid, ImplicitCapacity, Link, ManyToMany, MarketSession, Order, Product

T = 2_000_000
NOW = (T - 8) * 900
SOLVERS = ["highs", "cbc"]


def flex(oid, slices, window, up, down, total=None):
    sl = tuple(Slice(1, lo, hi) for lo, hi in slices)
    return FlexOffer(id=oid, profiles=(Profile(sl, total=None if total is None else TotalEnergy(*total)),),
                     start_after=window[0], start_before=window[1], prices=Prices((SlicePrice(up, down),)))


def run(bids, *, mechanism=None, zones=None, pricing="uniform", solver="highs", length=2):
    m = mechanism or ManyToMany(solver=solver)
    s = MarketSession("m", m, delivery_start=T, delivery_end=T + length, pricing=pricing)
    for b in bids:
        if b.participant not in s.participants:
            s.register(b.participant, zone=None if zones is None else zones[b.participant])
    s.open(NOW)
    for b in bids:
        ack = s.place(b, NOW)
        assert ack.accepted, ack
    s.close(NOW)
    return s.clear(NOW)


def price(r, t, zone=None):
    return r.prices[(zone, t, Product.ENERGY)]


@pytest.mark.parametrize("solver", SOLVERS)
def test_flex_offer_bid_meets_orders(solver):
    ev = flex("ev", [(0, 4)], (T, T + 1), up=0.25, down=0.5, total=(3, 4))
    r = run([Order("a1", "a", "sell", 10, 0.10, T), Order("b1", "b", "buy", 5, 0.30, T), FlexOfferBid("f1", "c", ev)],
            solver=solver)
    assert r.awards["f1"].schedule.start == T and r.awards["f1"].schedule.energy == pytest.approx((4.0,))
    assert r.awards["a1"].energy == {T: pytest.approx(-9.0)}
    assert price(r, T) == pytest.approx(0.10)
    assert r.awards["f1"].amount == pytest.approx(0.4)
    assert r.welfare == pytest.approx(5 * 0.3 + 4 * 0.25 - 9 * 0.1)
    assert r.report.status == "optimal"
    assert all(abs(v) < 1e-6 for v in r.balance().values())


@pytest.mark.parametrize("solver", SOLVERS)
def test_time_flexibility_moves_the_bid_to_the_cheap_interval(solver):
    ev = flex("ev", [(0, 4)], (T, T + 1), up=0.3, down=0.5, total=(4, 4))
    r = run([Order("a", "a", "sell", 5, 0.2, T), Order("b", "b", "sell", 5, 0.1, T + 1), FlexOfferBid("f", "c", ev)],
            solver=solver)
    assert r.awards["f"].schedule.start == T + 1
    assert price(r, T + 1) == pytest.approx(0.1) and r.awards["f"].amount == pytest.approx(0.4)
    assert "a" in r.rejected


def test_all_or_nothing():
    ev = flex("ev", [(0, 4)], (T, T), up=0.3, down=0.5, total=(4, 4))
    r = run([Order("a", "a", "sell", 3, 0.1, T), FlexOfferBid("f", "c", ev)])
    assert "f" in r.rejected and "a" in r.rejected and not r.awards and r.welfare == 0


@pytest.mark.parametrize("solver", SOLVERS)
def test_battery_buys_cheap_and_sells_dear(solver):
    bat = flex("bat", [(-2, 2), (-2, 2)], (T, T), up=0.15, down=0.25, total=(0, 0))
    r = run([Order("s", "a", "sell", 5, 0.1, T), Order("b", "b", "buy", 5, 0.3, T + 1), FlexOfferBid("f", "c", bat)],
            solver=solver)
    assert r.awards["f"].schedule.energy == pytest.approx((2.0, -2.0))
    assert r.welfare == pytest.approx(2 * 0.3 - 2 * 0.1 + (0.15 * 2 - 0.25 * 2))
    assert price(r, T) == pytest.approx(0.1) and price(r, T + 1) == pytest.approx(0.3)
    assert r.awards["f"].amount == pytest.approx(2 * 0.1 - 2 * 0.3)
    assert r.awards["f"].side == "both"


def test_pay_as_bid_charges_each_bid_its_own_price():
    ev = flex("ev", [(0, 4)], (T, T), up=0.25, down=0.5, total=(4, 4))
    r = run([Order("a", "a", "sell", 10, 0.10, T), FlexOfferBid("f", "c", ev)], pricing="pay-as-bid")
    assert r.awards["f"].amount == pytest.approx(1.0) and r.awards["a"].amount == pytest.approx(-0.4)


def test_ties_prefer_the_earlier_bid():
    r = run([Order("first", "a", "sell", 5, 0.1, T), Order("second", "b", "sell", 5, 0.1, T),
             Order("buy", "c", "buy", 5, 0.3, T)])
    assert r.awards["first"].energy == {T: pytest.approx(-5.0)} and "second" in r.rejected


ZONES = {"a": "north", "b": "south", "c": "south"}


@pytest.mark.parametrize("solver", SOLVERS)
def test_congested_link_splits_the_price(solver):
    m = ImplicitCapacity(["north", "south"], [Link("north", "south", 4, 0.02)], solver=solver)
    r = run([Order("o1", "a", "sell", 10, 0.10, T), Order("o2", "b", "buy", 6, 0.30, T),
             Order("o3", "c", "sell", 10, 0.25, T)], mechanism=m, zones=ZONES, length=1)
    assert r.flows == {("north", "south", T): pytest.approx(4.0)}
    assert price(r, T, "north") == pytest.approx(0.10) and price(r, T, "south") == pytest.approx(0.25)
    assert r.awards["o3"].energy == {T: pytest.approx(-2.0)}
    assert r.welfare == pytest.approx(6 * 0.3 - 4 * 0.1 - 2 * 0.25 - 4 * 0.02)
    assert all(abs(v) < 1e-6 for v in r.balance().values())


def test_uncongested_link_adds_the_transport_cost_to_the_price():
    m = ImplicitCapacity(["north", "south"], [Link("north", "south", 10, 0.02)])
    r = run([Order("o1", "a", "sell", 10, 0.10, T), Order("o2", "b", "buy", 6, 0.30, T),
             Order("o3", "c", "sell", 10, 0.25, T)], mechanism=m, zones=ZONES, length=1)
    assert price(r, T, "north") == pytest.approx(0.10) and price(r, T, "south") == pytest.approx(0.12)
    assert "o3" in r.rejected and r.welfare == pytest.approx(6 * (0.3 - 0.1 - 0.02))


def test_no_link_no_trade_between_zones():
    m = ImplicitCapacity(["north", "south"])
    r = run([Order("o1", "a", "sell", 10, 0.10, T), Order("o2", "b", "buy", 6, 0.30, T)], mechanism=m, zones=ZONES, length=1)
    assert not r.awards and not r.flows


@st.composite
def markets(draw):
    bids = []
    for i in range(draw(st.integers(1, 3))):
        k = draw(st.integers(1, 3))
        slices = []
        for _ in range(k):
            lo = draw(st.integers(-3, 3))
            slices.append((float(lo), float(lo + draw(st.integers(0, 3)))))
        up = draw(st.integers(1, 40)) / 100
        down = up + draw(st.integers(0, 20)) / 100
        ws = draw(st.integers(0, 2))
        fo = flex(f"fo{i}", slices, (T + ws, T + ws + draw(st.integers(0, 4 - k - ws if 4 - k - ws > 0 else 0))), up, down)
        if fo.latest_start() + k <= T + 4:
            bids.append(FlexOfferBid(f"f{i}", f"p{i}", fo))
    for j in range(draw(st.integers(1, 6))):
        t = T + draw(st.integers(0, 3))
        bids.append(Order(f"o{j}", f"q{j}", draw(st.sampled_from(["buy", "sell"])), float(draw(st.integers(1, 6))),
                          draw(st.integers(1, 40)) / 100, t))
    return bids


@settings(max_examples=100)
@given(markets(), st.sampled_from(["uniform", "pay-as-bid"]), st.none() | st.tuples(st.integers(0, 5), st.integers(0, 5)))
def test_welfare_clearing_balances_and_schedules_are_feasible(bids, pricing, link):
    zones = None
    mechanism = None
    if link is not None:  # two zones, everyone alternately north and south
        names = sorted({b.participant for b in bids})
        zones = {p: ("north", "south")[i % 2] for i, p in enumerate(names)}
        mechanism = ImplicitCapacity(["north", "south"], [Link("north", "south", float(link[0]), link[1] / 100)])
    r = run(bids, pricing=pricing, length=4, zones=zones, mechanism=mechanism)
    assert all(abs(v) < 1e-6 for v in r.balance().values())
    by = {b.id: b for b in bids}
    for bid_id, a in r.awards.items():
        b = by[bid_id]
        if isinstance(b, FlexOfferBid):
            assert b.offer.check(a.schedule, now=-(-NOW // 900)) == []
        else:
            assert all(abs(v) <= b.volume + 1e-9 for v in a.energy.values())
            if pricing == "uniform":  # divisible orders are supported by their zone's price
                for t in a.energy:
                    p = price(r, t, a.zone)
                    assert (b.price >= p - 1e-6) if b.side.value == "buy" else (b.price <= p + 1e-6)
    assert r.welfare >= -1e-6
    if pricing == "pay-as-bid":  # the market never pays out more than it takes (transport included)
        assert sum(a.amount for a in r.awards.values()) >= -1e-6
    assert set(r.awards) | set(r.rejected) == set(by)


@pytest.mark.slow
def test_many_to_many_at_scale_balances_and_is_feasible():
    from tests.market.scale import T0, flex_bids

    bids = flex_bids(1000, seed=5)
    s = MarketSession("big", ManyToMany(time_limit=60), delivery_start=T0, delivery_end=T0 + 96)
    for b in bids:
        s.register(b.participant)
    s.open((T0 - 8) * 900)
    assert all(s.place(b, (T0 - 8) * 900).accepted for b in bids)
    s.close((T0 - 8) * 900)
    r = s.clear((T0 - 8) * 900)
    assert r.report.has_solution
    assert all(abs(v) < 1e-6 for v in r.balance().values())
    by = {b.id: b for b in bids}
    assert all(by[k].offer.is_feasible(a.schedule, now=T0 - 8) for k, a in r.awards.items())
