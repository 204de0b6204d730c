"""Small builders for hand-computed aggregation cases."""

from __future__ import annotations

from typing import Optional, Sequence

from vmenergy.flexoffer import FlexOffer, Polytope, Profile, Slice, TotalEnergy


def prof(slices: Sequence[tuple], total: Optional[tuple] = None, polytope: Optional[tuple] = None, **kw) -> Profile:
    """``slices``: (duration, min, max) or (duration, min, max, values)."""
    return Profile(
        tuple(Slice(*s) for s in slices),
        total=None if total is None else TotalEnergy(*total),
        polytope=None if polytope is None else Polytope(*polytope),
        **kw,
    )


def offer(oid: str, sa: Optional[int], sb: Optional[int], slices: Sequence[tuple] = ((1, 0.0, 1.0),), *,
          profiles: Optional[Sequence[Profile]] = None, **kw) -> FlexOffer:
    return FlexOffer(id=oid, profiles=tuple(profiles) if profiles else (prof(slices),), start_after=sa,
                     start_before=sb, **kw)


def bounds(agg) -> list[tuple[int, float, float]]:
    return [(s.duration, s.min, s.max) for s in agg.profiles[0].slices]
