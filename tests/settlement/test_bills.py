"""Hand-checked bills, one small case per contract type. Every expected number is worked out in
the comments from the inputs, by the rules in docs/settlement.md."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vmenergy.flexoffer import Schedule
from vmenergy.settlement import Contract, MarketSales, MeterFlag, OfferFlag
from vmenergy.settlement.contracts import Adjustment, BaselineRule, Penalty, DirectPricing, Reward, Tolerance

from .helpers import AGG, DAY0, meter, offer, settle_objects

# One EV-like offer used by the first three cases: two 1-interval slices of 0..2 kWh, start window
# [DAY0, DAY0 + 4] (4 intervals = 1 h of time flexibility), energy flexibility 2 + 2 = 4 kWh.
# Default: 1 + 1 kWh at DAY0. Schedule: 2 + 1 kWh at DAY0 + 4 (flexible energy 3 kWh, 1 activation).
# Requested adaptation r: t0 -1, t1 -1, t4 +2, t5 +1. Sub-metered (baseline = the default).
# Meter [0, 0.05, 0, 0, 2, 0.8, 0, 0] with a 0.1 kWh tolerance band:
#   t0: d = -1,    dev = 0     inside  -> verified 1
#   t1: d = -0.95, dev = 0.05  inside  -> verified 1
#   t4: d = 2,     dev = 0     inside  -> verified 2
#   t5: d = 0.8,   dev = -0.2  outside -> verified 0.8, excess 0.2 - 0.1 = 0.1 kWh
# Verified adaptation 4.8 kWh, excess 0.1 kWh.
EV_METER = [0.0, 0.05, 0.0, 0.0, 2.0, 0.8, 0.0, 0.0]
SOLD = np.array([-1.0, -1.0, 0, 0, 2.0, 1.0, 0, 0])


def ev(prices=None):
    fo = offer("ev", "h0", [(1, 0.0, 2.0), (1, 0.0, 2.0)], DAY0, DAY0 + 4, default=[1.0, 1.0], prices=prices)
    return fo, Schedule(offer_id="ev", start=DAY0 + 4, energy=(2.0, 1.0))


def lines(result, row=0):
    return {ln.code: ln.amount_cents for ln in result.bill(row).lines}


def test_delegated_bill_by_hand():
    fo, s = ev()
    contract = Contract(
        id="del", mode="delegated", aggregator=AGG, baseline=BaselineRule("offer"), tolerance=Tolerance(0.1, 0.0),
        penalty=Penalty(per_kwh=1.0),
        reward=Reward(per_kwh_flexible=0.02, per_hour_time_flexibility=0.10, per_kwh_energy_flexibility=0.05,
                      per_activation=0.25, revenue_share=0.5),
    )
    market = MarketSales(AGG, sold_kwh=SOLD, price=np.full(8, 0.1), imbalance_price=np.full(8, 0.2))
    res = settle_objects([fo], [s], meter([EV_METER]), [contract], ["del"], market)
    got = lines(res)
    assert got["flexible_energy"] == 6  # 3 kWh x 0.02
    assert got["time_flexibility"] == 10  # 1 h x 0.10
    assert got["energy_flexibility"] == 20  # 4 kWh x 0.05
    assert got["activations"] == 25  # 1 x 0.25
    # revenue per interval 0.1 x |sold|: 0.1, 0.1, 0.2, 0.1 = 0.50 EUR; the prosumer is the only one, so
    # all of each interval's revenue is attributed to it; its share is 50 % -> 0.25 EUR
    assert got["revenue_share"] == 25
    assert got["penalty"] == -10  # 0.1 kWh x 1.0
    assert got["unverified"] == 0
    assert res.bill(0).total_cents == 6 + 10 + 20 + 25 + 25 - 10
    assert res.quantities["verified_kwh"][0] == pytest.approx(4.8)
    assert res.quantities["excess_kwh"][0] == pytest.approx(0.1)
    # aggregator: revenue 50 c; imbalance = |delivered - sold| = 0 + 0.05 + 0 + 0.2 = 0.25 kWh x 0.2 = 5 c
    p = res.participant(AGG)
    assert (p.revenue_cents, p.imbalance_cents) == (50, 5)
    assert p.earnings_cents == 45
    assert p.payouts_cents == 76
    assert p.margin_cents == 45 - 76


def test_direct_bill_at_offer_prices_by_hand():
    fo, s = ev(prices=(0.30, 0.10))  # EUR/kWh for adapting up / down
    contract = Contract(id="dir", mode="direct", aggregator=AGG, tolerance=Tolerance(0.1, 0.0),
                        penalty=Penalty(per_kwh=0.5, cap_eur=0.02), pricing=DirectPricing("offer", fee_per_kwh=0.01))
    res = settle_objects([fo], [s], meter([EV_METER]), [contract], ["dir"])
    got = lines(res)
    # down at t0, t1: 1 + 1 kWh x 0.10; up at t4, t5: (2 + 0.8) kWh x 0.30 -> 0.2 + 0.84 = 1.04 EUR
    assert got["offer_price"] == 104
    assert got["fee"] == -5  # 4.8 kWh x 0.01 = 0.048 EUR -> 5 c
    assert got["penalty"] == -2  # 0.1 kWh x 0.5 = 0.05, capped at 0.02
    assert res.bill(0).total_cents == 97
    assert "market_price" not in got and "revenue_share" not in got
    # nothing was sold: the aggregator earned nothing and paid 0.97
    assert res.participant(AGG).margin_cents == -97


def test_direct_bill_at_market_prices_by_hand():
    fo, s = ev()
    contract = Contract(id="mkt", mode="direct", aggregator=AGG, tolerance=Tolerance(0.1, 0.0),
                        penalty=Penalty(imbalance_factor=1.0), pricing=DirectPricing("market", fee_fraction=0.25))
    price = np.array([0.1, 0.2, 0, 0, 0.3, 0.4, 0, 0])
    market = MarketSales(AGG, sold_kwh=SOLD, price=price, imbalance_price=np.full(8, 0.2))
    res = settle_objects([fo], [s], meter([EV_METER]), [contract], ["mkt"], market)
    got = lines(res)
    # 1 x 0.1 + 1 x 0.2 + 2 x 0.3 + 0.8 x 0.4 = 1.22 EUR
    assert got["market_price"] == 122
    # fee 25 % of 1.22 = 0.305 EUR: half a cent rounds away from zero -> 31 c
    assert got["fee"] == -31
    # penalty: 0.1 kWh outside the band at t5 x imbalance price 0.2 x factor 1 = 0.02 EUR
    assert got["penalty"] == -2
    assert res.bill(0).total_cents == 89
    # aggregator revenue 0.1 + 0.2 + 0.6 + 0.4 = 1.30 EUR; imbalance 0.25 kWh x 0.2 = 0.05
    p = res.participant(AGG)
    assert (p.revenue_cents, p.imbalance_cents, p.payouts_cents, p.margin_cents) == (130, 5, 89, 130 - 5 - 89)


def test_delegated_with_x_of_y_baseline_and_additive_adjustment_by_hand():
    # History, oldest first: totals 8, 16, (gap: not eligible), 12. "High 2 of the last 3" picks the
    # days with totals 16 and 12 -> baseline 1.75 in every interval.
    hist = np.array([[[1.0] * 8, [2.0] * 8, [1.0] * 4 + [math.nan] * 4, [1.5] * 8]])
    # Curtailment offer: one 2-interval slice of 0..4 kWh, fixed start DAY0 + 4, default 2 kWh,
    # scheduled 0 kWh: r = -1 at t4 and t5.
    fo = offer("hp", "h0", [(2, 0.0, 4.0)], DAY0 + 4, DAY0 + 4, default=[2.0])
    s = Schedule(offer_id="hp", start=DAY0 + 4, energy=(0.0,))
    # Adjustment window: 2 intervals ending 1 before the first activation (t4): t1, t2, where the
    # meter reads 2.0 and 2.25 against 1.75: mean +0.375, capped at 0.3 -> baseline 2.05.
    m = meter([[2.0, 2.0, 2.25, 2.0, 1.0, 1.5, 2.0, 2.0]], history=hist)
    contract = Contract(
        id="xy", mode="delegated", aggregator=AGG,
        baseline=BaselineRule("x_of_y", x=2, y=3, select="high", adjustment=Adjustment(window=2, gap=1, cap_kwh=0.3)),
        tolerance=Tolerance(0.1, 0.0), penalty=Penalty(per_kwh=0.2),
        reward=Reward(per_kwh_energy_flexibility=0.01, per_activation=0.10),
    )
    res = settle_objects([fo], [s], m, [contract], ["xy"], detail=True)
    np.testing.assert_allclose(res.detail["baseline"][0], 2.05)
    assert res.quantities["adjustment_kwh"][0] == pytest.approx(0.3)
    # t4: d = 1.0 - 2.05 = -1.05, dev = -0.05 inside -> 1; t5: d = -0.55, dev = 0.45, excess 0.35 -> 0.55
    assert res.quantities["verified_kwh"][0] == pytest.approx(1.55)
    assert res.quantities["excess_kwh"][0] == pytest.approx(0.35)
    got = lines(res)
    assert got["energy_flexibility"] == 4  # 4 kWh x 0.01
    assert got["activations"] == 10
    assert got["flexible_energy"] == 0 and got["time_flexibility"] == 0  # nothing scheduled, fixed start
    assert got["penalty"] == -7  # 0.35 kWh x 0.2
    assert res.bill(0).total_cents == 7


def test_comparative_day_with_bad_meter_data_flags_and_does_not_verify():
    # baseline: the most recent history day, which misses t5
    hist = np.array([[[9.0] * 8, [1.0] * 5 + [math.nan] + [1.0] * 2]])
    fo = offer("wm", "h1", [(1, 0.0, 2.0)] * 3, DAY0 + 3, DAY0 + 3, default=[1.0, 1.0, 1.0])
    s = Schedule(offer_id="wm", start=DAY0 + 3, energy=(0.0, 0.0, 0.0))  # r = -1 at t3, t4, t5
    m = meter([[1.0] * 8, [50.0, 1, 1, 0.0, math.nan, 2.5, 1, 1]], prosumers=["h0", "h1"],
              history=np.concatenate([hist, hist]), rating_kw=np.array([11.0, 11.0]))
    contract = Contract(id="cmp", mode="delegated", aggregator=AGG, baseline=BaselineRule("comparative_day", day=-1),
                        tolerance=Tolerance(0.05, 0.0), penalty=Penalty(per_kwh=1.0),
                        reward=Reward(per_activation=0.5))
    res = settle_objects([fo], [s], m, [contract], ["cmp", "cmp"])
    records = {(r["prosumer"], r["interval"] - DAY0): r for r in res.flag_records()}
    # t0: 50 kWh in 15 min is 200 kW on an 11 kW connection; t4: no reading; t5: no baseline
    assert set(records) == {("h1", 0), ("h1", 4), ("h1", 5)}
    assert records[("h1", 0)]["flags"] == ["above_rating"]
    assert records[("h1", 4)]["flags"] == ["gap"]
    assert records[("h1", 5)]["flags"] == ["no_baseline"]
    assert records[("h1", 4)]["time"] == "2026-11-23T01:00:00Z"
    assert res.flags.count(MeterFlag.GAP) == 1
    got = lines(res, 1)
    # t3 verified (0 vs baseline 1: delivered -1 as asked); t4, t5 unverified: no reward, no penalty
    assert res.quantities["verified_kwh"][1] == pytest.approx(1.0)
    assert res.quantities["unverified_intervals"][1] == 2
    assert res.bill(1).lines[-1].code == "unverified" and res.bill(1).lines[-1].quantity == 2
    assert got["penalty"] == 0  # 2.5 kWh at t5 against a request of -1: not verifiable, not penalised
    assert got["activations"] == 50


def test_infeasible_schedule_waives_the_penalty():
    fo = offer("ev", "h0", [(1, 0.0, 2.0)], DAY0, DAY0 + 2, default=[1.0])
    s = Schedule(offer_id="ev", start=DAY0 + 1, energy=(3.0,))  # above the slice max: infeasible
    contract = Contract(id="d", mode="delegated", aggregator=AGG, penalty=Penalty(per_kwh=1.0))
    res = settle_objects([fo], [s], meter([[0.0] * 4]), [contract], ["d"])
    assert res.offer_flags[0] & OfferFlag.INFEASIBLE
    assert res.quantities["excess_kwh"][0] > 0
    assert lines(res)["penalty"] == 0
    assert "waived" in res.bill(0).lines[-2].note


def test_revenue_share_split_by_largest_remainder():
    # three identical prosumers each deliver 1 kWh in the one interval sold for 0.10 EUR: 10/3 c each;
    # the pot is 10 c, the floors give 3 + 3 + 3, the cent left goes to the lowest row
    offers, schedules = [], []
    for i in range(3):
        offers.append(offer(f"o{i}", f"h{i}", [(1, 0.0, 1.0)], DAY0, DAY0 + 1, default=[0.0], default_start=DAY0))
        schedules.append(Schedule(offer_id=f"o{i}", start=DAY0, energy=(1.0,)))
    contract = Contract(id="s", mode="delegated", aggregator=AGG, reward=Reward(revenue_share=1.0))
    market = MarketSales(AGG, sold_kwh=np.array([3.0, 0.0]), price=np.array([0.1 / 3, 0.0]))
    res = settle_objects(offers, schedules, meter([[1.0, 0.0]] * 3), [contract], ["s"] * 3, market)
    assert [lines(res, i)["revenue_share"] for i in range(3)] == [4, 3, 3]
    p = res.participant(AGG)
    assert p.revenue_cents == 10 and p.payouts_cents == 10 and p.margin_cents == 0


def test_several_offers_per_prosumer_and_schedules_beyond_the_period():
    # Two offers of one prosumer; the second starts before the period (its per-offer rewards belong
    # to the earlier period) and reaches into it (its intervals inside are verified here).
    a = offer("a", "h0", [(2, 0.0, 4.0)], DAY0 + 1, DAY0 + 2, default=[2.0], default_start=DAY0 + 1)
    b = offer("b", "h0", [(1, 0.0, 1.0), (1, 0.0, 1.0)], DAY0 - 1, DAY0 - 1, default=[0.0, 0.0])
    sa = Schedule(offer_id="a", start=DAY0 + 2, energy=(4.0,))  # 2 kWh per interval at t2, t3
    sb = Schedule(offer_id="b", start=DAY0 - 1, energy=(1.0, 1.0))  # 1 kWh at t-1 (outside) and t0
    contract = Contract(id="d", mode="delegated", aggregator=AGG, reward=Reward(per_kwh_flexible=0.10))
    res = settle_objects([a, b], [sa, sb], meter([[1.0, 0.0, 2.0, 2.0]]), [contract], ["d"], detail=True)
    # r: t0 +1 (b), t1 -1 (a's default), t2 +2 - 1 = +1, t3 +2
    np.testing.assert_allclose(res.detail["requested"][0], [1.0, -1.0, 1.0, 2.0])
    assert res.quantities["offers"][0] == 1  # only a starts in the period
    assert lines(res)["flexible_energy"] == 40  # 4 kWh of a x 0.10


def test_bill_text_is_readable():
    fo, s = ev()
    contract = Contract(id="del", mode="delegated", aggregator=AGG, reward=Reward(per_kwh_flexible=0.02))
    text = settle_objects([fo], [s], meter([EV_METER]), [contract], ["del"]).bill("h0").text()
    assert "Prosumer h0" in text and "contract del" in text
    assert "Flexible energy placed under the aggregator's control" in text
    assert text.splitlines()[-1].split()[-2] == "0.06"


def test_baseline_keeps_fractions_in_a_block_without_any_offer():
    # numpy's bincount returns int64 zeros for empty input even with float weights. A block with no
    # slices then rasterised integer arrays, and a history baseline written into the "offer"
    # contract's default raster was cut to whole kWh (1.75 -> 1; a missing history day -> a huge
    # negative number). h0 is on the offer rule, h1 on comparative_day: neither has an offer.
    hist = np.array([[[1.75] * 4], [[1.75, 1.75, math.nan, 1.75]]])
    m = meter([[1.0] * 4, [1.5] * 4], prosumers=["h0", "h1"], history=hist)
    offer_rule = Contract(id="off", mode="delegated", aggregator=AGG, baseline=BaselineRule("offer"))
    history_rule = Contract(id="cmp", mode="delegated", aggregator=AGG,
                            baseline=BaselineRule("comparative_day", day=-1))
    res = settle_objects([], [], m, [offer_rule, history_rule], ["off", "cmp"], detail=True)
    np.testing.assert_array_equal(res.detail["baseline"][1], [1.75, 1.75, math.nan, 1.75])
    assert res.detail["baseline"].dtype == np.float64


def test_rasters_of_a_block_without_slices_are_float():
    from vmenergy.settlement import assignments_from_offers
    from vmenergy.settlement.raster import rasterise
    m = meter([[1.0] * 4])
    ras = rasterise(assignments_from_offers([], [], m), 0, 1, DAY0, 4, default=True, prices=True)
    for name in ("requested", "default", "weight", "price_up", "price_down"):
        assert getattr(ras, name).dtype == np.float64, name
