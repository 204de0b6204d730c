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
from scipy.sparse import coo_matrix, csr_matrix

from vmenergy.flexoffer import TOLERANCE

from .problem import Row

__all__ = ["best_energy", "best_energy_many", "project", "feasible_point", "feasible_points", "mid_point", "snap"]


def best_energy(row: Row, slopes: Sequence[np.ndarray], intercepts: Sequence[np.ndarray]) -> Optional[np.ndarray]:
    """Energies minimising ``sum_k max_m (slopes[k][m] * x_k + intercepts[k][m])`` (a convex
    piecewise-linear cost per slice) within every constraint of the row; None if infeasible."""
    return best_energy_many([row], [slopes], [intercepts])[0]


def best_energy_many(rows: Sequence[Row], slopes: Sequence[Sequence[np.ndarray]],
                     intercepts: Sequence[Sequence[np.ndarray]], chunk: int = 128) -> list[Optional[np.ndarray]]:
    """:func:`best_energy` for many independent rows, solved as block-diagonal MILPs of up to
    ``chunk`` rows each (one solver call per chunk instead of one per row). A chunk the solver
    fails on is solved row by row."""
    out: list[Optional[np.ndarray]] = []
    for c0 in range(0, len(rows), chunk):
        part = list(range(c0, min(len(rows), c0 + chunk)))
        xs = _solve([rows[j] for j in part], [slopes[j] for j in part], [intercepts[j] for j in part], pin=None)
        if xs is None:
            out.extend(_solve_one(rows[j], slopes[j], intercepts[j]) for j in part)
        else:
            out.extend(xs)
    return out


def _solve_one(row: Row, slopes, intercepts) -> Optional[np.ndarray]:
    for pin in (None, "lo", "hi"):
        xs = _solve([row], [slopes], [intercepts], pin=pin)
        if xs is not None and xs[0] is not None:
            return xs[0]
    return None


#: Slices narrower than this (kWh) may be pinned to a bound when HiGHS fails on the model.
NARROW = 1e-5


def _solve(rows: Sequence[Row], slopes, intercepts, *, pin: Optional[str]) -> Optional[list[np.ndarray]]:
    """One block-diagonal MILP over ``rows``; None when the solver gives no solution.

    Per row: slice energies x, one epigraph variable per slice (``y_q >= s*x_q + b`` for every
    piece), the total, the polytope rows, and for discrete slices one binary per allowed value.
    A discrete slice with a single value in range, or a fixed slice, is a fixed variable.
    ``pin`` fixes slices narrower than :data:`NARROW` to their lower or upper bound (a retry
    for HiGHS's "solve error" on such models).
    """
    ri: list[np.ndarray] = []  # the constraint matrix as (row, column, value) pieces
    ci: list[np.ndarray] = []
    vv: list[np.ndarray] = []
    lb: list[np.ndarray] = []
    ub: list[np.ndarray] = []
    cost: list[np.ndarray] = []
    lo_b: list[np.ndarray] = []
    hi_b: list[np.ndarray] = []
    integ: list[np.ndarray] = []
    cols: list[int] = []
    ncol = 0
    nrow = 0
    for j, row in enumerate(rows):
        k = row.n_slices
        x0, y0 = ncol, ncol + k
        ncol += 2 * k
        xlo, xhi = row.lo.astype(float).copy(), row.hi.astype(float).copy()
        if pin is not None:
            narrow = (xhi - xlo) < NARROW
            if pin == "lo":
                xhi[narrow] = xlo[narrow]
            else:
                xlo[narrow] = xhi[narrow]
        values: list[Optional[np.ndarray]] = []
        for q, v in enumerate(row.values):
            if v is None:
                values.append(None)
                continue
            arr = np.asarray(v, dtype=float)
            arr = arr[(arr >= xlo[q] - TOLERANCE) & (arr <= xhi[q] + TOLERANCE)]
            if len(arr) == 1:
                xlo[q] = xhi[q] = arr[0]
                values.append(None)
            else:
                values.append(arr)
        cost.append(np.concatenate([np.zeros(k), np.ones(k)]))
        lo_b.append(np.concatenate([xlo, np.full(k, -np.inf)]))
        hi_b.append(np.concatenate([xhi, np.full(k, np.inf)]))
        integ.append(np.zeros(2 * k))
        cols.append(x0)
        # epigraph pieces: s * x_q - y_q <= -b
        counts = np.array([len(np.atleast_1d(sl)) for sl in slopes[j]])
        m = int(counts.sum())
        slice_of = np.repeat(np.arange(k), counts)
        s_all = np.concatenate([np.atleast_1d(sl) for sl in slopes[j]]).astype(float)
        b_all = np.concatenate([np.atleast_1d(b) for b in intercepts[j]]).astype(float)
        r_idx = nrow + np.arange(m)
        ri += [r_idx, r_idx]
        ci += [x0 + slice_of, y0 + slice_of]
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
            keep = np.any(A != 0, axis=1)  # empty rows: satisfiable by validation
            A = A[keep]
            rr, cc = np.nonzero(A)
            ri.append(nrow + rr)
            ci.append(x0 + cc)
            vv.append(A[rr, cc])
            lb.append(np.full(len(A), -np.inf))
            ub.append(np.asarray(row.polytope.b, dtype=float)[keep])
            nrow += len(A)
        for qq, allowed in enumerate(values):
            if allowed is None:
                continue
            nv = len(allowed)
            z0 = ncol
            ncol += nv
            cost.append(np.zeros(nv))
            lo_b.append(np.zeros(nv))
            hi_b.append(np.ones(nv))
            integ.append(np.ones(nv))
            ri += [np.full(nv + 1, nrow), np.full(nv, nrow + 1)]
            ci += [np.concatenate([[x0 + qq], z0 + np.arange(nv)]), z0 + np.arange(nv)]
            vv += [np.concatenate([[1.0], -allowed]), np.ones(nv)]
            lb.append(np.array([0.0, 1.0]))
            ub.append(np.array([0.0, 1.0]))
            nrow += 2
    A = coo_matrix((np.concatenate(vv), (np.concatenate(ri), np.concatenate(ci))), shape=(nrow, ncol)).tocsr()
    cons = [LinearConstraint(A, np.concatenate(lb), np.concatenate(ub))] if nrow else []
    res = _milp(np.concatenate(cost), cons, np.concatenate(integ),
                Bounds(np.concatenate(lo_b), np.concatenate(hi_b)))
    if res.x is None:
        return None
    return [snap(row, res.x[cols[j] : cols[j] + row.n_slices]) for j, row in enumerate(rows)]


def _milp(c, cons, integrality, bounds):
    """SciPy's HiGHS MILP, with the model cleaned of what trips HiGHS up: negative zeros and
    explicit zeros in the matrix; a solve error is retried without presolve."""
    c = np.asarray(c, dtype=float) + 0.0
    clean = []
    for k in cons:
        A = k.A.tocsr() if hasattr(k, "A") and hasattr(k.A, "tocsr") else csr_matrix(k.A)
        A.data = A.data + 0.0
        A.eliminate_zeros()
        clean.append(LinearConstraint(A, np.asarray(k.lb, dtype=float) + 0.0, np.asarray(k.ub, dtype=float) + 0.0))
    bounds = Bounds(np.asarray(bounds.lb, dtype=float) + 0.0, np.asarray(bounds.ub, dtype=float) + 0.0)
    opts = {"disp": False, "mip_rel_gap": 1e-6}
    res = milp(c, constraints=clean, integrality=integrality, bounds=bounds, options=opts)
    if res.x is None and res.status == 4:
        res = milp(c, constraints=clean, integrality=integrality, bounds=bounds, options={**opts, "presolve": False})
    return res


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
