"""Hypothesis strategies for valid flex-offers and feasible schedules of every constraint kind.

Each profile is generated together with an "anchor" energy vector that satisfies all of its
constraints by construction (totals and polytope rows are built around it), so tests can draw
feasible schedules without solving anything.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from vmenergy.flexoffer import (
    Baseline,
    FlexOffer,
    Polytope,
    Prices,
    Profile,
    Schedule,
    Slice,
    SlicePrice,
    State,
    TotalEnergy,
)

T0 = 1_994_800  # an interval number in late 2026 at 15-minute resolution

ids = st.from_regex(r"[a-z][a-z0-9-]{0,15}", fullmatch=True)
energy = st.floats(min_value=-20.0, max_value=20.0, allow_nan=False, allow_infinity=False)
width = st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False)


@st.composite
def slice_and_point(draw, allow_values: bool = True) -> tuple[Slice, float]:
    duration = draw(st.integers(1, 4))
    lo = draw(energy)
    hi = lo + draw(width)
    if allow_values and draw(st.integers(0, 9)) == 0:
        vals = sorted(set(draw(st.lists(st.floats(lo, hi), min_size=1, max_size=4))))
        return Slice(duration, lo, hi, tuple(vals)), draw(st.sampled_from(vals))
    return Slice(duration, lo, hi), draw(st.floats(lo, hi))


@st.composite
def profile_and_point(
    draw, max_slices: int = 8, allow_total: bool = True, allow_polytope: bool = True, allow_values: bool = True
) -> tuple[Profile, list[float]]:
    pairs = draw(st.lists(slice_and_point(allow_values), min_size=1, max_size=max_slices))
    slices = tuple(s for s, _ in pairs)
    x0 = [x for _, x in pairs]
    total = None
    if allow_total and draw(st.booleans()):
        s = math.fsum(x0)
        kind = draw(st.sampled_from(["both", "min", "max"]))
        lo = s - draw(width) if kind in ("both", "min") else None
        hi = s + draw(width) if kind in ("both", "max") else None
        total = TotalEnergy(lo, hi)
    polytope = None
    if allow_polytope and draw(st.integers(0, 3)) == 0:
        n = len(slices)
        rows = draw(st.lists(st.lists(st.integers(-2, 2).map(float), min_size=n, max_size=n), min_size=1, max_size=6))
        b = [math.fsum(a * x for a, x in zip(r, x0)) + draw(st.sampled_from([0.0, 0.5, 2.0])) for r in rows]
        polytope = Polytope(tuple(map(tuple, rows)), tuple(b))
    return Profile(slices, total=total, polytope=polytope), x0


@st.composite
def offer_and_points(
    draw,
    max_profiles: int = 3,
    max_slices: int = 8,
    allow_implicit: bool = True,
    allow_total: bool = True,
    allow_polytope: bool = True,
    allow_values: bool = True,
) -> tuple[FlexOffer, list[list[float]]]:
    """A valid offer and one feasible energy vector per profile."""
    pp = draw(
        st.lists(
            profile_and_point(max_slices, allow_total, allow_polytope, allow_values), min_size=1, max_size=max_profiles
        )
    )
    profiles = tuple(p for p, _ in pp)
    points = [x for _, x in pp]
    resolution = draw(st.sampled_from([900, 900, 3600, 300]))
    implicit = allow_implicit and draw(st.integers(0, 5)) == 0
    if implicit:
        sa = sb = None
        dur = draw(st.integers(0, 48))
    else:
        sa = T0 + draw(st.integers(-1000, 1000))
        sb = sa + draw(st.integers(0, 96))
        dur = None
    kw = {}
    if draw(st.booleans()):
        kw["issuer"] = draw(ids) + "@vme.localhost"
    if draw(st.integers(0, 3)) == 0:
        kw["label"] = draw(st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20))
    if not implicit and draw(st.integers(0, 3)) == 0:
        c = sa * resolution - draw(st.integers(3600, 86400))
        kw["creation_time"] = c
        kw["acceptance_before"] = c + draw(st.integers(0, 1800))
        kw["assignment_before"] = kw["acceptance_before"] + draw(st.integers(0, 1800))
    if draw(st.integers(0, 3)) == 0:
        j = draw(st.integers(0, len(profiles) - 1))
        kw["baseline"] = Baseline(tuple(points[j]), profile=j, start=sa)
    if draw(st.integers(0, 3)) == 0:
        n = max(p.n_slices for p in profiles)
        k = draw(st.sampled_from([1, n]))
        kw["prices"] = Prices(tuple(SlicePrice(draw(st.floats(0, 1)), draw(st.floats(0, 1))) for _ in range(k)))
    state = draw(st.sampled_from(list(State))) if draw(st.integers(0, 4)) == 0 else State.INITIAL
    fo = FlexOffer(
        id=draw(ids),
        profiles=profiles,
        resolution=resolution,
        start_after=sa,
        start_before=sb,
        start_before_duration=dur,
        state=state,
        version=draw(st.integers(0, 5)),
        **kw,
    )
    return fo, points


def offers(**kw) -> st.SearchStrategy[FlexOffer]:
    return offer_and_points(**kw).map(lambda t: t[0])


@st.composite
def offer_and_schedule(draw, **kw) -> tuple[FlexOffer, Schedule, int]:
    """A valid offer, a feasible schedule for it and the ``now`` to check it with."""
    fo, points = draw(offer_and_points(**kw))
    j = draw(st.integers(0, len(fo.profiles) - 1))
    now = T0
    lo = fo.earliest_start(now, j)
    hi = fo.latest_start(now, j)
    start = draw(st.integers(lo, hi))
    s = Schedule(
        offer_id=fo.id, start=start, energy=tuple(points[j]), schedule_id=draw(ids), profile=j, resolution=fo.resolution
    )
    return fo, s, now
