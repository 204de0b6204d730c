"""What a plan is good for: objectives over the planning horizon, and capacity limits.

Every objective is a sum of three kinds of term over the per-interval flexible load ``L[t]``
(kWh in interval t summed over all scheduled offers, + consumption, - production):

- *linear*: ``price[t] * L[t]`` (lowest cost against a price series; energy min/max use +-1);
- *hinge*: ``over[t] * (L[t] - target[t])+ + under[t] * (target[t] - L[t])+`` (follow a target,
  balance an imbalance, follow market results with imbalance prices);
- *peak*: ``weight * max_t (base[t] + L[t])`` (peak shaving on top of an inflexible base load).

Keeping to these three keeps every objective convex and piecewise linear, so the MILP is exact
and the heuristic can evaluate each interval independently. Objectives add with ``+`` (for
example cost plus a peak charge). Series are given with the interval of their first value
(``start``); the planner aligns them to the horizon and refuses series that do not cover it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .errors import PlanningError, check

__all__ = ["Objective", "CapacityLimit", "Terms", "Hinge", "Peak", "Series"]

Number = Union[int, float]
SeriesLike = Union[Sequence[Number], np.ndarray, Mapping[int, Number]]


@dataclass(frozen=True, eq=False)
class Series:
    """Values per interval from ``start`` (absolute interval number) on."""

    start: int
    values: np.ndarray

    @property
    def end(self) -> int:
        return self.start + len(self.values)

    def aligned(self, start: int, length: int, *, fill: float | None, path: str) -> np.ndarray:
        """Values over [start, start + length); ``fill`` where not covered, or an error if None."""
        out = np.full(length, np.nan if fill is None else fill, dtype=np.float64)
        lo = max(start, self.start)
        hi = min(start + length, self.end)
        if hi > lo:
            out[lo - start : hi - start] = self.values[lo - self.start : hi - self.start]
        if fill is None and (lo > start or hi < start + length):
            raise PlanningError(
                path,
                f"covers intervals [{self.start}, {self.end}) but the planning horizon is "
                f"[{start}, {start + length}); give values for every interval of the horizon",
            )
        return out


def _number_or_series(values: SeriesLike | Number, start: Optional[int], path: str) -> Series | float:
    """A scalar (the same value at every interval) or a series (see :func:`_series`)."""
    if isinstance(values, (int, float, np.integer, np.floating)) and not isinstance(values, bool):
        v = float(values)
        if not math.isfinite(v):
            raise PlanningError(path, f"must be finite, got {values!r}")
        return v
    return _series(values, start, path)


def _series(values: SeriesLike | Number, start: Optional[int], path: str) -> Series:
    """Validate a series (sequence + start, or mapping interval -> value); a scalar is refused."""
    if isinstance(values, (int, float, np.integer, np.floating)) and not isinstance(values, bool):
        raise PlanningError(path, "must be a series (one value per interval), not a single number")
    if isinstance(values, Mapping):
        if not values:
            raise PlanningError(path, "must not be empty")
        keys = []
        for k in values:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
                raise PlanningError(path, f"keys must be interval numbers, got {k!r}")
            keys.append(int(k))
        lo, hi = min(keys), max(keys) + 1
        if hi - lo > 10_000_000:
            raise PlanningError(path, f"spans {hi - lo} intervals; too long")
        arr = np.zeros(hi - lo)
        for k, v in values.items():
            arr[int(k) - lo] = check.number(v, f"{path}[{k}]")
        return Series(lo, arr)
    if isinstance(values, (str, bytes)):
        raise PlanningError(path, "must be a list of numbers")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise PlanningError(path, "must be a list of numbers") from None
    if arr.ndim != 1 or len(arr) == 0:
        raise PlanningError(path, "must be a non-empty list of numbers")
    bad = np.flatnonzero(~np.isfinite(arr))
    if len(bad):
        raise PlanningError(f"{path}[{int(bad[0])}]", f"must be finite, got {arr[bad[0]]!r}")
    if start is None or isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise PlanningError(f"{path}.start", "give the interval number of the first value (start=...)")
    return Series(int(start), arr)


def _weight(value: SeriesLike | Number, start: Optional[int], path: str) -> Series | float:
    w = _number_or_series(value, start, path)
    arr = np.asarray([w]) if isinstance(w, float) else w.values
    if (arr < 0).any():
        raise PlanningError(path, "weights and penalties must be >= 0 (a negative one would reward deviation)")
    return w


@dataclass(frozen=True, eq=False)
class _Hinge:
    target: Series
    over: Series | float
    under: Series | float


@dataclass(frozen=True, eq=False)
class _Peak:
    weight: float
    base: Series | None


@dataclass(frozen=True, eq=False)
class Objective:
    """An objective for :func:`vmenergy.planning.schedule_offers`; build it with the factories.

    ``name`` says what it is (``target``, ``cost``, ``peak``, ...; joined with ``+`` for sums).
    """

    name: str
    prices: tuple[Series | float, ...] = ()
    hinges: tuple[_Hinge, ...] = ()
    peaks: tuple[_Peak, ...] = ()

    # -- factories --------------------------------------------------------------------------
    @classmethod
    def target(cls, values: SeriesLike, start: Optional[int] = None, *, over: SeriesLike | Number = 1.0,
               under: SeriesLike | Number = 1.0) -> "Objective":
        """Follow a target load (kWh per interval): minimise ``over*(L-target)+ + under*(target-L)+``.

        ``over``/``under`` weight running above/below the target (scalars or series from
        ``start``); equal weights give the plain absolute deviation.
        """
        t = _series(values, start, "objective.values")
        return cls("target", hinges=(_Hinge(t, _weight(over, t.start, "objective.over"),
                                             _weight(under, t.start, "objective.under")),))

    @classmethod
    def balance(cls, imbalance: SeriesLike, start: Optional[int] = None, *, over: SeriesLike | Number = 1.0,
                under: SeriesLike | Number = 1.0) -> "Objective":
        """Balance a forecast imbalance: the flexible load should be ``-imbalance``.

        ``imbalance[t]`` > 0 means the portfolio (or grid area) is short of consumption's
        counterpart, i.e. there is more load than supply: the flexible offers should consume
        less / produce more by that much. The objective is the remaining absolute imbalance.
        """
        t = _series(imbalance, start, "objective.values")
        neg = Series(t.start, -t.values)
        return cls("balance", hinges=(_Hinge(neg, _weight(over, t.start, "objective.over"),
                                             _weight(under, t.start, "objective.under")),))

    @classmethod
    def cost(cls, prices: SeriesLike, start: Optional[int] = None) -> "Objective":
        """Lowest cost: minimise ``sum price[t] * L[t]`` (EUR; production earns the price)."""
        p = _series(prices, start, "objective.prices")
        return cls("cost", prices=(p,))

    @classmethod
    def peak(cls, base_load: Optional[SeriesLike] = None, start: Optional[int] = None, *,
             weight: float = 1.0) -> "Objective":
        """Peak shaving: minimise ``weight * max_t (base_load[t] + L[t])``.

        ``base_load`` (kWh per interval, the inflexible load; 0 where not given) is optional.
        """
        w = check.number(weight, "objective.weight")
        if w < 0:
            raise PlanningError("objective.weight", "must be >= 0")
        base = None if base_load is None else _series(base_load, start, "objective.base_load")
        return cls("peak", peaks=(_Peak(w, base),))

    @classmethod
    def energy_min(cls) -> "Objective":
        """Least total energy (consume as little / produce as much as the offers allow)."""
        return cls("energy_min", prices=(1.0,))

    @classmethod
    def energy_max(cls) -> "Objective":
        """Most total energy (consume as much / produce as little as the offers allow)."""
        return cls("energy_max", prices=(-1.0,))

    @classmethod
    def follow_market(cls, commitment: SeriesLike, start: Optional[int] = None, *,
                      over_price: SeriesLike | Number = 1.0, under_price: SeriesLike | Number = 1.0) -> "Objective":
        """Deliver what was won on a market: the net energy per interval the portfolio committed to.

        ``commitment`` is a mapping interval -> kWh (+ bought / consumed, - sold / produced;
        :meth:`vmenergy.market.MarketResult.position` gives it) or a series from ``start``;
        intervals between the first and last key without a value count as 0. Deviations cost
        the imbalance prices ``over_price`` (EUR per kWh above the commitment) and
        ``under_price`` (below).
        """
        t = _series(commitment, start, "objective.commitment")
        return cls("follow_market", hinges=(_Hinge(t, _weight(over_price, t.start, "objective.over_price"),
                                                   _weight(under_price, t.start, "objective.under_price")),))

    def __add__(self, other: "Objective") -> "Objective":
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(f"{self.name}+{other.name}", self.prices + other.prices, self.hinges + other.hinges,
                         self.peaks + other.peaks)

    # -- horizon ----------------------------------------------------------------------------
    def span(self) -> Optional[tuple[int, int]]:
        """Intervals every series of the objective covers (their intersection), or None."""
        spans = [p for p in self.prices if isinstance(p, Series)] + [h.target for h in self.hinges]
        if not spans:
            return None
        lo = max(s.start for s in spans)
        hi = min(s.end for s in spans)
        if hi <= lo:
            raise PlanningError("objective", "its series do not overlap: no interval is covered by all of them")
        return lo, hi

    def terms(self, start: int, length: int) -> "Terms":
        """The objective as dense arrays over the horizon [start, start + length)."""
        price = np.zeros(length)
        for p in self.prices:
            price += p if isinstance(p, float) else p.aligned(start, length, fill=None, path="objective.prices")
        hinges = []
        for h in self.hinges:
            tgt = h.target.aligned(start, length, fill=None, path="objective.values")

            def w(x: Series | float, path: str) -> np.ndarray:
                return np.full(length, x) if isinstance(x, float) else x.aligned(start, length, fill=None, path=path)

            hinges.append(Hinge(tgt, w(h.over, "objective.over"), w(h.under, "objective.under")))
        peaks = [Peak(p.weight, np.zeros(length) if p.base is None else p.base.aligned(start, length, fill=0.0, path="objective.base_load"))
                 for p in self.peaks]
        return Terms(price, hinges, peaks)


@dataclass(eq=False)
class Hinge:
    target: np.ndarray
    over: np.ndarray
    under: np.ndarray


@dataclass(eq=False)
class Peak:
    weight: float
    base: np.ndarray


@dataclass(eq=False)
class Terms:
    """An objective as arrays over the horizon; what the solvers work with."""

    price: np.ndarray
    hinges: list[Hinge] = field(default_factory=list)
    peaks: list[Peak] = field(default_factory=list)

    def evaluate(self, load: np.ndarray) -> float:
        """Objective value of a per-interval load (same formula for every solver)."""
        value = math.fsum((self.price * load).tolist())
        for h in self.hinges:
            d = load - h.target
            value += math.fsum((h.over * np.maximum(d, 0.0) + h.under * np.maximum(-d, 0.0)).tolist())
        for p in self.peaks:
            value += p.weight * float(np.max(p.base + load)) if len(load) else 0.0
        return value


@dataclass(frozen=True, eq=False)
class CapacityLimit:
    """Limits on the net load of the offers behind one congestion point (kWh per interval).

    ``upper`` caps consumption (import), ``lower`` (usually negative) caps production (export);
    each is a number for every interval or a series from ``start``. Which offers sit behind
    the point is given to the planner as a mapping offer id -> point.
    """

    point: str
    upper: Optional[SeriesLike | Number] = None
    lower: Optional[SeriesLike | Number] = None
    start: Optional[int] = None

    def arrays(self, start: int, length: int, path: str) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(self.point, str) or not self.point:
            raise PlanningError(f"{path}.point", "must be a non-empty name")
        if self.upper is None and self.lower is None:
            raise PlanningError(path, "give upper, lower or both")

        def side(v, name: str, fill: float) -> np.ndarray:
            if v is None:
                return np.full(length, fill)
            s = _number_or_series(v, self.start, f"{path}.{name}")
            return np.full(length, s) if isinstance(s, float) else s.aligned(start, length, fill=fill, path=f"{path}.{name}")

        up = side(self.upper, "upper", np.inf)
        lo = side(self.lower, "lower", -np.inf)
        bad = np.flatnonzero(lo > up)
        if len(bad):
            raise PlanningError(f"{path}.lower", f"above upper at interval {start + int(bad[0])}")
        return up, lo
