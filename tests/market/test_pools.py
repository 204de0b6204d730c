"""One-sided merit order and two-sided uniform price: hand-computed cases and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmenergy.market import MarketSession, OneSidedPool, Order, Product, TwoSidedPool, merit_order, uniform_crossing

from .reference import walk_merit, walk_uniform

T = 2_000_000
NOW = (T - 8) * 900


def run(mechanism, orders, pricing="uniform", participants=("a", "b", "c", "d", "e", "dso")):
    s = MarketSession("s", mechanism, delivery_start=T, delivery_end=T + 3, pricing=pricing)
    for p in participants:
        s.register(p)
    s.open(NOW)
    for o in orders:
        ack = s.place(o, NOW)
        assert ack.accepted, ack
    s.close(NOW)
    return s.clear(NOW)


DSO = [Order("s1", "a", "sell", 4, 0.10, T, kind="up"), Order("s2", "b", "sell", 5, 0.20, T, kind="up"),
       Order("s3", "c", "sell", 6, 0.25, T, kind="up"), Order("s4", "d", "sell", 3, 0.35, T, kind="up")]


def test_one_sided_merit_order_uniform_price():
    # demand 10 kWh at up to 0.30: 4 + 5 + 1 (partly) accepted; s4 above the cut-off
    r = run(OneSidedPool("dso", {T: 10.0}, 0.30), DSO)
    vol = {k: -a.energy[T] for k, a in r.awards.items() if a.participant != "dso"}
    assert vol == pytest.approx({"s1": 4.0, "s2": 5.0, "s3": 1.0})
    assert r.prices[(None, T, Product.UP)] == pytest.approx(0.25)  # the marginal accepted offer
    assert {k: a.amount for k, a in r.awards.items() if k != "s/demand"} == pytest.approx(
        {"s1": -1.0, "s2": -1.25, "s3": -0.25})
    buyer = r.awards["s/demand"]
    assert buyer.participant == "dso" and buyer.energy == {T: pytest.approx(10.0)} and buyer.amount == pytest.approx(2.5)
    assert "cut-off" in r.rejected["s4"]
    assert all(abs(v) < 1e-9 for v in r.balance().values())
    assert r.welfare == pytest.approx((0.3 - 0.1) * 4 + (0.3 - 0.2) * 5 + (0.3 - 0.25) * 1)


def test_one_sided_pay_as_bid_and_demand_met():
    r = run(OneSidedPool("dso", {T: 10.0}, 0.30), DSO + [Order("s5", "e", "sell", 2, 0.28, T, kind="up")],
            pricing="pay-as-bid")
    assert {k: a.amount for k, a in r.awards.items() if k != "s/demand"} == pytest.approx(
        {"s1": -0.4, "s2": -1.0, "s3": -0.25})
    assert r.awards["s/demand"].amount == pytest.approx(1.65)
    assert "demand was met" in r.rejected["s5"]
    assert [x.bid_id for x in r.reservations] == ["s1", "s2", "s3"]


def test_one_sided_ties_go_to_the_earlier_order():
    r = run(OneSidedPool("dso", 5.0, 0.30), [Order("late", "a", "sell", 4, 0.1, T, kind="up"),
                                             Order("later", "b", "sell", 4, 0.1, T, kind="up")])
    assert r.awards["late"].energy[T] == pytest.approx(-4.0)
    assert r.awards["later"].energy[T] == pytest.approx(-1.0)


def test_two_sided_uniform_price_with_a_partly_filled_seller():
    orders = [Order("a1", "a", "sell", 10, 0.10, T), Order("c1", "c", "sell", 10, 0.20, T),
              Order("b1", "b", "buy", 5, 0.30, T), Order("d1", "d", "buy", 10, 0.25, T)]
    r = run(TwoSidedPool(), orders)
    assert r.prices[(None, T, Product.ENERGY)] == pytest.approx(0.20)
    assert {k: a.energy[T] for k, a in r.awards.items()} == pytest.approx({"a1": -10, "c1": -5, "b1": 5, "d1": 10})
    assert {k: a.amount for k, a in r.awards.items()} == pytest.approx({"a1": -2.0, "c1": -1.0, "b1": 1.0, "d1": 2.0})
    assert r.welfare == pytest.approx(5 * 0.3 + 10 * 0.25 - 10 * 0.1 - 5 * 0.2)


@pytest.mark.parametrize("orders, price", [
    # exact match, nothing left over: the midpoint of the marginal pair
    ([Order("s", "a", "sell", 10, 0.10, T), Order("b", "b", "buy", 10, 0.30, T)], 0.20),
    # an unfilled buyer at 0.15 raises the floor: (0.15 + 0.30) / 2
    ([Order("s", "a", "sell", 10, 0.10, T), Order("b", "b", "buy", 10, 0.30, T),
      Order("b2", "c", "buy", 5, 0.15, T)], 0.225),
    # a partly filled buyer pins the price to its limit
    ([Order("s", "a", "sell", 10, 0.10, T), Order("b", "b", "buy", 15, 0.30, T)], 0.30),
])
def test_two_sided_price_rule(orders, price):
    r = run(TwoSidedPool(), orders)
    assert r.prices[(None, T, Product.ENERGY)] == pytest.approx(price)


def test_two_sided_pay_as_bid_products_and_no_crossing():
    orders = [Order("s", "a", "sell", 10, 0.10, T), Order("b", "b", "buy", 10, 0.30, T),
              Order("su", "c", "sell", 2, 0.05, T, kind="up"), Order("bu", "d", "buy", 2, 0.04, T, kind="up"),
              Order("late", "e", "sell", 1, 0.01, T + 1)]
    r = run(TwoSidedPool(), orders, pricing="pay-as-bid")
    assert r.awards["s"].amount == pytest.approx(-1.0) and r.awards["b"].amount == pytest.approx(3.0)
    assert (None, T, Product.UP) not in r.prices  # 0.04 bid < 0.05 ask: no trade
    assert set(r.rejected) == {"su", "bu", "late"}


def test_multi_interval_order_clears_per_interval():
    orders = [Order("s", "a", "sell", 3, 0.1, T, T + 2), Order("b", "b", "buy", 2, 0.3, T + 1)]
    r = run(TwoSidedPool(), orders)
    assert r.awards["s"].energy == {T + 1: pytest.approx(-2.0)}


def test_deterministic():
    orders = [Order(f"o{i}", "abcde"[i % 5], "sell" if i % 2 else "buy", 1 + i % 3, 0.1 + 0.01 * (i % 4), T + i % 3)
              for i in range(30)]
    a = run(TwoSidedPool(), orders)
    b = run(TwoSidedPool(), orders)
    assert a.awards == b.awards and a.prices == b.prices


pieces = st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.integers(1, 20).map(float),
                            st.integers(1, 40).map(lambda p: p / 100)), min_size=1, max_size=40)


@settings(max_examples=200)
@given(pieces)
def test_uniform_crossing_matches_sort_and_walk(ps):
    key = np.array([p[0] for p in ps])
    is_buy = np.array([p[1] for p in ps])
    vol = np.array([p[2] for p in ps])
    price = np.array([p[3] for p in ps])
    seq = np.arange(len(ps))
    c = uniform_crossing(key, is_buy, vol, price, seq)
    ref, traded = walk_uniform([(k, b, v, p, s) for k, b, v, p, s in zip(key, is_buy, vol, price, seq)])
    assert np.allclose(c.accepted, ref, atol=1e-9)
    for k, q, p in zip(c.keys, c.volume, c.price):
        m = key == k
        assert q == pytest.approx(traded[int(k)])
        # balance, and the uniform price supports every accepted order
        assert c.accepted[m & is_buy].sum() == pytest.approx(c.accepted[m & ~is_buy].sum())
        if q > 0:
            acc = m & (c.accepted > 1e-9)
            assert np.all(price[acc & is_buy] >= p - 1e-12) and np.all(price[acc & ~is_buy] <= p + 1e-12)
            # nobody left out would have traded at that price
            left = m & (vol - c.accepted > 1e-9)
            assert np.all(price[left & is_buy] <= p + 1e-12) and np.all(price[left & ~is_buy] >= p - 1e-12)
    assert np.all(c.accepted <= vol + 1e-9) and np.all(c.accepted >= 0)


@settings(max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 40).map(lambda p: p / 100), st.integers(1, 20).map(float)),
                min_size=1, max_size=30),
       st.lists(st.integers(0, 40).map(float), min_size=4, max_size=4), st.integers(1, 40).map(lambda p: p / 100))
def test_merit_order_matches_sort_and_walk(ps, demand, cutoff):
    key = np.array([p[0] for p in ps])
    price = np.array([p[1] for p in ps])
    vol = np.array([p[2] for p in ps])
    acc = merit_order(key, price, vol, np.arange(len(ps)), np.array(demand), cutoff)
    ref = walk_merit([(k, p, v, i) for i, (k, p, v) in enumerate(zip(key, price, vol))], dict(enumerate(demand)), cutoff)
    assert np.allclose(acc, ref)
    for k in range(4):
        assert acc[key == k].sum() <= demand[k] + 1e-9
    assert np.all(acc[price > cutoff] == 0)
