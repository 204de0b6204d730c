"""Hypothesis strategies for aggregation tests: sets of offers close enough in time to share
aggregates, with every constraint kind the model has (totals, polytopes, discrete values, XOR
profiles with their own windows, implicit windows, deadlines, baselines, non-aggregatable states).

Profiles and their feasible anchor points come from tests/strategies.py; only the windows are
drawn here, in a narrow range, so grid cells hold several members.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.strategies import T0, profile_and_point
from vmenergy.aggregation import AggregationParams
from vmenergy.flexoffer import Baseline, FlexOffer, Profile, Schedule, State

NOW = T0 + 2


@st.composite
def close_offer(draw, oid: str, *, simple: bool = False, resolution: int | None = None) -> FlexOffer:
    """One valid offer whose window starts within a few intervals of T0.

    ``simple``: one profile of one-interval continuous slices without totals or polytopes,
    explicit window, aggregatable state (what the pure-Python reference covers).
    """
    if simple:
        n = draw(st.integers(1, 6))
        lo = draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=n, max_size=n))
        w = draw(st.lists(st.floats(0, 3, allow_nan=False), min_size=n, max_size=n))
        from vmenergy.flexoffer import Slice

        profiles = (Profile(tuple(Slice(1, a, a + b) for a, b in zip(lo, w))),)
        sa = T0 + draw(st.integers(0, 11))
        return FlexOffer(id=oid, profiles=profiles, resolution=resolution or 900, start_after=sa,
                         start_before=sa + draw(st.integers(0, 11)))
    kinds = draw(st.sampled_from(["plain", "plain", "total", "polytope", "values", "any"]))
    pp = draw(st.lists(
        profile_and_point(
            max_slices=5,
            allow_total=kinds in ("total", "any"),
            allow_polytope=kinds in ("polytope", "any"),
            allow_values=kinds in ("values", "any"),
        ),
        min_size=1, max_size=3 if draw(st.integers(0, 3)) == 0 else 1,
    ))
    res = resolution or 900
    t0 = T0 * 900 // res  # the same moment on the offer's own grid
    implicit = draw(st.integers(0, 6)) == 0
    if implicit:
        sa = sb = None
        dur = draw(st.integers(0, 10))
        lo_w = hi_w = None
    else:
        sa = t0 + draw(st.integers(0, 11))
        sb = sa + draw(st.integers(0, 11))
        dur = None
        lo_w, hi_w = sa, sb
    profiles = []
    for p, _ in pp:
        if len(pp) > 1 and not implicit and draw(st.booleans()):  # two-mode: own window
            a = draw(st.integers(lo_w, hi_w))
            b = draw(st.integers(a, hi_w))
            p = Profile(p.slices, total=p.total, polytope=p.polytope, start_after=a, start_before=b)
        profiles.append(p)
    kw = {}
    if draw(st.integers(0, 4)) == 0:
        j = draw(st.integers(0, len(pp) - 1))
        kw["baseline"] = Baseline(tuple(pp[j][1]), profile=j, start=profiles[j].start_after or sa)
    if not implicit and draw(st.integers(0, 4)) == 0:
        kw["assignment_before"] = sa * res - draw(st.integers(0, 1800))
        kw["acceptance_before"] = kw["assignment_before"] - draw(st.integers(0, 1800))
    state = State.INITIAL
    if draw(st.integers(0, 9)) == 0:
        state = draw(st.sampled_from(list(State)))
    return FlexOffer(id=oid, profiles=tuple(profiles), resolution=res, start_after=sa,
                     start_before=sb, start_before_duration=dur, state=state, **kw)


@st.composite
def offer_lists(draw, min_size: int = 1, max_size: int = 14, simple: bool = False) -> list[FlexOffer]:
    """Offers with distinct ids (``o0``, ``o1``, ...), mostly 15-min, some hourly."""
    n = draw(st.integers(min_size, max_size))
    out = []
    for i in range(n):
        res = 900 if simple or draw(st.integers(0, 7)) else 3600
        out.append(draw(close_offer(f"o{i}", simple=simple, resolution=res)))
    return out


def params(**fixed) -> st.SearchStrategy[AggregationParams]:
    """Parameters over their interesting range (``now`` fixed, so implicit offers come along)."""
    return st.builds(
        AggregationParams,
        method=st.sampled_from(["start", "flex"]) if "method" not in fixed else st.just(fixed["method"]),
        est_tolerance=st.sampled_from([1, 2, 4, 12]),
        tf_tolerance=st.sampled_from([1, 3, 4, 12]),
        max_offers=st.sampled_from([None, 1, 2, 3, 5]),
        max_energy=st.sampled_from([None, None, 15.0, 60.0]),
        max_length=st.sampled_from([40, 40, 12]),
        mix_directions=st.booleans(),
        xor=st.sampled_from(["most_flexible", "first", "exclude"]),
        discrete=st.sampled_from(["pin", "pin", "exclude"]),
        constrained=st.sampled_from(["box", "box", "exclude"]),
        now=st.just(fixed.get("now", NOW)),
    )


@st.composite
def aggregate_schedule(draw, agg, schedule_id: str = "s") -> Schedule:
    """A feasible schedule of an aggregate: any start in its window, any energies in its slice
    bounds (an aggregate is a box), often exactly on a bound."""
    slices = agg.profiles[0].slices
    energy = []
    for s in slices:
        how = draw(st.integers(0, 3))
        energy.append(s.min if how == 0 else s.max if how == 1 else draw(st.floats(s.min, s.max)))
    start = draw(st.integers(agg.start_after, agg.start_before))
    return Schedule(offer_id=agg.id, start=start, energy=tuple(energy), schedule_id=schedule_id,
                    resolution=agg.resolution)
