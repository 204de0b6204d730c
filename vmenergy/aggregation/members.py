"""Stage 1 of aggregation: what each offer brings, as columns, and which offers cannot come along.

For every offer of a :class:`FlexOfferSet` this decides, with array operations, the profile it is
aggregated with (exclusive-OR offers), its start window (implicit windows resolved at ``now``),
its direction, length and energy, and the *box* of slice bounds it is aggregated with: its own
slice bounds, shrunk to fit totals, polytopes and discrete values (see :mod:`.inner`). Offers that
cannot be aggregated soundly are excluded with a reason instead of being approximated wrongly.

Each offer is handled on its own, so the same offer always gets the same row, whichever set it
arrives in: the incremental aggregator relies on that to agree with a from-scratch run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from vmenergy.flexoffer import FlexOfferSet, Polytope, State
from vmenergy.flexoffer.offerset import NA
from vmenergy.flexoffer.ragged import expand_rows, offsets_from_counts, segment_sum, starts_within

from .inner import box_inside, shrink_to_totals
from .params import AggregationParams

__all__ = ["Members", "prepare", "energy_flexibility_before", "CONSUMPTION", "PRODUCTION", "MIXED", "DIRECTION_NAMES"]

CONSUMPTION, PRODUCTION, MIXED = 0, 1, 2
DIRECTION_NAMES = ("c", "p", "m")
_STATES = list(State)


@dataclass(eq=False)
class Members:
    """Per-offer columns (length n, rows of the source set) and the members' boxes (CSR).

    ``ok``: aggregated; ``reasons``: row -> (field path, reason) for the excluded rows.
    ``profile``: chosen profile (index inside the offer); ``est``/``tf``: the chosen profile's
    start window [est, est + tf]; ``length`` in intervals; ``direction`` code; ``energy``: the
    largest |total| the box allows (kWh). ``tf_before``/``ef_before``: the offer's own time and
    energy flexibility (the core measures, max over available profiles) for the loss metrics.
    Box: ``lo``/``hi`` (kWh per slice) with ``slice_offsets`` (n+1); ``dur`` the slice durations;
    ``rel`` each slice's first interval relative to the profile start, or None when every slice
    lasts one interval (then it is the slice's index). ``ef_before`` is None until
    :func:`energy_flexibility_before` computes it (the metrics need it, aggregation does not).
    """

    ok: np.ndarray
    reasons: dict[int, tuple[str, str]]
    profile: np.ndarray
    est: np.ndarray
    tf: np.ndarray
    length: np.ndarray
    direction: np.ndarray
    energy: np.ndarray
    tf_before: np.ndarray
    ef_before: Optional[np.ndarray]
    slice_offsets: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    dur: np.ndarray
    rel: Optional[np.ndarray]
    deadlines: dict[int, tuple[Optional[int], Optional[int]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ok)

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.slice_offsets)


def _exclude(ok: np.ndarray, reasons: dict, mask: np.ndarray, path: str, reason: str) -> None:
    rows = np.flatnonzero(mask & ok)
    for r in rows.tolist():
        reasons[r] = (path, reason)
    ok[rows] = False


def prepare(offers: FlexOfferSet, params: AggregationParams, box_cache: Optional[dict] = None) -> Members:
    """Stage 1 for every offer of ``offers`` (see the module docstring).

    ``box_cache`` (offer id, version, profile) -> box or reason: lets the incremental aggregator
    avoid solving the same small LP again when a group is rebuilt.
    """
    n = len(offers)
    ok = np.ones(n, dtype=bool)
    reasons: dict[int, tuple[str, str]] = {}
    now = params.now
    single = offers.n_profiles == n  # every offer has exactly one profile (the common case)

    allowed = np.array([s in params.states for s in _STATES], dtype=bool)
    if n:
        bad_state = ~allowed[offers.state.astype(np.int64)]
        if bad_state.any():
            names = ", ".join(sorted(s.value for s in params.states))
            for r in np.flatnonzero(bad_state).tolist():
                state = _STATES[int(offers.state[r])].value
                reasons[r] = ("state", f"an offer in state {state} is not aggregated (states aggregated: {names})")
            ok &= ~bad_state

    # ---- start windows of every profile (as FlexOffer.earliest_start/latest_start, at now)
    o_of_p = np.arange(n, dtype=np.int64) if single else offers.offer_of_profile
    sa = offers.start_after[o_of_p]
    sb = offers.start_before[o_of_p]
    sbd = offers.start_before_duration[o_of_p]
    if now is not None:  # now at each offer's own resolution
        res = offers.resolution[o_of_p]
        now_p = -(-(now * params.now_resolution) // res)
    else:
        now_p = NA
    base = np.where(sa == NA, now_p, sa)
    latest = np.where(sb != NA, sb, np.where(base != NA, base + np.where(sbd == NA, 0, sbd), NA))
    psa, psb = offers.profile_start_after, offers.profile_start_before
    est = np.where(psa == NA, base, np.where(base == NA, psa, np.maximum(base, psa)))
    latest = np.where(psb == NA, latest, np.where(latest == NA, psb, np.minimum(latest, psb)))
    known = (est != NA) & (latest != NA)
    if now is not None:  # a start in the past cannot be delivered any more
        est = np.where(known, np.maximum(est, now_p), est)
    avail = known & (latest >= est)
    ptf = np.where(avail, latest - est, -1)

    # ---- the profile each offer is aggregated with
    first = offers.profile_offsets[:-1]
    if single:
        chosen = np.arange(n, dtype=np.int64)
        tf_before = np.maximum(ptf, 0).astype(np.float64)
        ef_before = None  # the slice widths of the only profile: computed when the metrics ask
    else:
        pef = segment_sum(offers.max - offers.min, offers.slice_offsets)  # energy flexibility per profile
        nprof = offers.profiles_per_offer
        local = np.arange(offers.n_profiles, dtype=np.int64) - np.repeat(first, nprof)
        if params.xor == "first":
            order = np.lexsort((-local, avail, o_of_p))
        else:
            fl = np.where(avail, ptf, -1).astype(np.float64)
            ef = np.where(avail, pef, -1.0)
            order = np.lexsort((-local, fl, ef, fl * np.maximum(ef, 0), avail, o_of_p))
        chosen = order[offers.profile_offsets[1:] - 1] if n else np.zeros(0, dtype=np.int64)
        tf_before = np.maximum(np.maximum.reduceat(ptf, first), 0).astype(np.float64) if n else np.zeros(0)
        ef_before = np.maximum.reduceat(np.where(avail, pef, 0.0), first) if n else np.zeros(0)
        if params.xor == "exclude":
            _exclude(ok, reasons, nprof > 1, "profiles",
                     "has several exclusive-OR profiles and AggregationParams.xor is 'exclude'")
    has_window = avail[chosen] if n else np.zeros(0, dtype=bool)
    if not has_window.all():
        rows = np.flatnonzero(~has_window & ok)
        still = known & (latest >= now_p) if now is not None else known
        for r in rows.tolist():
            if offers.start_after[r] == NA and now is None:
                reasons[r] = ("start_after", "implicit time flexibility: the window is only known at acceptance; "
                              "pass AggregationParams(now=...) to aggregate it")
            elif now is not None and not np.any(still[first[r]:offers.profile_offsets[r + 1]]):
                res_r = int(offers.resolution[r])
                reasons[r] = ("start_before", f"the start window ended before now (interval {params.now_at(res_r)} "
                              f"at {res_r} s)")
            else:
                reasons[r] = ("profiles", "no profile has a start window that can still be used")
        ok[rows] = False
    local_chosen = chosen - first

    # ---- the chosen profiles' slices
    if single:
        s_off = offers.slice_offsets
        lo, hi, dur = offers.min, offers.max, offers.duration
    else:
        sl = expand_rows(offers.slice_offsets, chosen)
        s_off = offsets_from_counts(offers.slice_count[chosen])
        lo, hi, dur = offers.min[sl], offers.max[sl], offers.duration[sl]
    counts = np.diff(s_off)

    # ---- constraints: totals (columnar), polytopes and discrete values (per offer)
    tmin = offers.total_min[chosen]
    tmax = offers.total_max[chosen]
    has_total = np.isfinite(tmin) | np.isfinite(tmax)
    scalar: dict[int, tuple[Optional[Polytope], dict]] = {}  # row -> (polytope or None, {slice: values})
    deadlines: dict[int, tuple[Optional[int], Optional[int]]] = {}
    for r, extra in offers.sidecar.items():
        acc, asg = extra.get("acceptance_before"), extra.get("assignment_before")
        if acc is not None or asg is not None:
            deadlines[r] = (acc, asg)
        j = int(local_chosen[r])
        poly = extra.get("polytopes", {}).get(j)
        vals = {k: v for (pj, k), v in extra.get("values", {}).items() if pj == j}
        if poly is not None or vals:
            scalar[r] = (poly, vals)
    if params.constrained == "exclude":
        _exclude(ok, reasons, has_total, "profiles",
                 "has a total-energy constraint and AggregationParams.constrained is 'exclude'")
        poly_rows = np.array([r for r, (p, _) in scalar.items() if p is not None], dtype=np.int64)
        mask = np.zeros(n, dtype=bool)
        mask[poly_rows] = True
        _exclude(ok, reasons, mask, "profiles",
                 "has a polytope constraint and AggregationParams.constrained is 'exclude'")
    if params.discrete == "exclude":
        mask = np.zeros(n, dtype=bool)
        mask[np.array([r for r, (_, v) in scalar.items() if v], dtype=np.int64)] = True
        _exclude(ok, reasons, mask, "profiles", "has discrete slice values and AggregationParams.discrete is 'exclude'")

    total_rows = np.flatnonzero(has_total & ok)
    scalar_rows = [r for r in scalar if ok[r]]
    if len(total_rows) or scalar_rows:
        lo, hi = lo.copy(), hi.copy()  # never write into the caller's offer set
    if len(total_rows):
        plain = np.array([r for r in total_rows.tolist() if r not in scalar], dtype=np.int64)
        shrink_to_totals(lo, hi, s_off, plain, tmin[plain], tmax[plain])
    for r in scalar_rows:
        poly, vals = scalar[r]
        a, b = int(s_off[r]), int(s_off[r + 1])
        j = int(local_chosen[r])
        key = (offers.ids[r], int(offers.version[r]), j)
        result = None if box_cache is None else box_cache.get(key)
        if result is None:
            baseline = offers.sidecar[r].get("baseline")
            prefer = baseline.energy if baseline is not None and baseline.profile == j else None
            result = box_inside(
                lo[a:b].tolist(), hi[a:b].tolist(), polytope=poly,
                tmin=float(tmin[r]) if np.isfinite(tmin[r]) else None,
                tmax=float(tmax[r]) if np.isfinite(tmax[r]) else None,
                values=vals, prefer=prefer,
            )
            if box_cache is not None:
                box_cache[key] = result
        if isinstance(result, str):
            reasons[r] = (f"profiles[{j}]", result)
            ok[r] = False
        else:
            lo[a:b], hi[a:b] = result

    # ---- shape: length, relative slice starts, direction, energy
    all_unit = len(dur) == 0 or int(dur.max()) == 1
    if all_unit:
        length = counts.astype(np.int64)
        rel = None
    else:
        d64 = dur.astype(np.int64)
        length = segment_sum(d64, s_off)
        rel = starts_within(d64, s_off)
    if n and not params.mix_directions and len(lo) and lo.min() >= 0:
        direction = np.full(n, CONSUMPTION, dtype=np.int8)  # the common case, one pass
    elif n and not params.mix_directions:
        lo_min = np.minimum.reduceat(lo, s_off[:-1])
        hi_max = np.maximum.reduceat(hi, s_off[:-1])
        direction = np.where(lo_min >= 0, CONSUMPTION, np.where(hi_max <= 0, PRODUCTION, MIXED)).astype(np.int8)
    else:
        direction = np.zeros(n, dtype=np.int8)
    if params.max_energy is not None and n:
        energy = np.maximum(np.abs(np.add.reduceat(lo, s_off[:-1])), np.abs(np.add.reduceat(hi, s_off[:-1])))
        _exclude(ok, reasons, energy > params.max_energy, "profiles",
                 f"needs more energy than an aggregate may hold (max_energy = {params.max_energy:g} kWh)")
    else:
        energy = np.zeros(n)
    _exclude(ok, reasons, length > params.max_length, "profiles",
             f"its profile is longer than an aggregate may be (max_length = {params.max_length} intervals)")

    est_c = est[chosen] if n else np.zeros(0, dtype=np.int64)
    tf_c = ptf[chosen] if n else np.zeros(0, dtype=np.int64)
    return Members(
        ok=ok, reasons=reasons, profile=local_chosen.astype(np.int64), est=est_c, tf=np.maximum(tf_c, 0),
        length=length, direction=direction, energy=energy, tf_before=tf_before, ef_before=ef_before,
        slice_offsets=s_off, lo=lo, hi=hi, dur=dur, rel=rel, deadlines=deadlines,
    )


def energy_flexibility_before(members: Members, offers: FlexOfferSet) -> np.ndarray:
    """Per offer row its own energy flexibility (core measure), computed once on demand."""
    if members.ef_before is None:
        members.ef_before = segment_sum(offers.max - offers.min, offers.slice_offsets)
    return members.ef_before
