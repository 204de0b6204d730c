"""Small builders and an independent objective calculator for the planning tests."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from vmenergy.flexoffer import FlexOffer, Profile, Schedule, Slice, TotalEnergy

SOLVERS = ["heuristic", "milp", "cbc"]


def offer(oid: str, slices: Sequence[tuple], window: tuple[int, int], *, total: Optional[tuple] = None,
          **kw) -> FlexOffer:
    """An offer with one profile; ``slices`` as (min, max) or (duration, min, max) tuples."""
    sl = tuple(Slice(1, *s) if len(s) == 2 else Slice(*s) for s in slices)
    tot = None if total is None else TotalEnergy(*total)
    return FlexOffer(id=oid, profiles=(Profile(sl, total=tot),), start_after=window[0], start_before=window[1], **kw)


def load_of(offers: Sequence[FlexOffer], schedules: Sequence[Schedule], start: int, length: int) -> np.ndarray:
    """Per-interval load of the schedules, each slice spread evenly, computed without the planner."""
    out = np.zeros(length)
    by_id = {fo.id: fo for fo in offers}
    for s in schedules:
        t = s.start - start
        for sl, e in zip(by_id[s.offer_id].profiles[s.profile].slices, s.energy):
            for _ in range(sl.duration):
                out[t] += e / sl.duration
                t += 1
    return out
