"""Flexibility-loss metrics of an aggregation run.

Definitions (docs/aggregation.md has the reasoning):

- time flexibility of an offer: intervals its start can move (core measure, max over its
  available profiles). After aggregation a member can move only as far as its aggregate can, so
  the time-flexibility loss is ``sum over members (tf_member - tf_aggregate)``, in
  member-intervals; per offer it is that divided by the number of members.
- energy flexibility: sum over slices of (max - min), kWh (core measure, max over profiles).
  After aggregation it is the aggregates' own energy flexibility; the loss is what the members
  had minus what the aggregates offer: boxes shrunk to fit totals, polytopes and discrete values,
  and exclusive-OR alternatives given up. (Summing slice bounds itself loses nothing.)
- product flexibility: time x energy flexibility (interval·kWh), before and after.
- compression ratio: members per aggregate.

Excluded offers are not members: they are counted and their flexibility reported separately.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Optional

import numpy as np

from vmenergy.flexoffer import FlexOfferError

from .members import energy_flexibility_before
from .offer import AggregatedFlexOffer, AggregationResult
from .run import AggregationRun

__all__ = ["FlexibilityLoss", "flexibility_loss"]


@dataclass(frozen=True)
class FlexibilityLoss:
    n_offers: int
    n_members: int
    n_excluded: int
    n_aggregates: int
    compression_ratio: float
    time_before: float
    time_after: float
    time_loss: float
    time_loss_per_offer: float
    time_loss_ratio: float
    energy_before: float
    energy_after: float
    energy_loss: float
    energy_loss_per_offer: float
    energy_loss_ratio: float
    product_before: float
    product_after: float
    product_loss_ratio: float
    excluded_time: float
    excluded_energy: float

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (
            f"{self.n_members} members -> {self.n_aggregates} aggregates (compression {self.compression_ratio:.1f}x, "
            f"{self.n_excluded} excluded); time-flexibility loss {self.time_loss:,.0f} member-intervals "
            f"({self.time_loss_per_offer:.3f}/offer, {100 * self.time_loss_ratio:.2f}%); energy-flexibility loss "
            f"{self.energy_loss:.6g} kWh ({self.energy_loss_per_offer:.4g}/offer, "
            f"{100 * self.energy_loss_ratio:.2f}%); "
            f"product-flexibility loss {100 * self.product_loss_ratio:.2f}%"
        )


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def flexibility_loss(aggregates: Iterable[AggregatedFlexOffer], excluded: Optional[Mapping[str, str]] = None, *,
                     excluded_flexibility: Optional[tuple[float, float]] = None) -> FlexibilityLoss:
    """Loss metrics of the run(s) that made ``aggregates`` (see the module docstring).

    ``aggregates``: an :class:`AggregationResult` (its exclusions are used), the aggregates of an
    :class:`~vmenergy.aggregation.incremental.IncrementalAggregator`, or any list of aggregates.
    ``excluded``: offer id -> reason, when not taken from the result. ``excluded_flexibility``:
    (time, energy) flexibility of the excluded offers, when known from elsewhere.
    """
    aggs = list(aggregates)
    if isinstance(aggregates, AggregationResult) and excluded is None:
        excluded = aggregates.excluded
    by_run: dict[int, tuple[AggregationRun, list[int]]] = {}
    for a in aggs:
        if not isinstance(a, AggregatedFlexOffer) or a.run is None:
            raise FlexOfferError("aggregates", f"{getattr(a, 'id', a)!r} is not an aggregate with member information")
        by_run.setdefault(id(a.run), (a.run, []))[1].append(a.position)
    n_members = 0
    tb = ta = eb = ea = pb = pa = 0.0
    ex_t = ex_e = 0.0
    for run, positions in by_run.values():
        pos = np.asarray(positions, dtype=np.int64)
        g = run.groups
        sizes = (g.offsets[pos + 1] - g.offsets[pos]).astype(np.float64)
        rows = np.concatenate([g.rows[g.offsets[p]:g.offsets[p + 1]] for p in positions])
        n_members += len(rows)
        mem = run.members
        efb = energy_flexibility_before(mem, run.offers)
        tb += math.fsum(mem.tf_before[rows].tolist())
        eb += math.fsum(efb[rows].tolist())
        pb += math.fsum((mem.tf_before[rows] * efb[rows]).tolist())
        W = run.U - run.L
        ef_agg = np.array([math.fsum(W[run.slice_offsets[p]:run.slice_offsets[p + 1]].tolist()) for p in positions])
        tf_agg = run.tf[pos].astype(np.float64)
        ta += math.fsum((tf_agg * sizes).tolist())
        ea += math.fsum(ef_agg.tolist())
        pa += math.fsum((tf_agg * ef_agg).tolist())
        if isinstance(aggregates, AggregationResult):
            out = np.flatnonzero(~mem.ok)
            ex_t += math.fsum(mem.tf_before[out].tolist())
            ex_e += math.fsum(efb[out].tolist())
    if excluded_flexibility is not None:
        ex_t, ex_e = excluded_flexibility
    n_ex = len(excluded or {})
    n_aggs = len(aggs)
    return FlexibilityLoss(
        n_offers=n_members + n_ex,
        n_members=n_members,
        n_excluded=n_ex,
        n_aggregates=n_aggs,
        compression_ratio=_ratio(n_members, n_aggs),
        time_before=tb,
        time_after=ta,
        time_loss=tb - ta,
        time_loss_per_offer=_ratio(tb - ta, n_members),
        time_loss_ratio=_ratio(tb - ta, tb),
        energy_before=eb,
        energy_after=ea,
        energy_loss=eb - ea,
        energy_loss_per_offer=_ratio(eb - ea, n_members),
        energy_loss_ratio=_ratio(eb - ea, eb),
        product_before=pb,
        product_after=pa,
        product_loss_ratio=_ratio(pb - pa, pb),
        excluded_time=ex_t,
        excluded_energy=ex_e,
    )
