"""A planning problem in the form both solvers use: offers cut into rows, aligned to a horizon.

A *row* is one exclusive-OR profile of one offer with the start window it really has: the offer's
window narrowed by the profile's own window, made explicit with ``now`` for implicit offers, and
clipped so the whole profile runs inside the horizon. An offer with three profiles is three rows
of which a plan picks exactly one. Doing this once, with every input error reported by path,
keeps the MILP, the heuristic and the trading rule free of special cases.

Slice energy is spread evenly over the slice's intervals (``energy / duration`` per interval):
the flex-offer fixes only the slice total, and an even spread is what a device running at
constant power does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import numpy as np

from vmenergy.flexoffer import FlexOffer, Polytope

from .errors import PlanningError, check
from .objective import CapacityLimit, Objective, Terms

__all__ = ["Row", "Problem", "prepare", "MAX_HORIZON"]

#: A longer horizon than ten years of 15-minute intervals is certainly a unit error.
MAX_HORIZON = 366 * 96 * 10


@dataclass(eq=False)
class Row:
    """One profile of one offer with its effective start window (absolute intervals, inclusive)."""

    offer: int
    profile: int
    first: int
    last: int
    lo: np.ndarray
    hi: np.ndarray
    dur: np.ndarray
    off: np.ndarray
    tmin: float
    tmax: float
    polytope: Optional[Polytope]
    values: tuple[Optional[tuple[float, ...]], ...]
    ref: np.ndarray
    up: np.ndarray
    down: np.ndarray

    @property
    def n_slices(self) -> int:
        return len(self.lo)

    @property
    def duration(self) -> int:
        return int(self.dur.sum())

    @property
    def n_starts(self) -> int:
        return self.last - self.first + 1

    @property
    def special(self) -> bool:
        """True if the energy is not just slice bounds plus a total (polytope, discrete values)."""
        return self.polytope is not None or any(v is not None for v in self.values)

    @property
    def priced(self) -> bool:
        return bool(np.any(self.up) or np.any(self.down))

    def deviation_cost(self, x: np.ndarray) -> float:
        """EUR the offer's prices charge for moving slice energies away from the reference."""
        d = np.asarray(x, dtype=float) - self.ref
        return float(np.sum(self.up * np.maximum(d, 0.0) + self.down * np.maximum(-d, 0.0)))

    def spread(self, x: np.ndarray) -> np.ndarray:
        """Per-interval load of energies ``x`` (length ``duration``), each slice spread evenly."""
        return np.repeat(np.asarray(x, dtype=float) / self.dur, self.dur)


@dataclass(eq=False)
class Problem:
    """Everything a solver needs; built by :func:`prepare`."""

    offers: list[FlexOffer]
    rows: list[Row]
    rows_of: list[list[int]]
    start: int
    length: int
    terms: Terms
    resolution: int
    now: Optional[int]
    points: list[str] = field(default_factory=list)
    point_of_offer: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    cap_upper: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    cap_lower: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    capacity_penalty: float = 0.0

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def n_points(self) -> int:
        return len(self.points)

    def load_of(self, rows: Sequence[int], starts: Sequence[int], energies: Sequence[np.ndarray]) -> np.ndarray:
        """Total per-interval load over the horizon of the given (row, absolute start, energy)."""
        load = np.zeros(self.length)
        for r, s, x in zip(rows, starts, energies):
            row = self.rows[r]
            a = s - self.start
            load[a : a + row.duration] += row.spread(x)
        return load

    def point_loads(self, rows: Sequence[int], starts: Sequence[int], energies: Sequence[np.ndarray]) -> np.ndarray:
        out = np.zeros((self.n_points, self.length))
        for r, s, x in zip(rows, starts, energies):
            row = self.rows[r]
            p = self.point_of_offer[row.offer]
            if p >= 0:
                a = s - self.start
                out[p, a : a + row.duration] += row.spread(x)
        return out

    def capacity_violation(self, point_loads: np.ndarray) -> np.ndarray:
        """kWh above the upper / below the lower limit, per point and interval."""
        if self.n_points == 0:
            return np.zeros((0, self.length))
        return np.maximum(point_loads - self.cap_upper, 0.0) + np.maximum(self.cap_lower - point_loads, 0.0)


def _window(fo: FlexOffer, j: int, now: Optional[int], i: int) -> tuple[int, int]:
    """Start window of profile j; with ``now`` no start lies in the past (a plan cannot start
    a device before the moment it is made)."""
    lo = fo.earliest_start(now, j)
    hi = fo.latest_start(now, j)
    if lo is None or hi is None:
        raise PlanningError(f"offers[{i}].start_after",
                            "the offer has implicit time flexibility; pass now (the current interval) to plan it")
    if now is not None:
        lo = max(lo, now)
    return lo, hi


def prepare(
    offers: Sequence[FlexOffer],
    objective: Objective,
    *,
    now: Optional[int] = None,
    horizon: Optional[tuple[int, int]] = None,
    capacity: Sequence[CapacityLimit] = (),
    congestion_points: Optional[Mapping[str, str]] = None,
    include_offer_prices: bool = False,
    capacity_penalty: float = 1000.0,
) -> Problem:
    """Validate the inputs of a planning call and cut the offers into rows (see module doc)."""
    if isinstance(offers, (str, bytes, FlexOffer)) or not isinstance(offers, Sequence):
        raise PlanningError("offers", "must be a list of FlexOffer")
    if not isinstance(objective, Objective):
        raise PlanningError("objective", "must be an Objective (use Objective.target(...), .cost(...), ...)")
    now = check.optional_integer(now, "now")  # an interval number
    offers = list(offers)
    seen: dict[str, int] = {}
    resolution = None
    for i, fo in enumerate(offers):
        if not isinstance(fo, FlexOffer):
            raise PlanningError(f"offers[{i}]", f"not a FlexOffer: {type(fo).__name__}")
        if fo.id in seen:
            raise PlanningError(f"offers[{i}].id", f"duplicate id {fo.id!r} (also offers[{seen[fo.id]}])")
        seen[fo.id] = i
        if resolution is None:
            resolution = fo.resolution
        elif fo.resolution != resolution:
            raise PlanningError(f"offers[{i}].resolution",
                                f"{fo.resolution} s differs from offers[0]'s {resolution} s; plan one resolution at a time")
    if not (isinstance(capacity_penalty, (int, float)) and capacity_penalty >= 0 and np.isfinite(capacity_penalty)):
        raise PlanningError("capacity_penalty", "must be a finite number >= 0")

    # windows of every profile, before the horizon is known
    windows: list[list[Optional[tuple[int, int]]]] = []
    for i, fo in enumerate(offers):
        ws: list[Optional[tuple[int, int]]] = []
        for j in range(len(fo.profiles)):
            earliest, latest = _window(fo, j, now, i)
            ws.append((earliest, latest) if earliest <= latest else None)
        if all(w is None for w in ws):
            raise PlanningError(f"offers[{i}].start_before",
                                f"no start left in its window at now={now} (every profile's latest start has passed)")
        windows.append(ws)

    # horizon: given, else what the objective's series cover, else what the offers need
    if horizon is not None:
        try:
            h0, h1 = (int(horizon[0]), int(horizon[1]))
        except (TypeError, ValueError, IndexError):
            raise PlanningError("horizon", "must be (first interval, end interval) with end exclusive") from None
    elif objective.span() is not None:
        h0, h1 = objective.span()  # type: ignore[misc]
    elif offers:
        h0 = min(w[0] for ws in windows for w in ws if w is not None)
        h1 = max(w[1] + fo.profiles[j].duration for fo, ws in zip(offers, windows)
                 for j, w in enumerate(ws) if w is not None)
    else:
        h0, h1 = (now or 0), (now or 0) + 1
    if h1 <= h0:
        raise PlanningError("horizon", f"end {h1} must be after start {h0}")
    if h1 - h0 > MAX_HORIZON:
        raise PlanningError("horizon", f"{h1 - h0} intervals is longer than {MAX_HORIZON}")
    terms = objective.terms(h0, h1 - h0)

    rows: list[Row] = []
    rows_of: list[list[int]] = []
    for i, fo in enumerate(offers):
        mine = []
        base = fo.baseline
        for j, p in enumerate(fo.profiles):
            w = windows[i][j]
            if w is None:
                continue
            dur = np.array([s.duration for s in p.slices], dtype=np.int64)
            first = max(w[0], h0)
            last = min(w[1], h1 - int(dur.sum()))
            if first > last:
                continue
            lo = np.array([s.min for s in p.slices])
            hi = np.array([s.max for s in p.slices])
            k = len(lo)
            if include_offer_prices and fo.prices is not None:
                up = np.array([fo.prices.for_slice(q).up for q in range(k)])
                down = np.array([fo.prices.for_slice(q).down for q in range(k)])
            else:
                up = np.zeros(k)
                down = np.zeros(k)
            if base is not None:
                ref = np.zeros(k)
                m = min(k, len(base.energy))
                ref[:m] = base.energy[:m]
            else:
                ref = np.clip(0.0, lo, hi)
            t = p.total
            rows.append(Row(
                offer=i, profile=j, first=first, last=last, lo=lo, hi=hi, dur=dur,
                off=np.concatenate([[0], np.cumsum(dur)[:-1]]).astype(np.int64),
                tmin=-np.inf if t is None or t.min is None else t.min,
                tmax=np.inf if t is None or t.max is None else t.max,
                polytope=p.polytope, values=tuple(s.values for s in p.slices), ref=ref, up=up, down=down,
            ))
            mine.append(len(rows) - 1)
        if not mine:
            lo_ = min(w[0] for w in windows[i] if w is not None)
            hi_ = max(w[1] for w in windows[i] if w is not None)
            raise PlanningError(f"offers[{i}]",
                                f"cannot run inside the planning horizon [{h0}, {h1}) "
                                f"(starts allowed in [{lo_}, {hi_}], profiles last "
                                f"{', '.join(str(p.duration) for p in fo.profiles)} intervals)")
        rows_of.append(mine)

    prob = Problem(offers=offers, rows=rows, rows_of=rows_of, start=h0, length=h1 - h0, terms=terms,
                   resolution=resolution or 900, now=now, capacity_penalty=float(capacity_penalty))

    # congestion points
    point_of_offer = np.full(len(offers), -1, dtype=np.int64)
    if capacity:
        if isinstance(capacity, CapacityLimit):
            capacity = [capacity]
        names: dict[str, int] = {}
        ups, los = [], []
        for q, lim in enumerate(capacity):
            if not isinstance(lim, CapacityLimit):
                raise PlanningError(f"capacity[{q}]", "must be a CapacityLimit")
            if lim.point in names:
                raise PlanningError(f"capacity[{q}].point", f"{lim.point!r} is limited twice")
            up, lo = lim.arrays(h0, h1 - h0, f"capacity[{q}]")
            names[lim.point] = len(names)
            ups.append(up)
            los.append(lo)
        mapping = dict(congestion_points or {})
        for oid, point in mapping.items():
            if oid not in seen:
                raise PlanningError(f"congestion_points[{oid!r}]", "no offer with this id")
            if point in names:
                point_of_offer[seen[oid]] = names[point]
        prob.points = list(names)
        prob.cap_upper = np.array(ups)
        prob.cap_lower = np.array(los)
    elif congestion_points:
        for oid in congestion_points:
            if oid not in seen:
                raise PlanningError(f"congestion_points[{oid!r}]", "no offer with this id")
    prob.point_of_offer = point_of_offer
    return prob
