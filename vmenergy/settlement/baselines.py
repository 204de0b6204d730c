"""Baselines: what the meter would have shown without activation, for a block of prosumers.

Each function takes arrays of one block of prosumers (rows) and returns a (rows x T) float64
baseline; NaN where it cannot be computed (the interval is then flagged NO_BASELINE and not
verified). All are vectorised over prosumers; ``tests/settlement/reference.py`` holds the same
rules as plain Python loops.

- :func:`offer_default`: the offers' own default schedules, placed in time (device sub-metering).
- :func:`x_of_y`: per interval, the mean of the X days with the highest (``select="high"``) or
  lowest total among the last Y *eligible* days of history. A day with any missing reading is not
  eligible; with fewer than X eligible days the eligible ones are used; with none, NaN. Day totals
  are compared rounded to 1e-9 kWh; ties go to the more recent day.
- :func:`comparative_day`: one day of the history (``day`` indexes it, -1 = the most recent).
- :func:`additive_adjustment`: shifts a baseline by the mean of (metered - baseline) over a window
  before the first activation (see :class:`~vmenergy.settlement.contracts.Adjustment`).

History is (rows x D x T): the same T intervals on D previous eligible days, oldest first. Which
days are eligible (same weekday type, no activations, no holidays) is the caller's choice.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from vmenergy.flexoffer.limits import TOLERANCE

#: Day totals are rounded to this many decimals (kWh) before days are ranked.
DAY_TOTAL_DECIMALS = 9

__all__ = ["DAY_TOTAL_DECIMALS", "offer_default", "x_of_y", "comparative_day", "additive_adjustment",
           "first_activation"]


def offer_default(default_raster: np.ndarray) -> np.ndarray:
    """The placed default schedules are the baseline (kWh per interval; 0 where none runs)."""
    return np.asarray(default_raster, dtype=np.float64)


def x_of_y(history: np.ndarray, x: int, y: int, select: str = "high") -> np.ndarray:
    """Mean of the X highest (or lowest) of the last Y eligible days, per interval."""
    h = np.ascontiguousarray(history)
    rows, days, T = h.shape
    y = min(y, days)
    last = h[:, days - y:, :]  # oldest first
    # day totals, compared at 1e-9 kWh so summation order never decides a tie; NaN if a gap
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf in a broken day: not eligible
        tot = np.round(last.sum(axis=2, dtype=np.float64), DAY_TOTAL_DECIMALS)
    eligible = np.isfinite(tot)
    key = np.where(eligible, -tot if select == "high" else tot, np.inf)
    # rank by key; a stable sort of the days taken most recent first gives ties to the recent day
    rank = np.argsort(key[:, ::-1], axis=1, kind="stable")[:, :x]
    day = (days - 1) - rank  # index into h's day axis, best first
    x = day.shape[1]
    chosen_ok = np.take_along_axis(eligible, y - 1 - rank, axis=1)
    flat = (np.arange(rows, dtype=np.int64)[:, None] * days + day).ravel()
    chosen = h.reshape(rows * days, T)[flat].astype(np.float64).reshape(rows, x, T)
    if not chosen_ok.all():
        chosen[~chosen_ok] = 0.0
    out = chosen[:, 0, :].copy()
    for j in range(1, x):  # in rank order, one day at a time (the reference adds the same way)
        out += chosen[:, j, :]
    count = chosen_ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out /= count[:, None]
    out[count == 0] = np.nan
    return out


def comparative_day(history: np.ndarray, day: int) -> np.ndarray:
    """One past day of history as the baseline (NaN readings stay NaN)."""
    return np.asarray(history)[:, day, :].astype(np.float64)


def first_activation(requested: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: index of the first interval with |requested adaptation| > TOLERANCE, and whether
    there is one."""
    active = np.abs(requested) > TOLERANCE
    return active.argmax(axis=1), active.any(axis=1)


def additive_adjustment(
    baseline: np.ndarray,
    metered: np.ndarray,
    requested: np.ndarray,
    window: int,
    gap: int,
    cap_kwh: Optional[float] = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(adjusted baseline, adjustment per row in kWh per interval).

    The adjustment of a row is the mean of ``metered - baseline`` over the ``window`` intervals
    ending ``gap`` intervals before its first activation, using only intervals inside the period
    where both are finite (``metered`` must be NaN where the meter was flagged). Rows without an
    activation or without a usable window interval get no adjustment. ``cap_kwh`` clips it.
    """
    rows, T = baseline.shape
    first, has = first_activation(requested)
    cols = (first - gap - window)[:, None] + np.arange(window)[None, :]
    valid = (cols >= 0) & has[:, None]
    c = np.clip(cols, 0, T - 1)
    with np.errstate(invalid="ignore"):
        diff = np.take_along_axis(metered, c, axis=1) - np.take_along_axis(baseline, c, axis=1)
    ok = valid & np.isfinite(diff)
    n = ok.sum(axis=1)
    total = np.zeros(rows)
    for k in range(window):  # oldest interval first, one at a time (the reference adds the same way)
        total += np.where(ok[:, k], diff[:, k], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        adj = total / n
    adj[n == 0] = 0.0
    if cap_kwh is not None:
        np.clip(adj, -cap_kwh, cap_kwh, out=adj)
    return baseline + adj[:, None], adj
