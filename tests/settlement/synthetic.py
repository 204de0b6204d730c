"""Synthetic populations for tests, benchmarks and demos (deterministic from a seed).

Every prosumer has a household load curve with a morning and an evening peak, D past days of it
(for day-based baselines) and one flexible device offer (an EV-like load of a few slices with a
start window in the evening). The aggregator schedules each offer somewhere in its window with
energies inside the slice bounds; most prosumers follow, some deviate, a few meters misbehave
(gaps, readings beyond the rating). Four contracts cover the four bill kinds: delegated with an
"X of Y" baseline and same-day adjustment, delegated with a comparative day, direct at offer
prices and direct at market prices (both sub-metered: the offer's default is the baseline).

Pure: no clock, no files; everything is a function of ``seed`` and the sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from vmenergy.flexoffer import FlexOfferSet, ScheduleSet

from vmenergy.settlement.assignments import Assignments, assignments_from_sets
from vmenergy.settlement.contracts import Contract, parse_contracts
from vmenergy.settlement.market_sales import MarketSales
from vmenergy.settlement.metering import MeterData

__all__ = ["Population", "population", "CONTRACTS_TOML", "DAY0"]

#: 2026-11-23T00:00:00Z as a 15-minute interval number.
DAY0 = 1_795_392_000 // 900

CONTRACTS_TOML = """
[[contracts]]
id = "delegated-x-of-y"
mode = "delegated"
aggregator = "agg@vme.localhost"
[contracts.baseline]
method = "x_of_y"
x = 5
y = 10
select = "high"
[contracts.baseline.adjustment]
window = 4
gap = 1
cap_kwh = 0.5
[contracts.tolerance]
absolute_kwh = 0.05
relative = 0.10
[contracts.reward]
per_kwh_flexible = 0.005
per_hour_time_flexibility = 0.01
per_kwh_energy_flexibility = 0.002
per_activation = 0.02
revenue_share = 0.5
[contracts.penalty]
per_kwh = 0.05
cap_eur = 2.0

[[contracts]]
id = "delegated-comparative"
mode = "delegated"
aggregator = "agg@vme.localhost"
[contracts.baseline]
method = "comparative_day"
day = -1
[contracts.tolerance]
absolute_kwh = 0.1
[contracts.reward]
per_kwh_flexible = 0.004
per_activation = 0.03
revenue_share = 0.3
[contracts.penalty]
per_kwh = 0.03

[[contracts]]
id = "direct-offer"
mode = "direct"
aggregator = "agg@vme.localhost"
[contracts.baseline]
method = "offer"
[contracts.tolerance]
relative = 0.05
absolute_kwh = 0.02
[contracts.pricing]
source = "offer"
fee_per_kwh = 0.005
[contracts.penalty]
imbalance_factor = 1.0

[[contracts]]
id = "direct-market"
mode = "direct"
aggregator = "agg@vme.localhost"
[contracts.baseline]
method = "offer"
[contracts.tolerance]
relative = 0.05
absolute_kwh = 0.02
[contracts.pricing]
source = "market"
fee_fraction = 0.2
[contracts.penalty]
per_kwh = 0.02
imbalance_factor = 0.5
"""


@dataclass(eq=False)
class Population:
    """Everything :func:`~vmenergy.settlement.settle` needs, plus the columnar sets it came from."""

    meter: MeterData
    offers: FlexOfferSet
    schedules: ScheduleSet
    default_start: np.ndarray
    default_energy: np.ndarray
    price_up: np.ndarray
    price_down: np.ndarray
    contracts: list[Contract]
    contract_of: np.ndarray
    market: MarketSales

    def assignments(self) -> Assignments:
        return assignments_from_sets(
            self.offers, self.schedules, self.meter, prosumer=np.arange(len(self.offers)),
            default_start=self.default_start, default_energy=self.default_energy,
            price_up=self.price_up, price_down=self.price_down,
        )


_DURATIONS = np.array([1, 1, 2, 2], dtype=np.int32)


def _load_curve(T: int) -> np.ndarray:
    h = (np.arange(T) + 0.5) * 24.0 / T
    return (0.15 + 0.25 * np.exp(-((h - 7.5) / 1.5) ** 2) + 0.45 * np.exp(-((h - 19.0) / 2.0) ** 2)) * (96 / T)


def population(
    n: int,
    *,
    seed: int = 0,
    n_intervals: int = 96,
    history_days: int = 10,
    start: int = DAY0,
    gap_rate: float = 0.001,
    spike_rate: float = 0.0002,
    deviate_rate: float = 0.1,
    mix: Optional[np.ndarray] = None,
    dtype: type = np.float32,
) -> Population:
    """A synthetic population of ``n`` prosumers over ``n_intervals`` 15-minute intervals.

    ``mix``: probabilities of the four contracts (default 0.4, 0.2, 0.2, 0.2). Memory is about
    (history_days + 2) x n x T x 4 bytes for float32 meter data and history.
    """
    rng = np.random.default_rng(seed)
    T = n_intervals
    mix = np.array([0.4, 0.2, 0.2, 0.2]) if mix is None else np.asarray(mix, dtype=np.float64)
    contracts = parse_contracts(CONTRACTS_TOML)
    contract_of = rng.choice(len(contracts), size=n, p=mix / mix.sum()).astype(np.int64)
    sub_metered = contract_of >= 2  # direct contracts: device meter, offer default as baseline

    # one offer per prosumer: 4 slices (1, 1, 2, 2 intervals), window of W intervals in the evening
    k = len(_DURATIONS)
    L = int(_DURATIONS.sum())
    W = rng.integers(0, 12, size=n)
    sa = start + rng.integers(T // 2, max(T // 2 + 1, T - L - 12), size=n)
    sb = sa + W
    lo = np.repeat(rng.uniform(0.0, 0.5, size=n), k) * np.tile(_DURATIONS, n)
    hi = lo + np.repeat(rng.uniform(0.5, 2.0, size=n), k) * np.tile(_DURATIONS, n)
    ids = np.char.add("fo-", np.arange(n).astype(str)).astype(object)
    pros = np.char.add(np.char.add("p", np.arange(n).astype(str)), "@vme.localhost").astype(object)
    offers = FlexOfferSet.from_arrays(
        ids=ids, start_after=sa, start_before=sb, slice_count=np.full(n, k), min=lo, max=hi,
        duration=np.tile(_DURATIONS, n), issuers=pros,
    )
    default_start = sa.copy()
    default_energy = lo + (hi - lo) * 0.5
    shift = (rng.uniform(0, 1, size=n) * (W + 1)).astype(np.int64)
    sched_start = sa + np.minimum(shift, W)
    energy = lo + (hi - lo) * np.repeat(rng.uniform(0.2, 0.8, size=n), k)
    schedules = ScheduleSet.from_arrays(
        offer_index=np.arange(n), start=sched_start, energy_offsets=np.arange(n + 1) * k, energy=energy,
    )
    price_up = rng.uniform(0.01, 0.04, size=n)
    price_down = rng.uniform(0.01, 0.04, size=n)

    # rasters of schedule and default (per interval), straight from the regular layout
    offs = np.concatenate([[0], np.cumsum(_DURATIONS)[:-1]])

    def placed(st: np.ndarray, en: np.ndarray) -> np.ndarray:
        out = np.zeros((len(st), T), dtype=np.float64)
        for s in range(k):
            for j in range(int(_DURATIONS[s])):
                t = st - start + offs[s] + j
                ok = (t >= 0) & (t < T)
                out[np.flatnonzero(ok), t[ok]] += en[s::k][ok] / _DURATIONS[s]
        return out

    curve = _load_curve(T).astype(dtype)
    scale = rng.lognormal(0.0, 0.3, size=n).astype(dtype)
    follow = rng.uniform(0, 1, size=n) >= deviate_rate
    partial = rng.uniform(0.0, 0.7, size=n)
    history = np.empty((n, history_days, T), dtype=dtype) if history_days else None
    energy_m = np.empty((n, T), dtype=dtype)
    requested = np.zeros(T)
    block = 16384
    for a in range(0, n, block):
        b = min(n, a + block)
        c = b - a
        sched = placed(sched_start[a:b], energy[a * k:b * k])
        dflt = placed(default_start[a:b], default_energy[a * k:b * k])
        requested += (sched - dflt).sum(axis=0)
        if history is not None:
            for d in range(history_days):
                day_factor = rng.uniform(0.85, 1.15, size=c).astype(dtype)
                h = history[a:b, d, :]
                h[:] = (scale[a:b] * day_factor)[:, None] * curve[None, :] + dflt
                h += dtype(0.02) * rng.standard_normal(size=(c, T), dtype=np.float32).astype(dtype)
        achieved = np.where(follow[a:b, None], sched, dflt + (sched - dflt) * partial[a:b, None])
        household = scale[a:b, None] * curve[None, :] * dtype(1.05)
        household += dtype(0.02) * rng.standard_normal(size=(c, T), dtype=np.float32).astype(dtype)
        device = achieved + 0.01 * rng.standard_normal(size=(c, T), dtype=np.float32)
        energy_m[a:b] = np.where(sub_metered[a:b, None], device, household + achieved)
        if gap_rate:
            energy_m[a:b][rng.uniform(0, 1, size=(c, T)) < gap_rate] = np.nan
        if spike_rate:
            energy_m[a:b][rng.uniform(0, 1, size=(c, T)) < spike_rate] = dtype(50.0)
    meter = MeterData(prosumers=pros, start=start, resolution=900, energy=energy_m, rating_kw=np.full(n, 11.0),
                      export_rating_kw=np.full(n, 0.5), history=history)

    market = MarketSales(
        participant="agg@vme.localhost",
        sold_kwh=requested * 0.95,
        price=rng.uniform(0.10, 0.30, size=T),
        imbalance_price=rng.uniform(0.05, 0.30, size=T),
    )
    return Population(meter=meter, offers=offers, schedules=schedules, default_start=default_start,
                      default_energy=default_energy, price_up=price_up, price_down=price_down, contracts=contracts,
                      contract_of=contract_of, market=market)
