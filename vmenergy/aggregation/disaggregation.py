"""Disaggregation: a schedule of an aggregate becomes one feasible schedule per member.

Rule (the same for one aggregate and for a million members at once): every member starts at the
aggregate's start plus its offset, and in every aggregate slice t each member slice in it gets the
same fraction of its box width,

    f_t = (X_t - L_t) / (U_t - L_t),    x = lo + f_t * (hi - lo),

so the member energies add up to X_t exactly and each lies in its member's box (a box inside the
member's own constraints, see :mod:`.inner`), hence the member schedule is feasible. ``f_t`` is
clipped to [0, 1]: an aggregate schedule that uses the tolerance band (up to ``TOLERANCE`` kWh
outside [L_t, U_t]) still gives members schedules strictly inside their bounds, and the sum then
differs from X_t by that excursion, never more than ``TOLERANCE``. Otherwise the only difference
is float rounding (about 1e-13 kWh for 1000 members of a few kWh).

Schedules that are infeasible for the aggregate are refused with every violated constraint
(:class:`InfeasibleScheduleError`, a :class:`FlexOfferError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from vmenergy.flexoffer import FlexOffer, FlexOfferError, FlexOfferSet, Schedule, ScheduleSet, Violation
from vmenergy.flexoffer.offerset import CheckResult
from vmenergy.flexoffer.offerset import check as check_set
from vmenergy.flexoffer.ragged import expand_rows, offsets_from_counts
from vmenergy.flexoffer.timeutil import DEFAULT_RESOLUTION

from .run import CHUNK, AggregationRun
from .offer import AggregatedFlexOffer

__all__ = ["disaggregate", "disaggregate_many", "InfeasibleScheduleError", "MemberSchedules"]


class InfeasibleScheduleError(FlexOfferError):
    """A schedule that its aggregate cannot accept; ``violations`` lists every broken constraint."""

    def __init__(self, path: str, reason: str, violations: Sequence[Violation] = ()) -> None:
        super().__init__(path, reason)
        self.violations = list(violations)


def _refuse(agg: FlexOffer, schedule: Schedule, violations: list[Violation], prefix: str = "",
            more: int = 0) -> InfeasibleScheduleError:
    what = f"schedule {schedule.schedule_id!r}" if schedule.schedule_id else "the schedule"
    reason = f"{what} is infeasible for aggregate {agg.id}: " + "; ".join(str(v) for v in violations)
    if more:
        reason += f" (and {more} more infeasible schedules)"
    path = violations[0].field
    return InfeasibleScheduleError(f"{prefix}{path}" if prefix else path, reason, violations)


def _run_of(agg: object, path: str = "aggregate") -> AggregationRun:
    if not isinstance(agg, AggregatedFlexOffer) or agg.run is None:
        kind = type(agg).__name__
        raise FlexOfferError(path, f"not an aggregate made by vmenergy.aggregation.aggregate ({kind} without member "
                                   "information; a copy parsed from the wire has none)")
    run = agg.run
    if not (0 <= agg.position < len(run.aggregates)) or run.aggregates[agg.position].profiles != agg.profiles or (
        run.aggregates[agg.position].start_after != agg.start_after
        or run.aggregates[agg.position].start_before != agg.start_before
    ):
        raise FlexOfferError(path, f"aggregate {agg.id} was changed after aggregation (its slices or window no "
                                   "longer match its members)")
    return run


def _fractions(X: np.ndarray, L: np.ndarray, U: np.ndarray) -> np.ndarray:
    W = U - L
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(W > 0, (X - L) / W, 0.0)
    return np.clip(f, 0.0, 1.0)


def disaggregate(agg: AggregatedFlexOffer, schedule: Schedule, *, now: Optional[int] = None,
                 deep: bool = False) -> dict[str, Schedule]:
    """One feasible schedule per member of ``agg`` for a feasible ``schedule`` of it.

    Members start at ``schedule.start + offset`` and their energies add up to ``schedule.energy``
    slice by slice (see the module docstring for the tolerance). The member schedules carry the
    aggregate schedule's ``schedule_id`` and ``update_id``. With ``deep=True``, members that are
    aggregates themselves are disaggregated in turn, so the result holds the leaf offers only.
    """
    run = _run_of(agg)
    if not isinstance(schedule, Schedule):
        raise FlexOfferError("schedule", f"expected a Schedule, got {type(schedule).__name__}")
    violations = agg.check(schedule, now)
    if violations:
        raise _refuse(agg, schedule, violations)
    a = agg.position
    rows = run.member_rows(a)
    i, j = int(run.slice_offsets[a]), int(run.slice_offsets[a + 1])
    f = _fractions(np.asarray(schedule.energy, dtype=np.float64), run.L[i:j], run.U[i:j])
    t = run.targets(rows) - i
    lo, hi = run.box(rows)
    y = lo + f[t] * (hi - lo)
    counts = run.members.slice_offsets[rows + 1] - run.members.slice_offsets[rows]
    bounds = np.append(0, np.cumsum(counts)).tolist()
    ys = y.tolist()
    ids = run.offers.ids
    prof = run.members.profile
    out: dict[str, Schedule] = {}
    for k, r in enumerate(rows.tolist()):
        sched = Schedule(
            offer_id=ids[r], start=schedule.start + int(run.offset[r]), energy=tuple(ys[bounds[k]:bounds[k + 1]]),
            schedule_id=schedule.schedule_id, update_id=schedule.update_id, profile=int(prof[r]),
            resolution=agg.resolution,
        )
        below = run.source[r] if deep and run.source is not None else None
        if isinstance(below, AggregatedFlexOffer) and below.run is not None:
            for oid, s in disaggregate(below, sched, now=now, deep=True).items():
                if oid in out:
                    raise FlexOfferError("aggregate", f"offer {oid!r} appears twice below aggregate {agg.id}")
                out[oid] = s
        else:
            if ids[r] in out:
                raise FlexOfferError("aggregate", f"offer {ids[r]!r} appears twice below aggregate {agg.id}")
            out[ids[r]] = sched
    return out


@dataclass(eq=False)
class MemberSchedules:
    """Member schedules of many aggregates, as columns: one ``(offers, schedules)`` part per run,
    where ``schedules.offer_index`` are rows of ``offers`` (the set the run aggregated)."""

    parts: list[tuple[FlexOfferSet, ScheduleSet]]

    def __len__(self) -> int:
        return sum(len(s) for _, s in self.parts)

    def check(self, now: Optional[int] = None, now_resolution: int = DEFAULT_RESOLUTION) -> list[CheckResult]:
        """Feasibility of every member schedule against its own (original) offer, vectorised.

        ``now`` (needed for offers with implicit windows) is an interval at ``now_resolution``;
        offers at other resolutions are checked at the first of their intervals not before it.
        """
        out = []
        for offers, ss in self.parts:
            res = ss.resolution
            if now is None or len(res) == 0 or res.min() == res.max():
                r = int(res[0]) if len(res) else now_resolution
                out.append(check_set(offers, ss, None if now is None else -(-(now * now_resolution) // r)))
                continue
            flags = np.zeros(len(ss), dtype=np.uint16)
            for r in np.unique(res).tolist():
                k = np.flatnonzero(res == r)
                sub = _take(ss, k)
                flags[k] = check_set(offers, sub, -(-(now * now_resolution) // r)).flags
            out.append(CheckResult(flags))
        return out

    def to_dict(self) -> dict[str, Schedule]:
        """offer id -> :class:`Schedule`, built straight from the columns (validated once, as
        columns, by :func:`disaggregate_many`; no per-object checks)."""
        out: dict[str, Schedule] = {}
        of_columns = Schedule.of_columns
        for offers, ss in self.parts:
            ids = offers.ids
            rows = ss.offer_index.tolist()
            starts, profiles, res = ss.start.tolist(), ss.profile.tolist(), ss.resolution.tolist()
            bounds, energy = ss.energy_offsets.tolist(), ss.energy.tolist()
            sids = [None] * len(rows) if ss.schedule_ids is None else list(ss.schedule_ids)
            uids = [0] * len(rows) if ss.update_ids is None else ss.update_ids.tolist()
            for k, r in enumerate(rows):
                out[ids[r]] = of_columns(ids[r], starts[k], tuple(energy[bounds[k]:bounds[k + 1]]), sids[k], uids[k],
                                         profiles[k], res[k])
        return out


def _take(ss: ScheduleSet, k: np.ndarray) -> ScheduleSet:
    """The schedules at positions ``k`` of ``ss``."""
    counts = np.diff(ss.energy_offsets)[k]
    sl = expand_rows(ss.energy_offsets, k)
    return ScheduleSet(offer_index=ss.offer_index[k], start=ss.start[k], profile=ss.profile[k],
                       resolution=ss.resolution[k], energy_offsets=offsets_from_counts(counts), energy=ss.energy[sl])


def disaggregate_many(aggregates: Iterable[AggregatedFlexOffer], schedules: Iterable[Schedule], *,
                      now: Optional[int] = None) -> MemberSchedules:
    """Disaggregate one schedule per aggregate, all at once with array operations.

    ``schedules`` are matched to ``aggregates`` by ``offer_id``; an unknown or repeated id, or a
    schedule infeasible for its aggregate, raises :class:`FlexOfferError` (naming the schedule's
    position). Aggregates without a schedule are skipped. Members that are aggregates are not
    descended into (use :func:`disaggregate` with ``deep=True`` for that).
    """
    aggs = list(aggregates)
    by_id: dict[str, tuple[AggregatedFlexOffer, AggregationRun]] = {}
    for k, agg in enumerate(aggs):
        by_id[agg.id] = (agg, _run_of(agg, f"aggregates[{k}]"))
    scheds = list(schedules)
    per_run: dict[int, tuple[AggregationRun, list[tuple[int, int, Schedule]]]] = {}
    seen: dict[str, int] = {}
    for k, s in enumerate(scheds):
        if not isinstance(s, Schedule):
            raise FlexOfferError(f"schedules[{k}]", f"expected a Schedule, got {type(s).__name__}")
        known = by_id.get(s.offer_id)
        if known is None:
            raise FlexOfferError(f"schedules[{k}].offer_id", f"unknown aggregate {s.offer_id!r}")
        target, run = known
        if s.offer_id in seen:
            raise FlexOfferError(f"schedules[{k}].offer_id",
                                 f"a second schedule for {s.offer_id!r} (first at [{seen[s.offer_id]}])")
        seen[s.offer_id] = k
        per_run.setdefault(id(run), (run, []))[1].append((target.position, k, s))
    parts = []
    for run, items in per_run.values():
        parts.append((run.offers, _many(run, items, scheds, now)))
    return MemberSchedules(parts)


def _many(run: AggregationRun, items: list[tuple[int, int, Schedule]], scheds: list[Schedule],
          now: Optional[int]) -> ScheduleSet:
    from vmenergy.flexoffer import TOLERANCE

    G = len(run)
    pos = np.array([p for p, _, _ in items], dtype=np.int64)
    start = np.array([s.start for _, _, s in items], dtype=np.int64)
    lengths = np.array([len(s.energy) for _, _, s in items], dtype=np.int64)
    n_sl = run.slice_offsets[pos + 1] - run.slice_offsets[pos]
    res = run.offers.resolution[run.groups.rows[run.groups.offsets[pos]]]
    bad = (
        (start < run.est[pos]) | (start > run.est[pos] + run.tf[pos]) | (lengths != n_sl)
        | (np.array([s.profile for _, _, s in items]) != 0) | (np.array([s.resolution for _, _, s in items]) != res)
    )
    # energies of the aggregates in slice order; aggregates without a schedule keep X = L
    X = run.L.copy()
    have = np.zeros(G, dtype=bool)
    have[pos] = True
    ok_len = lengths == n_sl
    if ok_len.any():
        dst = np.concatenate([np.arange(run.slice_offsets[p], run.slice_offsets[p + 1]) for p in pos[ok_len]])
        src = np.concatenate([np.asarray(s.energy, dtype=np.float64) for (_, _, s), o in zip(items, ok_len) if o])
        X[dst] = src
        out_of = (X < run.L - TOLERANCE) | (X > run.U + TOLERANCE)
        if out_of.any():
            slice_agg = np.repeat(np.arange(G), np.diff(run.slice_offsets))
            bad_agg = np.zeros(G, dtype=bool)
            bad_agg[slice_agg[out_of]] = True
            bad |= bad_agg[pos]
    if bad.any():
        ks = np.flatnonzero(bad)
        p, k, s = items[int(ks[0])]
        agg = run.aggregates[p]
        raise _refuse(agg, s, agg.check(s, now), prefix=f"schedules[{k}].", more=len(ks) - 1)

    f_ext = np.append(_fractions(X, run.L, run.U), 0.0)  # the last entry serves excluded rows
    mem = run.members
    so = mem.slice_offsets
    y = np.empty(len(mem.lo))
    width = np.empty(min(len(mem.lo), 2 * CHUNK))
    for a, b in run.chunks():  # y = lo + f[t] * (hi - lo), chunk by chunk, nothing big allocated
        s0, s1 = int(so[a]), int(so[b])
        ys, w = y[s0:s1], width[: s1 - s0] if s1 - s0 <= len(width) else np.empty(s1 - s0)
        np.take(f_ext, run.targets_range(a, b), out=ys)
        np.subtract(mem.hi[s0:s1], mem.lo[s0:s1], out=w)
        ys *= w
        ys += mem.lo[s0:s1]
    # members of the aggregates that got a schedule
    g = run.groups.group
    member = g >= 0
    member[member] = have[g[member]]
    agg_start = np.zeros(G, dtype=np.int64)
    agg_start[pos] = start
    rows = np.flatnonzero(member)
    counts = np.diff(mem.slice_offsets)
    if len(rows) == len(g):
        energy, e_off = y, mem.slice_offsets
    else:
        keep = np.repeat(member, counts)
        energy, e_off = y[keep], offsets_from_counts(counts[rows])
    sid = np.full(G, None, dtype=object)
    uid = np.zeros(G, dtype=np.int64)
    sid[pos] = [s.schedule_id for _, _, s in items]
    uid[pos] = [s.update_id for _, _, s in items]
    ga = g[rows]
    return ScheduleSet(
        offer_index=rows,
        start=agg_start[ga] + run.offset[rows],
        profile=mem.profile[rows],
        resolution=run.offers.resolution[rows],
        energy_offsets=e_off,
        energy=energy,
        schedule_ids=sid[ga],
        update_ids=uid[ga],
    )
