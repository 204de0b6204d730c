"""Bulk feasibility: 1,000,000 schedules against 1,000,000 offers, vectorised vs a plain loop.

Builds a FlexOfferSet of random consumption offers (4-32 slices, 15-min resolution, start window
up to 8 h, totals on a third of them) and one schedule per offer, of which about a quarter is made
infeasible in one of four ways (late start, slice above max, total below min, wrong length). Then:

- vectorised: ``vmenergy.flexoffer.offerset.check`` on the arrays;
- reference: a plain-Python loop over the same data (Python lists, same rules and tolerance);
- for scale: ``FlexOffer.check`` on 10,000 offer objects (the per-object API agents use).

Both bulk paths must agree on every verdict; the script exits 1 if they do not.

Usage: python bench/bench_flexoffer.py [--quick] [--n N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np

from vmenergy.flexoffer import TOLERANCE, FlexOfferSet, ScheduleSet
from vmenergy.flexoffer.offerset import Flag, check


def build(n: int, seed: int = 7) -> tuple[FlexOfferSet, ScheduleSet, np.ndarray]:
    """Offers, schedules, and per schedule whether it was generated infeasible."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(4, 33, n)
    total = int(counts.sum())
    lo = rng.uniform(0.0, 1.0, total)
    hi = lo + rng.uniform(0.0, 1.0, total)
    sa = 1_994_800 + rng.integers(0, 96, n)
    sb = sa + rng.integers(0, 33, n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    smin = np.add.reduceat(lo, offsets[:-1])
    smax = np.add.reduceat(hi, offsets[:-1])
    has_total = rng.random(n) < 1 / 3
    tmin = np.where(has_total, smin + 0.25 * (smax - smin), -np.inf)
    tmax = np.where(has_total, smin + 0.75 * (smax - smin), np.inf)
    offers = FlexOfferSet.from_arrays(
        ids=[f"fo-{i}" for i in range(n)], start_after=sa, start_before=sb, slice_count=counts,
        min=lo, max=hi, total_min=tmin, total_max=tmax,
    )
    # feasible schedules: the midpoint of every slice (meets totals set at 25..75 %)
    energy = (lo + hi) / 2
    start = sa + (rng.random(n) * (sb - sa + 1)).astype(np.int64)
    kind = rng.integers(0, 8, n)  # 0..3 break the schedule, 4..7 keep it feasible
    start = np.where(kind == 0, sb + 1, start)
    first = offsets[:-1]
    bump = first[kind == 1]
    energy[bump] = hi[bump] + 0.5
    low_total = np.repeat(kind == 2, counts)
    energy[low_total & np.repeat(has_total, counts)] = lo[low_total & np.repeat(has_total, counts)]
    # kind 3: drop the last value of the schedule (wrong length)
    drop = np.zeros(total, dtype=bool)
    drop[offsets[1:][kind == 3] - 1] = True
    energy = energy[~drop]
    e_counts = counts - (kind == 3)
    e_off = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(e_counts, out=e_off[1:])
    schedules = ScheduleSet.from_arrays(offer_index=np.arange(n), start=start, energy_offsets=e_off, energy=energy)
    broken = (kind == 0) | (kind == 1) | (kind == 3) | ((kind == 2) & has_total)
    return offers, schedules, broken


def as_lists(fs: FlexOfferSet, ss: ScheduleSet) -> tuple[list, ...]:
    """The same data as plain Python lists (what a pure-Python program would hold)."""
    return (fs.start_after.tolist(), fs.start_before.tolist(), fs.slice_offsets.tolist(), fs.min.tolist(),
            fs.max.tolist(), fs.total_min.tolist(), fs.total_max.tolist(), ss.offer_index.tolist(),
            ss.start.tolist(), ss.energy_offsets.tolist(), ss.energy.tolist())


def python_loop(data: tuple[list, ...]) -> list[int]:
    """The rules of ``check`` for single-profile offers with explicit windows, as an idiomatic
    loop (slices and zip). It computes the same output as ``check``: the violation flags of every
    schedule, not just a yes/no (so it cannot stop at the first violation)."""
    sa, sb, s_off, mn, mx, tmin, tmax, oi, start, e_off, energy = data
    tol = TOLERANCE
    START, LENGTH, SLICE, TOTAL = Flag.START, Flag.LENGTH, Flag.SLICE, Flag.TOTAL
    out = []
    for k, o in enumerate(oi):
        f = 0 if sa[o] <= start[k] <= sb[o] else START
        es = energy[e_off[k]:e_off[k + 1]]
        a, b = s_off[o], s_off[o + 1]
        if len(es) != b - a:
            out.append(f | LENGTH)
            continue
        for x, lo, hi in zip(es, mn[a:b], mx[a:b]):
            if x < lo - tol or x > hi + tol:
                f |= SLICE
                break
        total = sum(es)
        if total < tmin[o] - tol or total > tmax[o] + tol:
            f |= TOTAL
        out.append(f)
    return out


def python_index_loop(data: tuple[list, ...]) -> list[int]:
    """The same rules as a literal loop over the columns: one value at a time, by index."""
    sa, sb, s_off, mn, mx, tmin, tmax, oi, start, e_off, energy = data
    tol = TOLERANCE
    START, LENGTH, SLICE, TOTAL = Flag.START, Flag.LENGTH, Flag.SLICE, Flag.TOTAL
    out = []
    for k in range(len(oi)):
        o = oi[k]
        f = 0 if sa[o] <= start[k] <= sb[o] else START
        a = e_off[k]
        n = e_off[k + 1] - a
        so = s_off[o]
        if n != s_off[o + 1] - so:
            out.append(f | LENGTH)
            continue
        total = 0.0
        for j in range(n):
            x = energy[a + j]
            if x < mn[so + j] - tol or x > mx[so + j] + tol:
                f |= SLICE
            total += x
        if total < tmin[o] - tol or total > tmax[o] + tol:
            f |= TOTAL
        out.append(f)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100,000 offers instead of 1,000,000")
    ap.add_argument("--n", type=int, default=None)
    args = ap.parse_args()
    n = args.n or (100_000 if args.quick else 1_000_000)

    t0 = time.perf_counter()
    fs, ss, broken = build(n)
    t_build = time.perf_counter() - t0
    print(f"offers: {n:,}, slices: {fs.n_slices:,} ({fs.n_slices / n:.1f} per offer), "
          f"columns {fs.nbytes / 2**20:.0f} MiB; built and validated in {t_build:.2f} s")

    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        result = check(fs, ss)
        times.append(time.perf_counter() - t0)
    t_vec = min(times)
    print(f"vectorised check: {t_vec:.3f} s for {n:,} schedules (best of 3; {n / t_vec / 1e6:.2f} M schedules/s); "
          f"feasible {result.n_feasible:,}, violations {result.counts()}")

    t0 = time.perf_counter()
    data = as_lists(fs, ss)
    t_conv = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = python_loop(data)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref_index = python_index_loop(data)
    t_index = time.perf_counter() - t0
    del data
    print(f"list conversion of the arrays (not in the loop times): {t_conv:.2f} s")
    print(f"plain-Python loop, zip over slices: {t_loop:.2f} s ({n / t_loop / 1e3:.0f} k schedules/s)")
    print(f"plain-Python loop, value by index:  {t_index:.2f} s ({n / t_index / 1e3:.0f} k schedules/s)")
    agree = bool(np.array_equal(np.asarray(ref), result.flags)) and ref == ref_index
    print(f"speed-up of the vectorised check: {t_loop / t_vec:.1f}x vs the zip loop, {t_index / t_vec:.1f}x vs the "
          f"index loop, {(t_loop + t_conv) / t_vec:.1f}x vs zip loop + conversion; violation flags agree: {agree}")
    ref_ok = [f == 0 for f in ref]

    k = min(10_000, n)
    objs = fs.take(np.arange(k)).to_offers()
    scheds = [ss.schedule(i, fs) for i in range(k)]
    t0 = time.perf_counter()
    obj_ok = [o.is_feasible(s) for o, s in zip(objs, scheds)]
    t_obj = time.perf_counter() - t0
    print(f"FlexOffer.check on {k:,} objects: {t_obj:.2f} s ({k / t_obj / 1e3:.1f} k/s); "
          f"agrees: {obj_ok == ref_ok[:k]}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    as_generated = bool(np.array_equal(~broken, result.feasible))
    print(f"generated infeasible: {int(broken.sum()):,}; found infeasible: {n - result.n_feasible:,}; "
          f"same schedules: {as_generated}")
    return 0 if agree and as_generated and obj_ok == ref_ok[:k] else 1


if __name__ == "__main__":
    sys.exit(main())
