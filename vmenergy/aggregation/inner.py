"""Inner approximation of a member's constraints by a box of slice bounds.

Why a box: the sum of boxes is exactly the box of sums, slice by slice, so an aggregate built from
boxes promises exactly what its members can deliver, and any feasible aggregate schedule splits
into member schedules with no search. Totals, polytopes and discrete values do not add up that way
(summing the members' totals, for instance, promises schedules that no split can realise; see
docs/aggregation.md for a counter-example). So each constrained member is first replaced by a box
that lies inside its true feasible set; every schedule inside that box is feasible for the member.
What the box cannot express is lost, and the flexibility-loss metrics count it.

- totals only: the largest box is closed-form and columnar: raise every slice minimum by the same
  fraction of its width until the minima add up to the total minimum, and lower the maxima likewise
  (it keeps ``min(total max, sum max) - max(total min, sum min)`` kWh of flexibility, the most any
  box inside the constraint can have);
- polytopes and discrete values: one small LP (or MILP with discrete values) per offer, maximising
  the box's total width subject to ``max over the box of A·x <= b``, the totals, and each discrete
  slice pinned to one of its values.

Members of a population repeat themselves: device models of one kind with the same settings make
the same offer, and at 5,000 prosumers 5,447 constrained profiles held only 2,470 distinct ones
(bench/RESULTS.md). So the LP's answers are remembered by content (:class:`_ContentMemo`): the
same inputs give the same box without solving again, and the answer cannot differ from a
solve because the solver is deterministic.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from vmenergy.flexoffer import TOLERANCE, Polytope

__all__ = ["shrink_to_totals", "box_inside", "box_violations"]

# Extra room kept from every polytope row and total by the LP, so the solver's own feasibility
# tolerance (HiGHS: 1e-7) can never push a box corner outside the member's constraints.
_MARGIN = 1e-8


def shrink_to_totals(
    lo: np.ndarray, hi: np.ndarray, offsets: np.ndarray, members: np.ndarray, tmin: np.ndarray, tmax: np.ndarray
) -> None:
    """Shrink, in place, the boxes of ``members`` (rows of the CSR ``offsets``) to fit their totals.

    ``tmin``/``tmax`` are per member (``-inf``/``+inf`` = open). Each slice keeps the same fraction
    ``[alpha, beta]`` of its width, the widest box whose every point meets the totals.
    """
    if len(members) == 0:
        return
    a, b = offsets[members], offsets[members + 1]
    counts = b - a
    idx = np.repeat(a - np.concatenate(([0], np.cumsum(counts)[:-1])), counts) + np.arange(int(counts.sum()))
    l, h = lo[idx], hi[idx]
    w = h - l
    seg = np.concatenate(([0], np.cumsum(counts)[:-1]))
    sl = np.add.reduceat(l, seg)
    sw = np.add.reduceat(w, seg)
    lo_t = np.maximum(tmin, sl)
    hi_t = np.minimum(tmax, sl + sw)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(sw > 0, (lo_t - sl) / sw, 0.0)
        beta = np.where(sw > 0, (hi_t - sl) / sw, 1.0)
    alpha = np.clip(alpha, 0.0, 1.0)
    beta = np.clip(beta, 0.0, 1.0)
    mid = (alpha + beta) / 2  # only differs when the total sits within TOLERANCE outside the slices
    swap = alpha > beta
    alpha = np.where(swap, mid, alpha)
    beta = np.where(swap, mid, beta)
    lo[idx] = l + np.repeat(alpha, counts) * w
    hi[idx] = l + np.repeat(beta, counts) * w
    # rounding must never widen: keep the new box inside the old one
    np.minimum(hi[idx], h, out=h)
    hi[idx] = np.maximum(h, lo[idx])


def box_violations(
    lo: Sequence[float],
    hi: Sequence[float],
    polytope: Optional[Polytope],
    tmin: Optional[float],
    tmax: Optional[float],
    values: Mapping[int, Sequence[float]] | None = None,
) -> list[str]:
    """Which constraints some point of the box ``[lo, hi]`` would break (empty: the box is inside).

    Exact worst-case check (``math.fsum`` over the box corner that maximises each row), used to
    verify every box the LP returns rather than trusting the solver's tolerance.
    """
    out = []
    for k, (a, b) in enumerate(zip(lo, hi)):
        if a > b:
            out.append(f"slice {k}: lower bound above upper bound")
    if tmin is not None and math.fsum(lo) < tmin - TOLERANCE / 10:
        out.append("total min")
    if tmax is not None and math.fsum(hi) > tmax + TOLERANCE / 10:
        out.append("total max")
    if polytope is not None:
        for j, (row, bj) in enumerate(zip(polytope.A, polytope.b)):
            worst = math.fsum(a * (h if a > 0 else l) for a, l, h in zip(row, lo, hi))
            if worst > bj + polytope.row_tolerance(j) / 10:
                out.append(f"polytope row {j}")
    for k, vals in (values or {}).items():
        if lo[k] != hi[k] or not any(abs(lo[k] - v) <= TOLERANCE for v in vals):
            out.append(f"slice {k}: not pinned to an allowed value")
    return out


Box = tuple[list[float], list[float]]


class _ContentMemo:
    """The last ``size`` answers of :func:`box_inside`, keyed by a digest of every input it reads.

    The key is a 128-bit BLAKE2b digest of the inputs' exact float64 bytes (and which optional
    inputs are absent), so the memo holds 16 bytes a key rather than the member's polytope (a
    battery's: 48 rows of 24 numbers); two different inputs sharing a digest is as likely as a
    random 128-bit collision. Bounded (least recently used goes first) because a long-running
    aggregator sees new offers every day; locked because aggregation runs in worker threads.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size: {size} must be at least 1")
        self.size = size
        self._answers: OrderedDict[bytes, Union[tuple[tuple[float, ...], tuple[float, ...]], str]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, key: bytes) -> Union[Box, str, None]:
        with self._lock:
            found = self._answers.get(key)
            if found is None:
                self.misses += 1
                return None
            self._answers.move_to_end(key)
            self.hits += 1
        # fresh lists: a caller may change what it was given
        return found if isinstance(found, str) else (list(found[0]), list(found[1]))

    def put(self, key: bytes, answer: Union[Box, str]) -> None:
        kept = answer if isinstance(answer, str) else (tuple(answer[0]), tuple(answer[1]))
        with self._lock:
            self._answers[key] = kept
            self._answers.move_to_end(key)
            while len(self._answers) > self.size:
                self._answers.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
            self.hits = self.misses = 0


#: Enough for a day of a city's distinct device offers (2,470 at 5,000 prosumers); each answer is
#: two tuples of slice bounds, ~1 KiB with its key.
BOX_MEMO = _ContentMemo(8192)


def _content_key(
    mins: Sequence[float],
    maxs: Sequence[float],
    polytope: Optional[Polytope],
    tmin: Optional[float],
    tmax: Optional[float],
    values: Mapping[int, Sequence[float]],
    prefer: Optional[Sequence[float]],
) -> bytes:
    """A digest of everything :func:`box_inside` reads. ``prefer`` counts only with discrete
    values (it breaks ties between pins; without them the LP never reads it)."""
    h = hashlib.blake2b(digest_size=16)

    def numbers(tag: bytes, xs) -> None:
        a = np.ascontiguousarray(xs, dtype=np.float64)
        h.update(tag + np.asarray(a.shape, dtype=np.int64).tobytes() + a.tobytes())

    numbers(b"lo", mins)
    numbers(b"hi", maxs)
    if polytope is not None:
        numbers(b"A", polytope.A)
        numbers(b"b", polytope.b)
    numbers(b"t", [0.0, 0.0] if tmin is None else [1.0, tmin])
    numbers(b"T", [0.0, 0.0] if tmax is None else [1.0, tmax])
    for k in sorted(values):
        numbers(b"v%d" % k, values[k])
    if values and prefer is not None:
        numbers(b"p", prefer)
    return h.digest()


def box_inside(
    mins: Sequence[float],
    maxs: Sequence[float],
    *,
    polytope: Optional[Polytope] = None,
    tmin: Optional[float] = None,
    tmax: Optional[float] = None,
    values: Mapping[int, Sequence[float]] | None = None,
    prefer: Optional[Sequence[float]] = None,
) -> tuple[list[float], list[float]] | str:
    """The widest box ``[lo, hi]`` (largest sum of widths) inside the slice bounds, the totals,
    the polytope and the discrete values; or a reason why there is none.

    ``prefer``: a point (e.g. the offer's baseline) whose discrete values are preferred when
    several pins give the same width (ties are otherwise broken towards the slice middle).

    An answer given before for the same inputs is given again without solving (:data:`BOX_MEMO`).
    """
    values = dict(values or {})
    key = _content_key(mins, maxs, polytope, tmin, tmax, values, prefer)
    known = BOX_MEMO.get(key)
    if known is not None:
        return known
    answer = _solve_box(mins, maxs, polytope=polytope, tmin=tmin, tmax=tmax, values=values, prefer=prefer)
    BOX_MEMO.put(key, answer)
    return answer


def _solve_box(
    mins: Sequence[float],
    maxs: Sequence[float],
    *,
    polytope: Optional[Polytope],
    tmin: Optional[float],
    tmax: Optional[float],
    values: dict[int, Sequence[float]],
    prefer: Optional[Sequence[float]],
) -> Box | str:
    """:func:`box_inside` without the memo: one LP (or MILP)."""
    from scipy.optimize import linprog, milp, LinearConstraint, Bounds

    n = len(mins)
    disc = sorted(values)
    # variables: l_0..l_{n-1}, u_0..u_{n-1}, then one binary per (discrete slice, value)
    zcols: list[tuple[int, float]] = [(k, v) for k in disc for v in values[k]]
    nv = 2 * n + len(zcols)
    rows: list[np.ndarray] = []
    rhs_hi: list[float] = []
    rhs_lo: list[float] = []

    def row() -> np.ndarray:
        return np.zeros(nv)

    def add(r: np.ndarray, lo: float, hi: float) -> None:
        rows.append(r)
        rhs_lo.append(lo)
        rhs_hi.append(hi)

    for k in range(n):  # l_k <= u_k
        r = row()
        r[k], r[n + k] = 1.0, -1.0
        add(r, -np.inf, 0.0)
    if polytope is not None:
        for j, (arow, bj) in enumerate(zip(polytope.A, polytope.b)):
            r = row()
            for k, a in enumerate(arow):
                if a > 0:
                    r[n + k] = a
                elif a < 0:
                    r[k] = a
            add(r, -np.inf, bj - _MARGIN * max(1.0, sum(map(abs, arow))))
    if tmin is not None:
        r = row()
        r[:n] = 1.0
        add(r, tmin + _MARGIN, np.inf)
    if tmax is not None:
        r = row()
        r[n : 2 * n] = 1.0
        add(r, -np.inf, tmax - _MARGIN)
    col = 2 * n
    for k in disc:  # l_k = u_k = sum v z_kv, sum z_kv = 1
        vals = values[k]
        for target in (k, n + k):
            r = row()
            r[target] = 1.0
            r[col : col + len(vals)] = -np.asarray(vals)
            add(r, 0.0, 0.0)
        r = row()
        r[col : col + len(vals)] = 1.0
        add(r, 1.0, 1.0)
        col += len(vals)
    c = np.concatenate((np.ones(n), -np.ones(n), np.zeros(len(zcols))))
    if zcols:  # tiny preference among equally wide pins
        span = max(1.0, max(abs(v) for _, v in zcols))
        for i, (k, v) in enumerate(zcols):
            goal = prefer[k] if prefer is not None else (mins[k] + maxs[k]) / 2
            c[2 * n + i] = 1e-6 * abs(v - goal) / span
    lb = np.concatenate((mins, mins, np.zeros(len(zcols))))
    ub = np.concatenate((maxs, maxs, np.ones(len(zcols))))

    def solve():
        A = np.vstack(rows)
        hi_b = np.asarray(rhs_hi, dtype=float)
        lo_b = np.asarray(rhs_lo, dtype=float)
        if zcols:
            integrality = np.concatenate((np.zeros(2 * n), np.ones(len(zcols))))
            res = milp(c, constraints=LinearConstraint(A, lo_b, hi_b), bounds=Bounds(lb, ub), integrality=integrality)
            return res.x if res.status == 0 else None
        a_ub, b_ub = [], []
        for r, lo_r, hi_r in zip(A, lo_b, hi_b):
            if np.isfinite(hi_r):
                a_ub.append(r), b_ub.append(hi_r)
            if np.isfinite(lo_r):
                a_ub.append(-r), b_ub.append(-lo_r)
        res = linprog(c, A_ub=np.asarray(a_ub), b_ub=np.asarray(b_ub), bounds=list(zip(lb, ub)), method="highs",
                      options={"primal_feasibility_tolerance": 1e-9})
        return res.x if res.status == 0 else None

    x = solve()
    if x is None:
        # the margin can make a thin (e.g. equality) constraint infeasible: retry without it
        _unmargin(rows, rhs_lo, rhs_hi, n, polytope, tmin, tmax)
        x = solve()
    if x is None:
        if disc:
            return "no choice of its discrete slice values fits its total and polytope constraints"
        return "no box of slice bounds fits inside its total and polytope constraints"
    lo = [min(max(float(v), m), M) for v, m, M in zip(x[:n], mins, maxs)]
    hi = [min(max(float(v), m), M) for v, m, M in zip(x[n : 2 * n], mins, maxs)]
    for k in disc:  # snap the pinned slices to the exact allowed value
        v = min(values[k], key=lambda v: abs(v - lo[k]))
        lo[k] = hi[k] = float(v)
    hi = [max(a, b) for a, b in zip(lo, hi)]
    bad = box_violations(lo, hi, polytope, tmin, tmax, values)
    if bad:
        return "numerical trouble fitting a box inside its constraints (" + ", ".join(bad) + ")"
    return lo, hi


def _unmargin(rows, rhs_lo, rhs_hi, n, polytope, tmin, tmax) -> None:
    """Remove the safety margins added to the polytope and total rows (in place)."""
    i = n
    if polytope is not None:
        for arow, bj in zip(polytope.A, polytope.b):
            rhs_hi[i] = bj
            i += 1
    if tmin is not None:
        rhs_lo[i] = tmin
        i += 1
    if tmax is not None:
        rhs_hi[i] = tmax
