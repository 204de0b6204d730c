"""Key performance indicators after the GOFLEX list, from a settlement and the traded offers.

- **Load adaptability level per hour**: demand variation / peak demand. The demand variation of
  hour h is (highest - lowest) energy the offers could place in h, using their time flexibility
  (every start in the window) and amount flexibility (slice min..max); peak demand is the largest
  hourly metered demand of the portfolio in the period. The envelope treats intervals one at a
  time and ignores total-energy and polytope constraints, so it is an upper bound of what can be
  reached in all hours at once (exactly what "level of adaptability" asks: how far each hour can
  move).
- **Adaptation per hour (MWh)**: planned = sum over the hour's intervals of |scheduled - default|
  of the portfolio (optimised schedules vs baseline behaviour); delivered = the same from metering
  (metered - baseline in usable covered intervals, scheduled where unverified).
- **Factual revenues/savings (EUR)**: market revenue, imbalance cost, earnings, payouts to
  prosumers and margin, from the bills (exact cents); savings = energy cost avoided at the given
  energy prices, sum_t price_t x (baseline_t - metered_t), when prices are given.
- **Projected EUR/MW/year**: earnings annualised (x seconds per year / seconds in the period) per
  MW of flexible capacity; capacity is the largest demand variation of an interval as power
  (from the offers) or, without offers, the largest requested adaptation as power.
- **Projections for populations k = 10, 100, 1,000 times larger**: capacity and adaptation scale
  with k (more of the same prosumers); revenue scales with k while the market takes the volume
  (price taker), and not beyond ``market_depth_mw`` when given; imbalance cost scales with sqrt(k),
  because deviations of independent prosumers add in quadrature while the volume adds linearly.
  These are stated assumptions, not a market model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from vmenergy.flexoffer import FlexOffer, FlexOfferSet
from vmenergy.flexoffer.ragged import sums_at

from .errors import SettlementError, check
from .money import format_eur
from .settle import Settlement

__all__ = ["KPIReport", "Projection", "kpis", "flexibility_envelope", "hourly", "SECONDS_PER_YEAR", "SCALES"]

SECONDS_PER_YEAR = 365 * 86400
SCALES = (10, 100, 1000)


@dataclass(frozen=True)
class Projection:
    """KPIs of a population ``scale`` times larger (see module docstring for the assumptions)."""

    scale: int
    flexible_capacity_mw: float
    adaptation_planned_mwh: float
    revenue_eur: float
    imbalance_cost_eur: float
    earnings_eur: float
    eur_per_mw_year: Optional[float]


@dataclass(frozen=True)
class KPIReport:
    """KPIs of one or more market participants over one settlement period."""

    participants: tuple[str, ...]
    period_start: int  # epoch seconds
    period_end: int
    hours: tuple[int, ...]  # epoch seconds at which each hour starts
    load_adaptability: Optional[tuple[float, ...]]
    demand_variation_kwh: Optional[tuple[float, ...]]
    peak_demand_kw: float
    adaptation_planned_mwh: tuple[float, ...]
    adaptation_delivered_mwh: tuple[float, ...]
    revenue_eur: str
    imbalance_cost_eur: str
    earnings_eur: str
    payouts_eur: str
    margin_eur: str
    savings_eur: Optional[float]
    flexible_capacity_mw: float
    capacity_basis: str
    eur_per_mw_year: Optional[float]
    projections: tuple[Projection, ...]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["projections"] = [asdict(p) for p in self.projections]
        return out


def _profile_bounds(fo: FlexOffer, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-interval min and max of profile j (slice energy spread over its duration)."""
    p = fo.profiles[j]
    return p.spread([s.min for s in p.slices]), p.spread([s.max for s in p.slices])


def flexibility_envelope(offers: Iterable[FlexOffer] | FlexOfferSet, period_start: int, n_intervals: int,
                         resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(lowest, highest) energy per interval of the period that the offers could place there.

    At each interval: the max (min) over every profile and every start in the profile's window of
    the slice max (min) running there, 0 where a start leaves the interval idle. Summed over
    offers. Implicit windows are resolved at the period start.
    """
    lower = np.zeros(n_intervals)
    upper = np.zeros(n_intervals)
    items = (offers.offer(i) for i in range(len(offers))) if isinstance(offers, FlexOfferSet) else offers
    for k, fo in enumerate(items):
        if not isinstance(fo, FlexOffer):
            raise SettlementError(f"offers[{k}]", f"not a FlexOffer: {type(fo).__name__}")
        if fo.resolution != resolution:
            raise SettlementError(f"offers[{k}].resolution",
                                  f"{fo.resolution} s differs from the period's {resolution} s")
        lows, highs = [], []  # per profile: the least and most it can place at each interval
        for j in range(len(fo.profiles)):
            es = fo.earliest_start(period_start, j)
            ls = fo.latest_start(period_start, j)
            lo, hi = _profile_bounds(fo, j)
            w = max(0, ls - es)
            L = len(lo)
            # position p covers absolute interval es + p, p in [0, L + w)
            win_hi = np.lib.stride_tricks.sliding_window_view(np.pad(hi, (w, w)), w + 1).max(axis=1)
            win_lo = np.lib.stride_tricks.sliding_window_view(np.pad(lo, (w, w)), w + 1).min(axis=1)
            seg_lo = np.zeros(n_intervals)
            seg_hi = np.zeros(n_intervals)
            a = es - period_start
            src = np.arange(L + w)
            t = a + src
            ok = (t >= 0) & (t < n_intervals)
            seg_lo[t[ok]] = win_lo[src[ok]]
            seg_hi[t[ok]] = win_hi[src[ok]]
            lows.append(seg_lo)
            highs.append(seg_hi)
        lower += np.minimum.reduce(lows)  # the offer runs one of its profiles
        upper += np.maximum.reduce(highs)
    return lower, upper


def hourly(series: np.ndarray, period_start: int, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(hour start times in epoch seconds, sums of ``series`` per clock hour). Intervals longer
    than an hour are spread evenly over their hours."""
    series = np.asarray(series, dtype=np.float64)
    T = len(series)
    if resolution <= 3600:
        secs = (period_start + np.arange(T)) * resolution
        hour = secs // 3600
        values = series
    else:
        k = resolution // 3600
        secs = np.repeat((period_start + np.arange(T)) * resolution, k) + np.tile(np.arange(k) * 3600, T)
        hour = secs // 3600
        values = np.repeat(series / k, k)
    first = int(hour[0]) if T else 0
    idx = hour - first
    sums = sums_at(idx, values, int(idx.max()) + 1 if T else 0)
    return (first + np.arange(len(sums))) * 3600, sums


def kpis(
    settlement: Settlement,
    offers: Optional[Iterable[FlexOffer] | FlexOfferSet] = None,
    *,
    participants: Optional[Sequence[str]] = None,
    energy_price: Optional[np.ndarray] = None,
    scales: Sequence[int] = SCALES,
    market_depth_mw: Optional[float] = None,
) -> KPIReport:
    """GOFLEX KPIs of ``participants`` (default: every aggregator of the settlement).

    ``offers``: the (aggregated) offers the participants traded, for the load adaptability level
    and the flexible capacity; ``energy_price`` (EUR/kWh per interval) for savings;
    ``market_depth_mw`` caps projected revenue (see module docstring).
    """
    s = settlement
    names = tuple(s.aggregators if participants is None else participants)
    rows = []
    for name in names:
        if name not in s.aggregators:
            raise SettlementError("participants", f"no participant {name!r} (have: {', '.join(s.aggregators)})")
        rows.append(s.aggregators.index(name))
    T, res, start = s.n_intervals, s.resolution, s.period_start
    port = {k: v[rows].sum(axis=0) if rows else np.zeros(T) for k, v in s.portfolio.items()}
    hours, measured_h = hourly(port["measured"], start, res)
    _, planned_h = hourly(np.abs(port["requested"]), start, res)
    _, delivered_h = hourly(np.abs(port["delivered"]), start, res)
    peak_kw = float(np.max(np.abs(measured_h))) if len(measured_h) else 0.0  # kWh per clock hour == average kW
    adaptability = variation = None
    to_mw = 3600.0 / res / 1000.0  # kWh per interval -> MW
    if offers is not None:
        lower, upper = flexibility_envelope(offers, start, T, res)
        _, var_h = hourly(upper - lower, start, res)
        variation = tuple(float(x) for x in var_h)
        if peak_kw > 0:
            adaptability = tuple(float(x) / peak_kw for x in var_h)
        capacity = float(np.max(upper - lower)) * to_mw if T else 0.0
        basis = "largest demand variation of an interval (offers' time and amount flexibility)"
    else:
        capacity = float(np.max(np.abs(port["requested"]))) * to_mw if T else 0.0
        basis = "largest requested adaptation of an interval (no offers given)"
    parts = [s.participants[g] for g in rows]
    revenue = sum(p.revenue_cents for p in parts)
    imbalance = sum(p.imbalance_cents for p in parts)
    payouts = sum(p.payouts_cents for p in parts)
    earnings = revenue - imbalance
    savings = None
    if energy_price is not None:
        ep = np.asarray(energy_price, dtype=np.float64)
        if ep.shape != (T,) or not np.all(np.isfinite(ep)):
            raise SettlementError("energy_price", f"must be {T} finite prices (EUR/kWh), one per interval")
        savings = float(ep @ (port["baseline"] - port["measured"]))
    annual = SECONDS_PER_YEAR / (T * res)

    def per_mw_year(eur: float, mw: float) -> Optional[float]:
        return eur * annual / mw if mw > 0 else None

    projections = []
    for k in scales:
        check.integer(k, "scales", minimum=1)
        cap_k = capacity * k
        volume_factor = float(k)
        if market_depth_mw is not None and capacity > 0:
            volume_factor = min(float(k), market_depth_mw / capacity)
        rev_k = revenue / 100.0 * volume_factor
        imb_k = imbalance / 100.0 * math.sqrt(k)
        projections.append(Projection(
            scale=k, flexible_capacity_mw=cap_k, adaptation_planned_mwh=float(planned_h.sum()) / 1000.0 * k,
            revenue_eur=rev_k, imbalance_cost_eur=imb_k, earnings_eur=rev_k - imb_k,
            eur_per_mw_year=per_mw_year(rev_k - imb_k, cap_k),
        ))
    return KPIReport(
        participants=names, period_start=start * res, period_end=(start + T) * res,
        hours=tuple(int(h) for h in hours), load_adaptability=adaptability, demand_variation_kwh=variation,
        peak_demand_kw=peak_kw, adaptation_planned_mwh=tuple(float(x) / 1000.0 for x in planned_h),
        adaptation_delivered_mwh=tuple(float(x) / 1000.0 for x in delivered_h),
        revenue_eur=format_eur(revenue), imbalance_cost_eur=format_eur(imbalance), earnings_eur=format_eur(earnings),
        payouts_eur=format_eur(payouts), margin_eur=format_eur(earnings - payouts), savings_eur=savings,
        flexible_capacity_mw=capacity, capacity_basis=basis, eur_per_mw_year=per_mw_year(earnings / 100.0, capacity),
        projections=tuple(projections),
    )
