"""GOFLEX KPIs on a hand-checked case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmenergy.flexoffer import Schedule
from vmenergy.settlement import Contract, MarketSales, SettlementError, kpis
from vmenergy.settlement.kpis import flexibility_envelope, hourly

from .helpers import AGG, DAY0, meter, offer, settle_objects

# Offer A: slices (0..2) then (1..3) kWh, start window [t1, t2]. Offer B: one slice of 1..1.5 kWh
# fixed at t2. Per interval, over every start in the window (0 where a start leaves it idle):
#   A: t1 [0, 2] (start t1: slice 0; start t2: idle), t2 [0, 3], t3 [0, 3]
#   B: t2 [1, 1.5]
# demand variation per interval: 0, 2, 3.5, 3 -> 8.5 kWh in the first hour, 0 in the second.
A = offer("a", "h0", [(1, 0.0, 2.0), (1, 1.0, 3.0)], DAY0 + 1, DAY0 + 2, default=[1.0, 2.0])
B = offer("b", "h1", [(1, 1.0, 1.5)], DAY0 + 2, DAY0 + 2, default=[1.0])
SCHEDULES = [Schedule(offer_id="a", start=DAY0 + 2, energy=(2.0, 3.0)),  # r: t1 -1, t2 0, t3 +3
             Schedule(offer_id="b", start=DAY0 + 2, energy=(1.5,))]  # r: t2 +0.5
METER = [[0.0, 0.0, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0],  # hour 1: 5 kWh, hour 2: 4 kWh
         [0.0, 0.0, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0]]  # hour 1: 1.5 kWh


def _result(sold_t3=3.0):
    market = MarketSales(AGG, sold_kwh=np.array([0.0, -1.0, 0.5, sold_t3, 0, 0, 0, 0]), price=np.full(8, 0.2),
                          imbalance_price=np.full(8, 0.1))
    c = Contract(id="c", mode="delegated", aggregator=AGG)
    return settle_objects([A, B], SCHEDULES, meter(METER), [c], ["c", "c"], market)


def test_envelope_and_hours():
    lower, upper = flexibility_envelope([A, B], DAY0, 8, 900)
    np.testing.assert_allclose(lower, [0, 0, 1.0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(upper, [0, 2.0, 4.5, 3.0, 0, 0, 0, 0])
    hours, sums = hourly(np.arange(8.0), DAY0, 900)
    assert hours.tolist() == [DAY0 * 900, DAY0 * 900 + 3600]
    assert sums.tolist() == [6.0, 22.0]
    _, spread = hourly(np.array([4.0, 2.0]), DAY0 * 900 // 7200, 7200)  # 2-hour intervals: half per hour
    assert spread.tolist() == [2.0, 2.0, 1.0, 1.0]


def test_kpis_by_hand():
    r = kpis(_result(), [A, B], energy_price=np.full(8, 0.3))
    assert r.peak_demand_kw == pytest.approx(6.5)  # metered 2 + 3 + 1.5 kWh in the first hour
    assert r.load_adaptability == pytest.approx((8.5 / 6.5, 0.0))
    assert r.demand_variation_kwh == pytest.approx((8.5, 0.0))
    # |r| per interval 0, 1, 0.5, 3 -> 4.5 kWh; delivered (metered - default) 0, -1, 0.5, 3
    assert r.adaptation_planned_mwh == pytest.approx((0.0045, 0.0))
    assert r.adaptation_delivered_mwh == pytest.approx((0.0045, 0.0))
    assert (r.revenue_eur, r.imbalance_cost_eur, r.earnings_eur, r.payouts_eur, r.margin_eur) == (
        "0.90", "0.00", "0.90", "0.00", "0.90")
    # capacity: 3.5 kWh in 15 minutes = 14 kW; a year has 365 x 86400 / 7200 = 4380 such 2-hour periods
    assert r.flexible_capacity_mw == pytest.approx(0.014)
    assert r.eur_per_mw_year == pytest.approx(0.90 * 4380 / 0.014)
    # savings at 0.3 EUR/kWh: baseline 1 + 2 + 1 = 4 kWh against 10.5 kWh metered
    assert r.savings_eur == pytest.approx(0.3 * (4.0 - 10.5))


def test_projections_scale_volume_linearly_and_imbalance_with_the_square_root():
    r = kpis(_result(sold_t3=2.5), [A, B])  # revenue 0.2 x 4 = 0.80; imbalance 0.5 kWh x 0.1 = 0.05
    assert (r.revenue_eur, r.imbalance_cost_eur, r.earnings_eur) == ("0.80", "0.05", "0.75")
    p = {x.scale: x for x in r.projections}
    assert sorted(p) == [10, 100, 1000]
    assert p[100].flexible_capacity_mw == pytest.approx(1.4)
    assert p[100].adaptation_planned_mwh == pytest.approx(0.45)
    assert p[100].revenue_eur == pytest.approx(80.0)
    assert p[100].imbalance_cost_eur == pytest.approx(0.5)
    assert p[1000].imbalance_cost_eur == pytest.approx(0.05 * math.sqrt(1000))
    assert p[10].eur_per_mw_year == pytest.approx((8.0 - 0.05 * math.sqrt(10)) * 4380 / 0.14)
    deep = kpis(_result(sold_t3=2.5), [A, B], market_depth_mw=0.5)
    # 0.5 MW of depth takes 0.5 / 0.014 = 35.7 times today's volume, not 100
    assert {x.scale: x for x in deep.projections}[100].revenue_eur == pytest.approx(0.80 * 0.5 / 0.014)


def test_without_offers_capacity_comes_from_the_requested_adaptation():
    r = kpis(_result())
    assert r.load_adaptability is None and r.demand_variation_kwh is None
    assert r.flexible_capacity_mw == pytest.approx(3.0 * 4 / 1000)  # 3 kWh in 15 minutes
    assert "requested" in r.capacity_basis


def test_kpi_input_errors():
    res = _result()
    with pytest.raises(SettlementError) as e:
        kpis(res, participants=["nobody"])
    assert e.value.path == "participants"
    with pytest.raises(SettlementError) as e:
        kpis(res, energy_price=np.zeros(3))
    assert e.value.path == "energy_price"
    with pytest.raises(SettlementError) as e:
        kpis(res, scales=[0])
    assert e.value.path == "scales"
