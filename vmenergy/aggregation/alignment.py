"""Stage 3 of aggregation: start alignment, which makes the columnar record of a run (:mod:`.run`).

Start alignment places every member of a bin at its earliest start: member i runs from
``aggregate start + (est_i - est_min)``. The aggregate may start anywhere in
``[est_min, est_min + min_i tf_i]``, so every member starts inside its own window, and its slice
bounds are the sums of the member boxes that fall in each slice. No rigid alignment of the same
members can do better on time flexibility: with offsets d_i the aggregate's window is the
intersection of windows of widths tf_i, at most min tf_i wide, which start alignment reaches; and
energy flexibility (sum of slice widths) is additive whatever the offsets. That is why the better
method in this package works on the grouping, not on the alignment (docs/aggregation.md).

Slices of more than one interval: an aggregate slice must hold whole member slices (a member's
energy is only known per slice), so interval boundaries that fall inside some member slice are
removed and the intervals between merged. With one-interval slices (the common case) an aggregate
slice is one interval.

The sums are ``np.bincount`` over all member slices at once; bincount adds in array order, so a
bin's sums are the same whether it is computed in a full run or alone (incremental rebuild).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from vmenergy.flexoffer import FlexOffer, FlexOfferError, FlexOfferSet, Profile, Slice
from vmenergy.flexoffer.limits import MAX_ABS_ENERGY, MAX_SLICE_DURATION
from vmenergy.flexoffer.ragged import offsets_from_counts

from .grouping import Groups, cell_name
from .members import Members
from .offer import AggregatedFlexOffer
from .params import AggregationParams
from .run import AggregationRun

__all__ = ["build", "aggregate_label"]

def build(
    offers: FlexOfferSet,
    source: Optional[Sequence[FlexOffer]],
    members: Members,
    groups: Groups,
    params: AggregationParams,
    has_keys: bool,
) -> AggregationRun:
    """Start-align every bin of ``groups`` and make its :class:`AggregatedFlexOffer`."""
    n = len(members)
    G = len(groups)
    rows = groups.rows
    go = groups.offsets[:-1]
    sizes = np.diff(groups.offsets)
    if G:
        est_s = members.est[rows]
        E = np.minimum.reduceat(est_s, go)
        TF = np.minimum.reduceat(members.tf[rows], go)
        gid = np.repeat(np.arange(G, dtype=np.int64), sizes)
        off_s = est_s - E[gid]
        LEN = np.maximum.reduceat(off_s + members.length[rows], go)
    else:
        E = TF = LEN = np.zeros(0, dtype=np.int64)
        gid = off_s = np.zeros(0, dtype=np.int64)
    int_offsets = offsets_from_counts(LEN)
    n_int = int(int_offsets[-1])
    offset = np.full(n, -1, dtype=np.int64)
    offset[rows] = off_s
    ishift = np.full(n, n_int, dtype=np.int64)  # excluded rows land past the end
    ishift[rows] = int_offsets[:-1][gid] + off_s

    run = AggregationRun(
        params=params, offers=offers, source=source, members=members, groups=groups, offset=offset,
        ishift=ishift, est=E, tf=TF, int_offsets=int_offsets, slice_of_interval=None,
        slice_offsets=int_offsets, duration=np.ones(n_int, dtype=np.int64), L=np.zeros(0), U=np.zeros(0),
        aggregates=[],
    )
    run.L = np.zeros(n_int)  # the slice count until slices are merged
    if members.rel is not None:
        _merge_slices(run, n_int)
    n_sl = len(run.duration)
    # sums in cache-sized chunks, added in row order: np.add.at adds one value after the other,
    # exactly as one bincount over all slices would, so every bin gets the same float sum in a
    # full run and in a one-cell rebuild; the extra last bin takes the excluded rows.
    L = np.zeros(n_sl + 1)
    U = np.zeros(n_sl + 1)
    run.L = L[:n_sl]
    for a, b in run.chunks():
        t = run.targets_range(a, b)
        s0, s1 = int(members.slice_offsets[a]), int(members.slice_offsets[b])
        np.add.at(L, t, members.lo[s0:s1])
        np.add.at(U, t, members.hi[s0:s1])
    run.L, run.U = L[:n_sl], U[:n_sl]
    run.aggregates = _objects(run, groups, params, has_keys)
    return run


def _merge_slices(run: AggregationRun, n_int: int) -> None:
    """Merge intervals so that no member slice crosses an aggregate slice boundary."""
    mem = run.members
    width = n_int + int(mem.length.max() if len(mem.length) else 0) + 2
    inside = np.zeros(width, dtype=np.int64)
    for a, b in run.chunks():
        pos = run.positions(a, b)
        s0, s1 = int(mem.slice_offsets[a]), int(mem.slice_offsets[b])
        dur = mem.dur[s0:s1].astype(np.int64)
        longer = np.flatnonzero((dur > 1) & (pos < n_int))
        if len(longer):
            p, d = pos[longer], dur[longer]
            inside += np.bincount(p + 1, minlength=width)[:width]
            inside -= np.bincount(p + d, minlength=width)[:width]
    crossed = np.cumsum(inside)[:n_int] > 0  # boundary before interval b lies inside a member slice
    starts = ~crossed
    starts[run.int_offsets[:-1]] = True
    sid = np.cumsum(starts) - 1
    n_sl = int(sid[-1]) + 1 if n_int else 0
    ext = np.full(width, n_sl, dtype=np.int64)  # past the end -> past the last slice
    ext[:n_int] = sid
    run.slice_of_interval = ext
    run.slice_offsets = np.append(sid[run.int_offsets[:-1]], n_sl).astype(np.int64)
    run.duration = np.bincount(sid, minlength=n_sl)


def _slices(duration: np.ndarray, L: np.ndarray, U: np.ndarray) -> list[Slice]:
    """Slice objects for every aggregate slice.

    The rules of ``Slice.__post_init__`` (integer duration in [1, MAX_SLICE_DURATION], finite
    bounds within MAX_ABS_ENERGY, min <= max, no discrete values) are checked on the arrays at
    once; the objects are then made without running the per-object check again, which is 3x
    faster for the ~40,000 slices of a million-offer run. If any rule fails, the ordinary
    constructor is used, so the error it raises names the problem.
    """
    ok = (
        len(duration) == 0
        or (int(duration.min()) >= 1 and int(duration.max()) <= MAX_SLICE_DURATION
            and bool(np.all(np.isfinite(L))) and bool(np.all(np.isfinite(U)))
            and float(np.abs(L).max()) <= MAX_ABS_ENERGY and float(np.abs(U).max()) <= MAX_ABS_ENERGY
            and bool(np.all(L <= U)))
    )
    D, lo, hi = duration.tolist(), L.tolist(), U.tolist()
    if not ok:
        return [Slice(d, a, b) for d, a, b in zip(D, lo, hi)]
    new, put = object.__new__, object.__setattr__
    out = []
    for d, a, b in zip(D, lo, hi):
        s = new(Slice)
        put(s, "duration", d)
        put(s, "min", a)
        put(s, "max", b)
        put(s, "values", None)
        out.append(s)
    return out


def aggregate_label(n: int, params: AggregationParams) -> str:
    """Human-readable label of an aggregate (shows in XMPP clients)."""
    return f"aggregate of {n} offers ({'start alignment' if params.method == 'start' else 'flexibility-aware'})"


def _objects(run: AggregationRun, groups: Groups, params: AggregationParams, has_keys: bool) -> list:
    G = len(run.est)
    if G == 0:
        return []
    res = run.offers.resolution[groups.rows[groups.offsets[:-1]]].tolist()
    # deadlines: the aggregate must be accepted and assigned before any member's deadline
    acc: dict[int, int] = {}
    asg: dict[int, int] = {}
    for r, (a, s) in run.members.deadlines.items():
        g = int(groups.group[r])
        if g < 0:
            continue
        if a is not None:
            acc[g] = min(acc.get(g, a), a)
        if s is not None:
            asg[g] = min(asg.get(g, s), s)
    try:
        all_slices = _slices(run.duration, run.L, run.U)
    except FlexOfferError as exc:  # e.g. sums beyond the model's energy limit
        raise exc.within("aggregate") from None
    so = run.slice_offsets.tolist()
    est, tf = run.est.tolist(), run.tf.tolist()
    sizes = np.diff(groups.offsets).tolist()
    out = []
    for a in range(G):
        lst = est[a] + tf[a]
        s_deadline = asg.get(a)
        if s_deadline is not None:
            s_deadline = min(s_deadline, lst * res[a])
        a_deadline = acc.get(a)
        if a_deadline is not None and s_deadline is not None:
            a_deadline = min(a_deadline, s_deadline)
        i, j = so[a], so[a + 1]
        cell, bin_ = groups.cells[a]
        try:
            slices = tuple(all_slices[i:j])
            out.append(AggregatedFlexOffer(
                id=cell_name(params, cell, bin_, has_keys),
                profiles=(Profile(slices),),
                issuer=params.issuer,
                label=aggregate_label(sizes[a], params),
                resolution=res[a],
                acceptance_before=a_deadline,
                assignment_before=s_deadline,
                start_after=est[a],
                start_before=lst,
                run=run,
                position=a,
            ))
        except FlexOfferError as exc:  # e.g. sums beyond the model's energy limit
            raise exc.within(f"aggregate[{a}]") from None
    return out
