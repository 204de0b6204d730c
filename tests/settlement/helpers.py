"""Builders and hypothesis strategies shared by the settlement tests."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from hypothesis import strategies as st

from vmenergy.flexoffer import Baseline, FlexOffer, Prices, Profile, Schedule, Slice, SlicePrice
from vmenergy.settlement import (
    Contract,
    MarketSales,
    MeterData,
    assignments_from_offers,
    settle,
)
from vmenergy.settlement.contracts import Adjustment, BaselineRule, Penalty, DirectPricing, Reward, Tolerance

#: 2026-11-23T00:00:00Z at 15-minute resolution.
DAY0 = 1_795_392_000 // 900
AGG = "agg@vme.localhost"


def offer(oid: str, issuer: str, slices: Sequence[tuple[int, float, float]], start_after: int, start_before: int,
          default: Optional[Sequence[float]] = None, default_start: Optional[int] = None,
          prices: Optional[tuple[float, float]] = None) -> FlexOffer:
    """A one-profile offer from (duration, min, max) triples."""
    return FlexOffer(
        id=oid, issuer=issuer, profiles=(Profile(tuple(Slice(d, lo, hi) for d, lo, hi in slices)),),
        start_after=start_after, start_before=start_before,
        baseline=None if default is None else Baseline(tuple(default), start=default_start),
        prices=None if prices is None else Prices((SlicePrice(*prices),)),
    )


def meter(rows: Sequence[Sequence[float]], prosumers: Optional[Sequence[str]] = None, start: int = DAY0,
          **kw) -> MeterData:
    rows = np.asarray(rows, dtype=np.float64)
    ids = prosumers if prosumers is not None else [f"h{i}" for i in range(len(rows))]
    return MeterData(prosumers=list(ids), start=start, resolution=900, energy=rows, **kw)


def delegated(cid: str = "del", **reward) -> Contract:
    return Contract(id=cid, mode="delegated", aggregator=AGG, reward=Reward(**reward))


def settle_objects(offers, schedules, m: MeterData, contracts, contract_of, market=None, **kw):
    asg = assignments_from_offers(offers, schedules, m)
    return settle(m, asg, contracts, contract_of, market, **kw)


# ---------------------------------------------------------------------------------------------
# random settlement problems (for vectorised == reference and reconciliation properties)

money_rate = st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.1, 0.125, 0.2, 0.333, 1.0])
small = st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5])


@st.composite
def contracts_st(draw, n_days: int, aggregators: Sequence[str]) -> list[Contract]:
    out = []
    for k in range(draw(st.integers(1, 4))):
        method = draw(st.sampled_from(["offer", "x_of_y", "comparative_day"]))
        y = draw(st.integers(1, n_days))
        rule = BaselineRule(
            method=method, x=draw(st.integers(1, y)), y=y, select=draw(st.sampled_from(["high", "low"])),
            day=draw(st.integers(-n_days, n_days - 1)),
            adjustment=draw(st.none() | st.builds(Adjustment, window=st.integers(1, 4), gap=st.integers(0, 2),
                                                   cap_kwh=st.none() | small)),
        )
        mode = draw(st.sampled_from(["delegated", "direct"]))
        kw = {}
        if mode == "delegated":
            kw["reward"] = Reward(draw(money_rate), draw(money_rate), draw(money_rate), draw(money_rate),
                                  draw(st.sampled_from([0.0, 0.25, 0.5, 1.0, 0.3333])))
        else:
            kw["pricing"] = DirectPricing(draw(st.sampled_from(["offer", "market"])),
                                    draw(st.sampled_from([0.0, 0.1, 0.25])), draw(money_rate))
        out.append(Contract(
            id=f"c{k}", mode=mode, aggregator=draw(st.sampled_from(list(aggregators))), baseline=rule,
            tolerance=Tolerance(draw(small), draw(st.sampled_from([0.0, 0.1, 0.2]))),
            penalty=Penalty(draw(money_rate), draw(st.sampled_from([0.0, 0.5, 1.0])),
                            draw(st.none() | st.sampled_from([0.1, 1.0]))),
            **kw,
        ))
    return out


reading = st.one_of(
    st.floats(-3.0, 6.0, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0]),
)
odd_reading = st.sampled_from([math.nan, math.inf, -math.inf, 40.0, -9.0])


@st.composite
def problems(draw, max_prosumers: int = 6):
    """A random, valid settlement problem: (meter, offers, schedules, contracts, contract_of, market)."""
    T = draw(st.integers(4, 16))
    D = draw(st.integers(1, 4))
    n = draw(st.integers(1, max_prosumers))
    aggs = ["agg-a", "agg-b"][: draw(st.integers(1, 2))]
    contracts = draw(contracts_st(D, aggs))
    contract_of = [draw(st.integers(0, len(contracts) - 1)) for _ in range(n)]
    used_aggs = sorted({contracts[k].aggregator for k in contract_of})

    def series(length: int) -> list[float]:
        vals = draw(st.lists(reading, min_size=length, max_size=length))
        for _ in range(draw(st.integers(0, 2))):
            vals[draw(st.integers(0, length - 1))] = draw(odd_reading)
        return vals

    energy = [series(T) for _ in range(n)]
    history = np.array([[series(T) for _ in range(D)] for _ in range(n)], dtype=np.float64)
    rating = np.array([draw(st.sampled_from([math.inf, 8.0, 20.0])) for _ in range(n)])
    export = np.array([draw(st.sampled_from([math.inf, 0.0, 4.0])) for _ in range(n)])
    m = MeterData(prosumers=[f"p{i}" for i in range(n)], start=DAY0, resolution=900,
                  energy=np.array(energy, dtype=draw(st.sampled_from([np.float64, np.float32]))),
                  rating_kw=rating, export_rating_kw=export, history=history)
    offers, schedules = [], []
    for i in range(n):
        for j in range(draw(st.integers(0, 3))):
            k = draw(st.integers(1, 3))
            slices = []
            for _ in range(k):
                lo = draw(st.sampled_from([-2.0, -0.5, 0.0, 0.25, 1.0]))
                slices.append((draw(st.integers(1, 3)), lo, lo + draw(st.sampled_from([0.0, 0.5, 1.0, 3.0]))))
            sa = DAY0 + draw(st.integers(-4, T))
            sb = sa + draw(st.integers(0, 4))
            pick = lambda: [lo + (hi - lo) * draw(st.sampled_from([0.0, 0.3, 0.5, 1.0])) for _, lo, hi in slices]
            default = pick() if draw(st.booleans()) else None
            prices = (draw(money_rate), draw(money_rate)) if draw(st.booleans()) else None
            fo = offer(f"o{i}-{j}", f"p{i}", slices, sa, sb, default=default,
                       default_start=draw(st.none() | st.integers(sa, sb)) if default else None, prices=prices)
            energies = pick()
            if draw(st.integers(0, 5)) == 0:
                energies[0] += 5.0  # infeasible: above the slice max
            offers.append(fo)
            schedules.append(Schedule(offer_id=fo.id, start=draw(st.integers(sa, sb)), energy=tuple(energies)))
    market = []
    for a in used_aggs:
        if draw(st.booleans()):
            market.append(MarketSales(
                a, np.array(draw(st.lists(st.sampled_from([-2.0, -1.0, 0.0, 0.5, 3.0]), min_size=T, max_size=T))),
                np.array(draw(st.lists(st.sampled_from([0.0, 0.05, 0.1, 0.2]), min_size=T, max_size=T))),
                np.array(draw(st.lists(st.sampled_from([0.0, 0.1, 0.3]), min_size=T, max_size=T))),
            ))
    return m, offers, schedules, contracts, contract_of, market
