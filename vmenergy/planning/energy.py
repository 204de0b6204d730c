"""Exact energy choice for one row at a fixed start: a small MILP solved with SciPy's HiGHS.

The heuristic handles the common offer (slice bounds plus a total) with array arithmetic; offers
with a polytope or discrete slice values need a real solver to stay feasible. Every call here is
tiny (one profile: a few dozen variables), so SciPy's ``milp`` answers in about a millisecond,
and the same routine also repairs solver round-off and finds a first feasible point.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from vmenergy.flexoffer import TOLERANCE

from .problem import Row

__all__ = ["best_energy", "best_energy_many", "project", "feasible_point", "feasible_points", "mid_point", "snap"]


def best_energy(row: Row, slopes: Sequence[np.ndarray], intercepts: Sequence[np.ndarray]) -> Optional[np.ndarray]:
    """Energies minimising ``sum_k max_m (slopes[k][m] * x_k + intercepts[k][m])`` (a convex
    piecewise-linear cost per slice) within every constraint of the row; None if infeasible."""
    k = row.n_slices
    vals = [v for v in row.values if v is not None]
    nz = sum(len(v) for v in vals)
    n = 2 * k + nz  # x, epigraph y, one binary per allowed value
    c = np.zeros(n)
    c[k : 2 * k] = 1.0
    a_rows: list[np.ndarray] = []
    lb: list[float] = []
    ub: list[float] = []
    for q in range(k):
        for s, b in zip(np.atleast_1d(slopes[q]), np.atleast_1d(intercepts[q])):
            r = np.zeros(n)
            r[q] = s
            r[k + q] = -1.0
            a_rows.append(r)
            lb.append(-np.inf)
            ub.append(-b)
    if np.isfinite(row.tmin) or np.isfinite(row.tmax):
        r = np.zeros(n)
        r[:k] = 1.0
        a_rows.append(r)
        lb.append(row.tmin)
        ub.append(row.tmax)
    if row.polytope is not None:
        for arow, bj in zip(row.polytope.A, row.polytope.b):
            r = np.zeros(n)
            r[:k] = arow
            a_rows.append(r)
            lb.append(-np.inf)
            ub.append(bj)
    integrality = np.zeros(n)
    col = 2 * k
    for q, v in enumerate(row.values):
        if v is None:
            continue
        r = np.zeros(n)
        r[q] = 1.0
        r[col : col + len(v)] = -np.asarray(v)
        a_rows.append(r)
        lb.append(0.0)
        ub.append(0.0)
        r = np.zeros(n)
        r[col : col + len(v)] = 1.0
        a_rows.append(r)
        lb.append(1.0)
        ub.append(1.0)
        integrality[col : col + len(v)] = 1
        col += len(v)
    lo = np.concatenate([row.lo, np.full(k, -np.inf), np.zeros(nz)])
    hi = np.concatenate([row.hi, np.full(k, np.inf), np.ones(nz)])
    cons = [LinearConstraint(np.array(a_rows), np.array(lb), np.array(ub))] if a_rows else []
    res = milp(c, constraints=cons, integrality=integrality, bounds=Bounds(lo, hi),
               options={"disp": False, "presolve": True})
    if res.x is None:
        return None
    return snap(row, res.x[:k])


def snap(row: Row, x: np.ndarray) -> np.ndarray:
    """Remove solver round-off: clip to the slice bounds and snap discrete slices to their values."""
    x = np.clip(np.asarray(x, dtype=float), row.lo, row.hi)
    for q, v in enumerate(row.values):
        if v is not None:
            arr = np.asarray(v)
            x[q] = arr[int(np.argmin(np.abs(arr - x[q])))]
    return x


def project(row: Row, point: np.ndarray) -> Optional[np.ndarray]:
    """The feasible energies nearest to ``point`` (in the sum of absolute differences)."""
    point = np.asarray(point, dtype=float)
    slopes = [np.array([1.0, -1.0])] * row.n_slices
    intercepts = [np.array([-p, p]) for p in point]
    return best_energy(row, slopes, intercepts)


def feasible_point(row: Row) -> np.ndarray:
    """A feasible energy vector near the middle of the slice ranges (a neutral first guess)."""
    if not row.special:
        return mid_point(row.lo, row.hi, row.tmin, row.tmax)
    x = project(row, (row.lo + row.hi) / 2)
    if x is None:  # the model guarantees a point exists; this only guards solver trouble
        raise RuntimeError(f"no feasible energy found for offer row {row.offer}/{row.profile}")
    return x


def mid_point(lo: np.ndarray, hi: np.ndarray, tmin: float, tmax: float) -> np.ndarray:
    """``lo + a*(hi - lo)`` with one ``a`` in [0, 1] chosen so the total lies in [tmin, tmax]."""
    slo, shi = float(lo.sum()), float(hi.sum())
    goal = (slo + shi) / 2
    goal = min(max(goal, tmin), tmax)
    a = 0.5 if shi - slo <= TOLERANCE else (goal - slo) / (shi - slo)
    a = min(max(a, 0.0), 1.0)
    return lo + a * (hi - lo)


def best_energy_many(rows: Sequence[Row], slopes: Sequence[Sequence[np.ndarray]],
                     intercepts: Sequence[Sequence[np.ndarray]], chunk: int = 128) -> list[Optional[np.ndarray]]:
    """:func:`best_energy` for many independent rows, solved as block-diagonal MILPs of up to
    ``chunk`` rows each (one solver call per chunk instead of one per row)."""
    from scipy.sparse import coo_matrix

    out: list[Optional[np.ndarray]] = []
    for c0 in range(0, len(rows), chunk):
        part = range(c0, min(len(rows), c0 + chunk))
        ri, ci, vv, lb, ub = [], [], [], [], []
        cost, lo_b, hi_b, integ, cols = [], [], [], [], []
        ncol = 0
        nrow = 0
        for j in part:
            row = rows[j]
            k = row.n_slices
            x0, y0 = ncol, ncol + k
            ncol += 2 * k
            cost.append(np.concatenate([np.zeros(k), np.ones(k)]))
            lo_b.append(np.concatenate([row.lo, np.full(k, -np.inf)]))
            hi_b.append(np.concatenate([row.hi, np.full(k, np.inf)]))
            integ.append(np.zeros(2 * k))
            cols.append(x0)
            # epigraph pieces: s * x_q - y_q <= -b
            counts = np.array([len(np.atleast_1d(s)) for s in slopes[j]])
            m = int(counts.sum())
            q = np.repeat(np.arange(k), counts)
            s_all = np.concatenate([np.atleast_1d(s) for s in slopes[j]]).astype(float)
            b_all = np.concatenate([np.atleast_1d(b) for b in intercepts[j]]).astype(float)
            r_idx = nrow + np.arange(m)
            ri += [r_idx, r_idx]
            ci += [x0 + q, y0 + q]
            vv += [s_all, -np.ones(m)]
            lb.append(np.full(m, -np.inf))
            ub.append(-b_all)
            nrow += m
            if np.isfinite(row.tmin) or np.isfinite(row.tmax):
                ri.append(np.full(k, nrow))
                ci.append(x0 + np.arange(k))
                vv.append(np.ones(k))
                lb.append(np.array([row.tmin]))
                ub.append(np.array([row.tmax]))
                nrow += 1
            if row.polytope is not None:
                A = np.asarray(row.polytope.A, dtype=float)
                rr, cc = np.nonzero(A)
                ri.append(nrow + rr)
                ci.append(x0 + cc)
                vv.append(A[rr, cc])
                lb.append(np.full(len(A), -np.inf))
                ub.append(np.asarray(row.polytope.b, dtype=float))
                nrow += len(A)
            for qq, v in enumerate(row.values):
                if v is None:
                    continue
                nv = len(v)
                z0 = ncol
                ncol += nv
                cost.append(np.zeros(nv))
                lo_b.append(np.zeros(nv))
                hi_b.append(np.ones(nv))
                integ.append(np.ones(nv))
                ri += [np.full(nv + 1, nrow), np.full(nv, nrow + 1)]
                ci += [np.concatenate([[x0 + qq], z0 + np.arange(nv)]), z0 + np.arange(nv)]
                vv += [np.concatenate([[1.0], -np.asarray(v, dtype=float)]), np.ones(nv)]
                lb.append(np.array([0.0, 1.0]))
                ub.append(np.array([0.0, 1.0]))
                nrow += 2
        A = coo_matrix((np.concatenate(vv), (np.concatenate(ri), np.concatenate(ci))), shape=(nrow, ncol)).tocsr()
        cons = [LinearConstraint(A, np.concatenate(lb), np.concatenate(ub))] if nrow else []
        integrality = np.concatenate(integ)
        res = milp(np.concatenate(cost), constraints=cons, integrality=integrality,
                   bounds=Bounds(np.concatenate(lo_b), np.concatenate(hi_b)),
                   options={"disp": False, "mip_rel_gap": 1e-6})
        for idx, j in enumerate(part):
            if res.x is None:
                out.append(best_energy(rows[j], slopes[j], intercepts[j]))
            else:
                k = rows[j].n_slices
                out.append(snap(rows[j], res.x[cols[idx] : cols[idx] + k]))
    return out


def feasible_points(rows: Sequence[Row]) -> list[np.ndarray]:
    """:func:`feasible_point` for many rows; the special ones are solved together in blocks."""
    out: list[Optional[np.ndarray]] = [None] * len(rows)
    special = [i for i, r in enumerate(rows) if r.special]
    for i, r in enumerate(rows):
        if not r.special:
            out[i] = mid_point(r.lo, r.hi, r.tmin, r.tmax)
    if special:
        mids = [(rows[i].lo + rows[i].hi) / 2 for i in special]
        slopes = [[np.array([1.0, -1.0])] * rows[i].n_slices for i in special]
        intercepts = [[np.array([-m, m]) for m in mid] for mid in mids]
        for i, x in zip(special, best_energy_many([rows[i] for i in special], slopes, intercepts)):
            out[i] = x if x is not None else feasible_point(rows[i])
    return out  # type: ignore[return-value]
