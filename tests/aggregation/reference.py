"""A straightforward pure-Python implementation of the same aggregation and disaggregation.

Two uses: the benchmark measures the columnar engine against it in the same run (the speed ratio
it reports), and the tests use it as an independent oracle (the engine must give the same
aggregates, bit for bit, on the offers it covers). It covers what the benchmark generates:
single-profile offers with explicit windows, one-interval slices and no totals, polytopes or
discrete values; anything else raises ``ValueError``. Loops over Python objects, dicts and lists
only: how one would first write it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vmenergy.flexoffer import FlexOffer, Profile, Slice

from vmenergy.aggregation.alignment import aggregate_label
from vmenergy.aggregation.grouping import cell_name
from vmenergy.aggregation.params import FLEX_AWARE, AggregationParams

__all__ = ["RefAggregate", "reference_aggregate", "reference_disaggregate"]


@dataclass
class RefAggregate:
    offer: FlexOffer
    members: list[tuple[FlexOffer, int]]  # (member, offset)


def reference_aggregate(offers: list[FlexOffer], params: AggregationParams) -> list[RefAggregate]:
    info = []
    cells: dict[tuple, list[int]] = {}
    for i, fo in enumerate(offers):
        if len(fo.profiles) != 1 or fo.start_after is None or fo.start_before is None:
            raise ValueError(f"{fo.id}: the reference covers single-profile offers with explicit windows only")
        p = fo.profiles[0]
        if p.total is not None or p.polytope is not None or p.start_after is not None or p.start_before is not None:
            raise ValueError(f"{fo.id}: the reference covers offers without totals, polytopes or profile windows")
        lo, hi = [], []
        for s in p.slices:
            if s.duration != 1 or s.values is not None:
                raise ValueError(f"{fo.id}: the reference covers one-interval continuous slices only")
            lo.append(s.min)
            hi.append(s.max)
        if fo.state not in params.states:
            raise ValueError(f"{fo.id}: state {fo.state.value} is not aggregated")
        est, tf = fo.start_after, fo.start_before - fo.start_after
        if params.mix_directions:
            direction = 0
        elif min(lo) >= 0:
            direction = 0
        elif max(hi) <= 0:
            direction = 1
        else:
            direction = 2
        info.append((est, tf, lo, hi))
        cell = (None, fo.resolution, direction, est // params.est_tolerance, tf // params.tf_tolerance)
        cells.setdefault(cell, []).append(i)
    out = []
    for cell in sorted(cells, key=lambda c: c[1:]):
        members = cells[cell]
        if params.method == FLEX_AWARE:
            members = sorted(members, key=lambda i: (info[i][1], info[i][0]))
        n = len(members)
        k = 1 if params.max_offers is None else -(-n // params.max_offers)
        bins: list[list[int]] = [[] for _ in range(k)]
        for rank, i in enumerate(members):
            bins[rank * k // n].append(i)
        for b, rows in enumerate(bins):
            e0 = min(info[i][0] for i in rows)
            tf0 = min(info[i][1] for i in rows)
            length = max(info[i][0] - e0 + len(info[i][2]) for i in rows)
            L = [0.0] * length
            U = [0.0] * length
            for i in sorted(rows):  # arrival order, as the engine adds
                est, _, lo, hi = info[i]
                for k2, (a, c) in enumerate(zip(lo, hi)):
                    L[est - e0 + k2] += a
                    U[est - e0 + k2] += c
            res = offers[rows[0]].resolution
            agg = FlexOffer(
                id=cell_name(params, cell, b, False),
                profiles=(Profile(tuple(Slice(1, a, c) for a, c in zip(L, U))),),
                issuer=params.issuer,
                label=aggregate_label(len(rows), params),
                resolution=res,
                start_after=e0,
                start_before=e0 + tf0,
            )
            out.append(RefAggregate(agg, [(offers[i], info[i][0] - e0) for i in rows]))
    return out


def reference_disaggregate(agg: RefAggregate, start: int, energy: list[float]) -> dict[str, tuple[int, list[float]]]:
    """offer id -> (start, energy per slice) for a feasible aggregate schedule (not re-checked)."""
    slices = agg.offer.profiles[0].slices
    f = []
    for x, s in zip(energy, slices):
        w = s.max - s.min
        f.append(min(1.0, max(0.0, (x - s.min) / w)) if w > 0 else 0.0)
    out = {}
    for fo, offset in agg.members:
        e = []
        for k, s in enumerate(fo.profiles[0].slices):
            e.append(s.min + f[offset + k] * (s.max - s.min))
        out[fo.id] = (start + offset, e)
    return out


def reference_time_loss(aggs: list[RefAggregate]) -> float:
    """Sum over members of (own time flexibility - aggregate's)."""
    total = []
    for agg in aggs:
        tf0 = agg.offer.start_before - agg.offer.start_after
        for fo, _ in agg.members:
            total.append(fo.start_before - fo.start_after - tf0)
    return math.fsum(total)
