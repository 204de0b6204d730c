"""GOFLEX's direct trading rule: schedule priced offers in merit order, only where it pays.

An aggregator trading directly on a market with a price series ``price[t]`` (EUR/kWh) can move
each offer away from its reference schedule (the baseline, what the device would do anyway).
Moving energy changes what the aggregator buys or sells on the market; the offer's own prices
(``up``/``down`` EUR per kWh of deviation per slice) are what the prosumer is paid for it:

    profit_i = sum_t price[t] * (reference_i[t] - load_i[t])  -  deviation cost_i

The rule, for every offer with prices:

1. find the schedule that maximises ``profit_i`` (the planner with the cost objective plus the
   offer's prices; the problem separates per offer, so this is each offer's own optimum);
2. rank offers by profit per kWh moved (``sum_t |load_i[t] - reference_i[t]|``), highest first:
   the merit order. For production this puts the cheapest flexible production first, for
   consumption the highest-value consumption; ties go to the larger profit, then the offer id;
3. walk the merit order: an offer is scheduled if its profit is positive and, when a
   ``volume_limit`` (kWh per interval the market takes at these prices) is given, if its
   deviation still fits under the limit in every interval;
4. every other offer is *postponed* when it can still be decided at ``next_decision`` (its
   assignment deadline and latest start allow it) and *rejected* otherwise, each with a reason.

Without a baseline the reference is each slice's bound nearest zero at the earliest start of the
first profile (a device left alone does as little as it must); it prices deviations only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from vmenergy.flexoffer import FlexOffer, Schedule

from .errors import PlanningError, check
from .objective import Objective, _series
from .scheduling import schedule_offers
from .solver import SolverReport

__all__ = ["trade_directly", "TradingResult"]


@dataclass
class TradingResult:
    """Outcome of :func:`trade_directly`.

    ``schedules``: offer id -> schedule for every scheduled offer; ``postponed`` and ``rejected``:
    offer id -> reason; ``merit_order``: the priced offers in the order they were considered;
    ``profit``: offer id -> expected profit (EUR) of its best schedule (scheduled or not);
    ``total_profit``: sum over scheduled offers.
    """

    schedules: dict[str, Schedule]
    postponed: dict[str, str]
    rejected: dict[str, str]
    merit_order: list[str]
    profit: dict[str, float]
    total_profit: float
    report: Optional[SolverReport] = None
    net_deviation: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _reference(fo: FlexOffer, now: int) -> tuple[int, int, np.ndarray]:
    """(profile, start, energies) of the offer's reference schedule."""
    if fo.baseline is not None:
        b = fo.baseline
        start = b.start if b.start is not None else fo.earliest_start(now, b.profile)
        return b.profile, int(start), np.asarray(b.energy, dtype=float)
    p = fo.profiles[0]
    lo = np.array([s.min for s in p.slices])
    hi = np.array([s.max for s in p.slices])
    return 0, int(fo.earliest_start(now, 0)), np.clip(0.0, lo, hi)


def _load(fo: FlexOffer, profile: int, start: int, energy: Sequence[float] | np.ndarray, h0: int,
          length: int) -> np.ndarray:
    """The schedule's kWh per interval on the horizon [h0, h0 + length) (outside it: dropped)."""
    out = np.zeros(length)
    per = fo.profiles[profile].spread(energy)
    t = start - h0 + np.arange(len(per))
    inside = (t >= 0) & (t < length)
    out[t[inside]] = per[inside]
    return out


def trade_directly(
    offers: Sequence[FlexOffer],
    prices: Union[Sequence[float], np.ndarray, Mapping[int, float]],
    start: Optional[int] = None,
    *,
    now: int,
    next_decision: Optional[int] = None,
    volume_limit: Union[None, float, Sequence[float], np.ndarray] = None,
    solver: str = "auto",
    time_limit: Optional[float] = None,
) -> TradingResult:
    """Apply the direct trading rule (module doc) to ``offers`` against ``prices`` from ``start``.

    ``now`` is the current interval (implicit offers are resolved with it); ``next_decision`` the
    interval of the next trading round (None: there is none, so unprofitable offers are
    rejected); ``volume_limit`` caps the absolute net deviation per interval (a number or a
    series aligned with ``prices``).
    """
    now = check.integer(now, "now")  # an interval number
    series = _series(prices, start, "prices")
    h0, length = series.start, len(series.values)
    price = series.values
    limit = None
    if volume_limit is not None:
        if isinstance(volume_limit, (int, float, np.integer, np.floating)) and not isinstance(volume_limit, bool):
            limit = np.full(length, float(volume_limit))
        else:
            limit = np.asarray(volume_limit, dtype=float)
            if limit.shape != (length,):
                raise PlanningError("volume_limit", f"must be one number or {length} values (one per price)")
        if not np.all(np.isfinite(limit)) or (limit < 0).any():
            raise PlanningError("volume_limit", "must be finite and >= 0")

    rejected: dict[str, str] = {}
    postponed: dict[str, str] = {}
    priced: list[FlexOffer] = []
    for i, fo in enumerate(offers):
        if not isinstance(fo, FlexOffer):
            raise PlanningError(f"offers[{i}]", f"not a FlexOffer: {type(fo).__name__}")
        if fo.prices is None:
            rejected[fo.id] = "prices: missing; the direct trading rule needs the offer's prices per slice"
        else:
            priced.append(fo)
    if not priced:
        return TradingResult({}, postponed, rejected, [], {}, 0.0, None, np.zeros(length))

    plan = schedule_offers(priced, Objective.cost(price, start=h0), solver=solver, now=now,
                           include_offer_prices=True, time_limit=time_limit, horizon=(h0, h0 + length))
    profit: dict[str, float] = {}
    moved: dict[str, np.ndarray] = {}
    for i, (fo, sched) in enumerate(zip(priced, plan.schedules)):
        rp, rs, rx = _reference(fo, now)
        if rs < h0 or rs + fo.profiles[rp].duration > h0 + length:
            raise PlanningError(f"offers[{i}].baseline.start",
                                f"the reference schedule at interval {rs} is not covered by the prices [{h0}, {h0 + length})")
        ref = _load(fo, rp, rs, rx, h0, length)
        new = _load(fo, sched.profile, sched.start, sched.energy, h0, length)
        dev_cost = _deviation_cost(fo, sched, rp, rx)
        profit[fo.id] = float(np.dot(price, ref - new)) - dev_cost
        moved[fo.id] = new - ref

    def unit(fo: FlexOffer) -> float:
        v = float(np.abs(moved[fo.id]).sum())
        return profit[fo.id] / v if v > 1e-12 else (math.inf if profit[fo.id] > 0 else -math.inf)

    ranked = sorted(priced, key=lambda fo: (-unit(fo), -profit[fo.id], fo.id))
    net = np.zeros(length)
    schedules: dict[str, Schedule] = {}
    by_id = {s.offer_id: s for s in plan.schedules}
    res = priced[0].resolution
    for fo in ranked:
        reason = None
        if profit[fo.id] <= 1e-9:
            reason = f"not profitable at these prices (best profit {profit[fo.id]:.4f} EUR)"
        elif limit is not None:
            after = net + moved[fo.id]
            over = np.flatnonzero(np.abs(after) > limit + 1e-9)
            if len(over):
                t = int(over[0])
                reason = (f"volume limit reached at interval {h0 + t} "
                          f"({abs(after[t]):.4f} kWh would exceed {limit[t]:.4f} kWh)")
        if reason is None:
            schedules[fo.id] = by_id[fo.id]
            net += moved[fo.id]
            continue
        latest = max((fo.latest_start(now, j) or now) for j in range(len(fo.profiles)))
        can_wait = (next_decision is not None and latest >= next_decision
                    and (fo.assignment_before is None or fo.assignment_before >= next_decision * res))
        if can_wait:
            postponed[fo.id] = f"{reason}; can be decided again at interval {next_decision}"
        else:
            rejected[fo.id] = f"{reason}; no later decision possible before its deadline"
    total = math.fsum(profit[k] for k in schedules)
    return TradingResult(schedules, postponed, rejected, [fo.id for fo in ranked], profit, total, plan.report, net)


def _deviation_cost(fo: FlexOffer, sched: Schedule, ref_profile: int, ref_energy: np.ndarray) -> float:
    """EUR the offer's prices charge for ``sched`` relative to the reference energies (slice by
    slice; slices beyond the reference's count compare with 0)."""
    if fo.prices is None:  # pragma: no cover - unpriced offers are rejected before planning
        raise PlanningError("prices", "missing; the direct trading rule needs the offer's prices per slice")
    cost = 0.0
    for q, e in enumerate(sched.energy):
        r = float(ref_energy[q]) if q < len(ref_energy) else 0.0
        if fo.baseline is None:
            s = fo.profiles[sched.profile].slices[q]
            r = min(max(0.0, s.min), s.max)
        p = fo.prices.for_slice(q)
        d = e - r
        cost += p.up * max(d, 0.0) + p.down * max(-d, 0.0)
    return cost
