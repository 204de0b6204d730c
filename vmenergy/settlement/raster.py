"""Placed slices to (prosumers x intervals) arrays for one block of prosumers.

A slice's energy is spread evenly over the intervals it covers; energy of the schedule counts
``+``, energy of the default schedule ``-``, so one weighted ``bincount`` gives the requested
adaptation ``r = scheduled - default`` of every prosumer and interval at once. Intervals outside
the period are cut off: each period settles its own intervals (the rest of an overnight schedule
is settled with the next day's metering).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from vmenergy.flexoffer.ragged import positions, sums_at

from .assignments import Assignments
from .errors import SettlementError

__all__ = ["Raster", "rasterise", "cell_prices"]


@dataclass(eq=False)
class Raster:
    """Per block: ``requested`` (r), ``default`` (placed default schedules, or None if not asked),
    ``covered`` (an interval some schedule or default touches), and for offer prices (or None):
    ``weight`` (sum of |kWh| of the slices in an interval) and ``price_up``/``price_down`` (sum of
    price x |kWh|, unpriced slices counting 0); see :func:`cell_prices`."""

    requested: np.ndarray
    covered: np.ndarray
    default: Optional[np.ndarray] = None
    weight: Optional[np.ndarray] = None
    price_up: Optional[np.ndarray] = None
    price_down: Optional[np.ndarray] = None


def rasterise(asg: Assignments, a: int, b: int, period_start: int, T: int, *, default: bool = False,
              prices: bool = False) -> Raster:
    """Rasters of meter rows [a, b) over intervals [period_start, period_start + T)."""
    c = b - a
    size = c * T
    lo, hi = int(asg.slice_offsets[a]), int(asg.slice_offsets[b])
    dur = asg.duration[lo:hi].astype(np.int64)
    rows = asg.prosumer[asg.owner[lo:hi]] - a
    t0 = asg.t0[lo:hi] - period_start
    per = asg.energy[lo:hi] / dur  # kWh per covered interval
    if len(dur) and (dur == 1).all():
        rep = None
        t = t0
        cell_rows = rows
    else:
        rep, within = positions(dur)  # every covered interval: its slice, its place in the slice
        t = t0[rep] + within
        cell_rows = rows[rep]
    inside = (t >= 0) & (t < T)
    cell = (cell_rows * T + t)[inside]

    def spread(values: np.ndarray) -> np.ndarray:
        v = values if rep is None else values[rep]
        return sums_at(cell, v[inside], size).reshape(c, T)

    sign = asg.sign[lo:hi]
    covered = np.zeros(size, dtype=bool)
    covered[cell] = True
    out = Raster(requested=spread(per * sign), covered=covered.reshape(c, T))
    if default:
        out.default = spread(np.where(sign < 0, per, 0.0))
    if prices:
        w = np.abs(per)
        out.weight = spread(w)
        out.price_up = spread(np.where(np.isnan(asg.price_up[lo:hi]), 0.0, asg.price_up[lo:hi]) * w)
        out.price_down = spread(np.where(np.isnan(asg.price_down[lo:hi]), 0.0, asg.price_down[lo:hi]) * w)
    return out


def cell_prices(ras: Raster, cell: np.ndarray, requested: np.ndarray) -> np.ndarray:
    """EUR/kWh at the given cells (flat indexes): the energy-weighted mean price of the slices
    running there, up price where ``requested`` > 0, down price otherwise; 0 where no energy runs."""
    if ras.weight is None or ras.price_up is None or ras.price_down is None:
        raise SettlementError("raster", "has no prices: rasterise it with prices=True")
    w = ras.weight.ravel()[cell]
    pw = np.where(requested > 0, ras.price_up.ravel()[cell], ras.price_down.ravel()[cell])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w > 0, pw / w, 0.0)
