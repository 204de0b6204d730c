"""Load at a congestion point as kWh per interval: what the DSO and its aggregators both count.

One definition of an offer's *default* load (its ``baseline``, the device's normal programme;
an offer without one counts its slice minima at its earliest start: the least it must take) and
of a schedule's load (a slice's energy spread evenly over its intervals, as a meter sees it), so
the prognosis an aggregator sends and the check the DSO makes add up the same way.
"""

from __future__ import annotations

import numpy as np

from vmenergy.flexoffer import FlexOffer, Schedule

__all__ = ["default_load", "schedule_load", "place"]


def default_load(fo: FlexOffer) -> tuple[int, np.ndarray]:
    """(first interval, kWh per interval) of what ``fo`` takes without flexibility."""
    b = fo.baseline
    if b is not None:
        start = b.start if b.start is not None else fo.earliest_start()
        return int(start or 0), fo.profiles[b.profile].spread(b.energy)
    profile = fo.profiles[0]
    return int(fo.earliest_start() or 0), profile.spread([s.min for s in profile.slices])


def schedule_load(fo: FlexOffer, s: Schedule) -> tuple[int, np.ndarray]:
    """(first interval, kWh per interval) of ``fo`` run on schedule ``s``."""
    return s.start, fo.profiles[s.profile].spread(s.energy)


def place(out: np.ndarray, start: int, first: int, values: np.ndarray) -> np.ndarray:
    """Add ``values`` (from interval ``first``) into ``out`` (which covers ``start`` ..
    ``start + len(out)``); what falls outside is cut off. Returns ``out``."""
    lo, hi = max(start, first), min(start + len(out), first + len(values))
    if hi > lo:
        out[lo - start:hi - start] += values[lo - first:hi - first]
    return out
