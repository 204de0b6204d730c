"""GOFLEX direct trading rule: merit order, only profitable offers, reasons for the rest."""

from __future__ import annotations

import pytest

from vmenergy.flexoffer import Baseline, FlexOffer, Prices, Profile, SlicePrice, Slice
from vmenergy.planning import PlanningError, trade_directly


def priced(oid, lo, hi, base, up, down, *, window=(0, 0), **kw):
    return FlexOffer(id=oid, profiles=(Profile((Slice(1, lo, hi),)),), start_after=window[0], start_before=window[1],
                     baseline=Baseline((base,), start=window[0]), prices=Prices((SlicePrice(up, down),)), **kw)


# market price 0.30 EUR/kWh in interval 0
A = priced("a", 0, 4, 4, 0.10, 0.05)  # drop 4 kWh of load: saves 1.20, costs 0.20 -> 1.00 (0.25/kWh)
B = priced("b", 0, 4, 4, 0.10, 0.35)  # dropping load costs more than it saves -> stays, profit 0
C = priced("c", -3, 0, 0, 0.10, 0.10, window=(0, 2))  # produce 3 kWh: earns 0.90, costs 0.30 -> 0.60 (0.20/kWh)
D = FlexOffer(id="d", profiles=(Profile((Slice(1, 0, 1),)),), start_after=0, start_before=0)  # no prices


@pytest.mark.parametrize("solver", ["heuristic", "milp"])
def test_merit_order_and_profit(solver):
    r = trade_directly([B, C, A, D], [0.30, 0.30, 0.30], start=0, now=0, solver=solver)
    assert r.merit_order == ["a", "c", "b"]
    assert set(r.schedules) == {"a", "c"}
    assert r.schedules["a"].energy == pytest.approx((0.0,))
    assert r.schedules["c"].energy == pytest.approx((-3.0,))
    assert r.profit["a"] == pytest.approx(1.0)
    assert r.profit["c"] == pytest.approx(0.6)
    assert r.total_profit == pytest.approx(1.6)
    assert "not profitable" in r.rejected["b"]
    assert r.rejected["d"].startswith("prices")


def test_volume_limit_postpones_or_rejects_the_rest_in_merit_order():
    # C earns most at interval 0 (0.30) where A already moved 4 kWh; 4 + 3 > 5
    r = trade_directly([A, C], [0.30, 0.20, 0.20], start=0, now=0, volume_limit=5.0, next_decision=1)
    assert set(r.schedules) == {"a"}
    assert "volume limit" in r.postponed["c"]  # c may still start at 1 or 2
    r = trade_directly([A, C], [0.30, 0.20, 0.20], start=0, now=0, volume_limit=5.0, next_decision=3)
    assert "volume limit" in r.rejected["c"]  # its window ends at 2
    assert r.net_deviation[0] == pytest.approx(-4.0)


def test_assignment_deadline_decides_between_postponed_and_rejected():
    late = priced("b", 0, 4, 4, 0.10, 0.35, window=(0, 5), assignment_before=2 * 900)
    r = trade_directly([late], [0.3] * 6, start=0, now=0, next_decision=1)
    assert "b" in r.postponed
    r = trade_directly([late], [0.3] * 6, start=0, now=0, next_decision=3)
    assert "b" in r.rejected


def test_bad_input():
    with pytest.raises(PlanningError) as e:
        trade_directly([A], [0.3], start=0, now=0, volume_limit=[1.0, 2.0])
    assert e.value.path == "volume_limit"
    with pytest.raises(PlanningError) as e:
        trade_directly([A], [0.3], now=0)
    assert e.value.path == "prices.start"
    far = priced("f", 0, 4, 4, 0.1, 0.1, window=(10, 10))
    with pytest.raises(PlanningError) as e:
        trade_directly([far], [0.3], start=0, now=0)
    assert e.value.path == "offers[0]"
