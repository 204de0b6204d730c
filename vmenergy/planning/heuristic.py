"""The fast planner: greedy construction plus local improvement, on numpy arrays.

How it works, and why:

- Every offer is a set of rows (its exclusive-OR profiles) with a start window. The state is one
  active row, a start and the slice energies per offer; the aggregate load ``L`` is kept up to
  date with ``bincount``.
- Offers are visited in batches: least time-flexible first in the construction pass (they have
  the fewest places to go), then shuffled with a seeded generator in each improvement sweep. A
  batch's own load is taken out of ``L`` and each offer in the batch chooses its *best response*
  against the rest: the (profile, start) and energies that minimise the objective given
  everybody else. All offers of a batch are handled at once with array operations.
- The best response for energies is exact for the common offer (slice bounds plus a total): the
  objective seen by one slice is a convex piecewise-linear function of its energy (hinges for
  targets and capacity, linear prices, offer prices), so filling the cheapest slope segments
  first until the total constraint is met is optimal. The function is sampled at its kinks
  (plus a few uniform points for durations > 1 and squared terms) and the segments are sorted
  per offer in one ``argsort``.
- Small portfolios evaluate the energy response at every candidate start (joint choice); large
  ones choose the start with the current energies, then re-optimise energies at that start.
- Offers in one batch share intervals. So that they do not all rush into the same gap, each
  offer sees its own effect multiplied by the number of batch offers whose windows cover the
  interval (it fills its share of the gap); with batches of one this is the exact response.
- Offers with a polytope or discrete values keep their energies while starts are chosen; then
  their energies are re-optimised exactly by a tiny MILP (:mod:`.energy`): in every step when
  batches are small, else chunk by chunk after the construction pass and after each phase.
- Sweeps first use squares instead of hinges (valley filling spreads deviations so later moves
  have room), then the exact objective. The result is a local optimum for single-offer moves.
  For portfolios up to 1,000 offers a last phase tries *forced moves*: an offer is put onto an
  interval that lacks load (or taken off one with too much) although that alone is worse, the
  offers around its old and new place answer, and the change is kept if the objective
  improved (an ejection chain of depth two). Longer chains are what the MILP finds on top
  (measured in ``bench/bench_planning.py``; a plain ruin-and-recreate search gained nothing).
- Peak shaving is guided by the sum of squared total load; the reported value is always the
  true objective, and the best state seen is returned.

Deterministic for a given ``seed``; the optional time limit stops between batches.
"""

from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np

from vmenergy.flexoffer.ragged import positions, sums_at

from .energy import best_energy_many, feasible_points
from .problem import Problem
from .result import Assignment
from .solver import SolverReport

__all__ = ["plan_heuristic", "JOINT_BUDGET"]

#: Above this many (start x interval) cells per sweep, starts and energies are chosen separately.
JOINT_BUDGET = 400_000


class _Rows:
    """The problem's rows as padded arrays (rows x slices) plus the slice of every cell."""

    def __init__(self, problem: Problem) -> None:
        rows = problem.rows
        R = len(rows)
        self.R = R
        self.K = K = max(r.n_slices for r in rows)
        self.D = np.array([r.duration for r in rows], dtype=np.int64)
        self.C = C = int(self.D.max())
        self.lo = np.zeros((R, K))
        self.hi = np.zeros((R, K))
        self.dur = np.ones((R, K), dtype=np.int64)
        self.ref = np.zeros((R, K))
        self.up = np.zeros((R, K))
        self.down = np.zeros((R, K))
        self.tmin = np.array([r.tmin for r in rows])
        self.tmax = np.array([r.tmax for r in rows])
        self.first = np.array([r.first - problem.start for r in rows], dtype=np.int64)
        self.W = np.array([r.n_starts for r in rows], dtype=np.int64)
        self.offer = np.array([r.offer for r in rows], dtype=np.int64)
        self.special = np.array([r.special for r in rows], dtype=bool)
        self.cell_slice = np.zeros((R, C), dtype=np.int64)
        for i, r in enumerate(rows):
            k = r.n_slices
            self.lo[i, :k] = r.lo
            self.hi[i, :k] = r.hi
            self.dur[i, :k] = r.dur
            self.ref[i, :k] = r.ref
            self.up[i, :k] = r.up
            self.down[i, :k] = r.down
            self.cell_slice[i, : r.duration] = np.repeat(np.arange(k), r.dur)
        self.priced = bool(np.any(self.up) or np.any(self.down))
        self.multi_cell = bool(np.any((self.dur > 1) & (self.hi > self.lo)))


class _Heuristic:
    def __init__(self, problem: Problem, seed: int, batch: Optional[int], joint: Optional[bool]) -> None:
        self.p = problem
        self.a = a = _Rows(problem)
        self.rng = np.random.default_rng(seed)
        n = len(problem.offers)
        self.n = n
        T = problem.length
        self.T = T
        terms = problem.terms
        self.price = terms.price
        self.hinges = [(h.target, h.over, h.under) for h in terms.hinges]
        # squares replace hinges in the smoothing phase; scaled so slopes stay comparable
        self.hinge_scale = [max(1e-6, float(np.mean(np.abs(h.target)))) for h in terms.hinges]
        self.smooth = False
        scale = 1.0
        if terms.peaks:
            mag = float(np.maximum(np.abs(a.lo.sum(1)), np.abs(a.hi.sum(1))).sum())
            scale = max(1e-6, max(float(np.abs(p.base).max()) for p in terms.peaks) + mag / max(T, 1))
        self.peaks = [(p.weight / scale, p.base) for p in terms.peaks]
        # capacity: one extra unlimited point for offers outside every congestion point
        P = problem.n_points
        self.P = P
        self.cap_up = np.vstack([problem.cap_upper.reshape(P, T), np.full((1, T), np.inf)])
        self.cap_lo = np.vstack([problem.cap_lower.reshape(P, T), np.full((1, T), -np.inf)])
        self.pen = problem.capacity_penalty
        pt = problem.point_of_offer if len(problem.point_of_offer) else np.full(n, -1)
        self.point = np.where(pt >= 0, pt, P).astype(np.int64)
        self.has_cap = P > 0
        # per offer: its rows, and the span of intervals it can touch (for the batch share)
        self.rows_of = [np.asarray(rs, dtype=np.int64) for rs in problem.rows_of]
        self.span_lo = np.array([int(a.first[rs].min()) for rs in self.rows_of], dtype=np.int64)
        self.span_hi = np.array([int((a.first[rs] + a.W[rs] - 1 + a.D[rs]).max()) for rs in self.rows_of], dtype=np.int64)
        self.flex = np.array([int(a.W[rs].sum()) for rs in self.rows_of], dtype=np.int64)
        # state
        self.x = np.zeros((a.R, a.K))
        for r, x in enumerate(feasible_points(problem.rows)):
            self.x[r, : len(x)] = x
        self.active = np.array([rs[0] for rs in self.rows_of], dtype=np.int64)
        self.start = a.first[self.active] + (a.W[self.active] - 1) // 2
        self.placed = np.zeros(n, dtype=bool)
        self.L = np.zeros(T)
        self.LP = np.zeros((P + 1, T))
        cells = int((a.W * a.D).sum())
        self.joint = (cells <= JOINT_BUDGET) if joint is None else joint
        # batches of one are exact Gauss-Seidel steps (best quality); large portfolios need
        # bigger batches to keep the number of numpy calls per sweep bounded
        self.batch = batch if batch else (1 if n <= 400 else math.ceil(n / 128))
        # polytope / discrete offers get their exact energies in every step of small batches,
        # and in chunked passes after the sweeps otherwise
        self.exact_batch = 4
        # forced moves (ejection chains) are tried on portfolios up to this size
        self.forced_limit = 1_000
        self.forced_near = 12
        self.forced_passes = 2
        self.pass_special = bool(a.special.any()) and self.batch > self.exact_batch
        # uniform sample points: none needed when every flexible slice is one interval and the
        # objective is piecewise linear (the kinks are then exact)
        if self.peaks:
            self.exact_uniform = 9
        elif a.multi_cell:
            self.exact_uniform = 5
        else:
            self.exact_uniform = 2
        self.n_uniform = self.exact_uniform
        self.sweeps = 0

    # -- objective pieces --------------------------------------------------------------------
    def G(self, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Objective contribution of interval(s) t at total flexible load v."""
        out = self.price[t] * v
        for (tgt, over, under), s in zip(self.hinges, self.hinge_scale):
            d = v - tgt[t]
            if self.smooth:
                out = out + (0.5 / s) * (over[t] * np.maximum(d, 0.0) ** 2 + under[t] * np.minimum(d, 0.0) ** 2)
            else:
                out = out + over[t] * np.maximum(d, 0.0) + under[t] * np.maximum(-d, 0.0)
        for w, base in self.peaks:
            out = out + (0.5 * w) * (base[t] + v) ** 2
        return out

    def Gc(self, p: np.ndarray, t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Capacity penalty of point(s) p at interval(s) t with point load v."""
        up = self.cap_up[p, t]
        lo = self.cap_lo[p, t]
        over = np.maximum(v - np.where(np.isfinite(up), up, np.inf), 0.0)
        under = np.maximum(np.where(np.isfinite(lo), lo, -np.inf) - v, 0.0)
        return self.pen * (over + under)

    def true_objective(self) -> float:
        value = self.p.terms.evaluate(self.L)
        if self.has_cap:
            value += self.pen * float(self.p.capacity_violation(self.LP[: self.P]).sum())
        if self.a.priced:
            r = self.active
            d = self.x[r] - self.a.ref[r]
            value += float(np.sum(self.a.up[r] * np.maximum(d, 0) + self.a.down[r] * np.maximum(-d, 0)))
        return value

    # -- load bookkeeping -------------------------------------------------------------------------
    def _apply(self, offers: np.ndarray, sign: float) -> None:
        a = self.a
        rows = self.active[offers]
        owner, local = positions(a.D[rows])
        r = rows[owner]
        k = a.cell_slice[r, local]
        load = self.x[r, k] / a.dur[r, k]
        pos = self.start[offers][owner] + local
        self.L += sign * sums_at(pos, load, self.T)
        if self.has_cap:
            idx = self.point[offers][owner] * self.T + pos
            self.LP += sign * sums_at(idx, load, (self.P + 1) * self.T).reshape(self.P + 1, self.T)

    def _share(self, offers: np.ndarray) -> np.ndarray:
        """Per interval: how many of the batch's offers can place load there (at least 1)."""
        if len(offers) == 1:
            return np.ones(self.T)
        diff = np.bincount(self.span_lo[offers], minlength=self.T + 1) - np.bincount(self.span_hi[offers], minlength=self.T + 1)
        return np.maximum(np.cumsum(diff[: self.T]), 1).astype(float)

    def _residual(self) -> None:
        """Freeze the current load as the residual the responding offers see."""
        self.R = self.L.copy()
        self.G0 = self.G(np.arange(self.T), self.R)
        if self.has_cap:
            self.RP = self.LP.copy()
            pidx = np.repeat(np.arange(self.P + 1), self.T).reshape(self.P + 1, self.T)
            tidx = np.tile(np.arange(self.T), (self.P + 1, 1))
            self.G0c = self.Gc(pidx, tidx, self.RP)

    # -- best response of energies ------------------------------------------------------------------
    def _grid(self, vr: np.ndarray, vs: np.ndarray, lo: np.ndarray, hi: np.ndarray, share: np.ndarray):
        """Sample points and objective per (virtual row, slice): g, phi of shape (V, K, M)."""
        a = self.a
        V, K = len(vr), a.K
        cv, cc = positions(a.D[vr])
        r = vr[cv]
        ck = a.cell_slice[r, cc]
        t = vs[cv] + cc
        sh = share[t]
        R = self.R[t]
        dur = a.dur[r, ck].astype(float)
        key = cv * K + ck

        def per_slice(vals: np.ndarray) -> np.ndarray:
            return sums_at(key, vals, V * K).reshape(V, K)

        specials = []
        for tgt, _, _ in self.hinges:
            specials.append(per_slice((tgt[t] - R) / sh))
        if self.has_cap:
            p = self.point[a.offer[r]]
            RP = self.RP[p, t]
            for lim in (self.cap_up[p, t], self.cap_lo[p, t]):
                q = np.where(np.isfinite(lim), lim - RP, 0.0) / sh
                specials.append(per_slice(q))
        for w, base in self.peaks:
            specials.append(per_slice(-(base[t] + R) / sh))
        if a.priced:
            specials.append(a.ref[vr])
        u = np.linspace(0.0, 1.0, self.n_uniform)
        g = lo[:, :, None] + (hi - lo)[:, :, None] * u[None, None, :]
        if specials:
            sp = np.clip(np.stack(specials, -1), lo[:, :, None], hi[:, :, None])
            g = np.sort(np.concatenate([g, sp], -1), -1)
        M = g.shape[-1]
        gc = g[cv, ck]  # (cells, M)
        step = (sh / dur)[:, None] * gc
        tt = t[:, None]
        val = (self.G(tt, R[:, None] + step) - self.G0[t][:, None]) / sh[:, None]
        if self.has_cap:
            pp = p[:, None]
            val += (self.Gc(pp, tt, RP[:, None] + step) - self.G0c[p, t][:, None]) / sh[:, None]
        idx = (key[:, None] * M + np.arange(M)[None, :]).ravel()
        phi = sums_at(idx, val.ravel(), V * K * M).reshape(V, K, M)
        if a.priced:
            d = g - a.ref[vr][:, :, None]
            phi += a.up[vr][:, :, None] * np.maximum(d, 0) + a.down[vr][:, :, None] * np.maximum(-d, 0)
        return g, phi

    def _respond(self, vr: np.ndarray, vs: np.ndarray, share: np.ndarray, fixed: np.ndarray):
        """Best energies for each virtual row (row vr at start vs): returns x (V, K), cost (V,)."""
        a = self.a
        lo = a.lo[vr].copy()
        hi = a.hi[vr].copy()
        tmin = a.tmin[vr].copy()
        tmax = a.tmax[vr].copy()
        if fixed.any():  # polytope / discrete rows keep their energies while starts are chosen
            lo[fixed] = self.x[vr[fixed]]
            hi[fixed] = self.x[vr[fixed]]
            tmin[fixed] = -np.inf
            tmax[fixed] = np.inf
        g, phi = self._grid(vr, vs, lo, hi, share)
        V, K, M = g.shape
        ln = np.diff(g, axis=-1)
        ok = ln > 1e-12
        slope = np.where(ok, np.diff(phi, axis=-1) / np.where(ok, ln, 1.0), 0.0)
        ln = np.where(ok, ln, 0.0)
        ln2 = ln.reshape(V, -1)
        sl2 = slope.reshape(V, -1)
        base = lo.sum(1)
        fneg = np.where(sl2 < 0, ln2, 0.0).sum(1)
        F = np.clip(np.clip(fneg, tmin - base, tmax - base), 0.0, ln2.sum(1))
        order = np.argsort(sl2, axis=1, kind="stable")
        lsorted = np.take_along_axis(ln2, order, 1)
        before = np.cumsum(lsorted, 1) - lsorted
        amt_sorted = np.clip(F[:, None] - before, 0.0, lsorted)
        amt = np.empty_like(amt_sorted)
        np.put_along_axis(amt, order, amt_sorted, 1)
        amt = amt.reshape(V, K, M - 1)
        x = np.minimum(np.maximum(lo + amt.sum(-1), lo), hi)
        cost = phi[:, :, 0].sum(1) + (amt * slope).sum((1, 2))
        return x, cost

    def _place_cost(self, rows: np.ndarray, share: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cost of every start of each row with its current energies; flat over (row, start)."""
        a = self.a
        W = a.W[rows]
        D = a.D[rows]
        eo, el = positions(W * D)
        w = el // D[eo]
        c = el - w * D[eo]
        r = rows[eo]
        t = a.first[r] + w + c
        k = a.cell_slice[r, c]
        load = self.x[r, k] / a.dur[r, k]
        sh = share[t]
        val = (self.G(t, self.R[t] + sh * load) - self.G0[t]) / sh
        if self.has_cap:
            p = self.point[a.offer[r]]
            val += (self.Gc(p, t, self.RP[p, t] + sh * load) - self.G0c[p, t]) / sh
        woff = np.cumsum(W) - W
        cost = sums_at(woff[eo] + w, val, int(W.sum()))
        which, ws = positions(W)
        if a.priced:
            d = self.x[rows] - a.ref[rows]
            cost += (a.up[rows] * np.maximum(d, 0) + a.down[rows] * np.maximum(-d, 0)).sum(1)[which]
        return cost, which, ws

    # -- one batch ---------------------------------------------------------------------------------
    def _step(self, offers: np.ndarray) -> None:
        a = self.a
        was = self.placed[offers]
        if was.any():
            self._apply(offers[was], -1.0)
        self._residual()
        share = self._share(offers)
        rows_list = [self.rows_of[o] for o in offers]
        rows = np.concatenate(rows_list)
        owner = np.repeat(np.arange(len(offers)), [len(rs) for rs in rows_list])
        cur_row = self.active[offers]
        cur_start = self.start[offers]
        if self.joint:
            vo_r, ws = positions(a.W[rows])
            vr = rows[vo_r]
            vs = a.first[vr] + ws
            vo = owner[vo_r]
            x, cost = self._respond(vr, vs, share, a.special[vr])
            # keep the current choice on ties (stability); among others the first wins
            cur = was[vo] & (vr == cur_row[vo]) & (vs == cur_start[vo])
            cost = cost - 1e-9 * (1.0 + np.abs(cost)) * cur
            best = _argmin_by_group(cost, vo, len(offers))
            self.active[offers] = vr[best]
            self.start[offers] = vs[best]
            self.x[vr[best]] = x[best]
        else:
            cost, which, ws = self._place_cost(rows, share)
            vr = rows[which]
            vs = a.first[vr] + ws
            vo = owner[which]
            cur = was[vo] & (vr == cur_row[vo]) & (vs == cur_start[vo])
            cost = cost - 1e-9 * (1.0 + np.abs(cost)) * cur
            best = _argmin_by_group(cost, vo, len(offers))
            chosen, starts = vr[best], vs[best]
            x, _ = self._respond(chosen, starts, share, a.special[chosen])
            self.active[offers] = chosen
            self.start[offers] = starts
            self.x[chosen] = x
        self.placed[offers] = True
        self._apply(offers, 1.0)
        if len(offers) <= self.exact_batch:
            sp = offers[a.special[self.active[offers]]]
            if len(sp):
                self._exact(sp)

    def _special_pass(self, chunk: int = 64) -> None:
        """Re-optimise the energies of every placed polytope / discrete offer exactly: chunk by
        chunk (Gauss-Seidel between chunks), each chunk as one block-diagonal MILP."""
        a = self.a
        offers = np.flatnonzero(a.special[self.active] & self.placed)
        for c0 in range(0, len(offers), chunk):
            self._exact(offers[c0 : c0 + chunk])

    def _exact(self, offers: np.ndarray) -> None:
        """Exact energies of the given (polytope / discrete) offers at their current starts."""
        a = self.a
        self._apply(offers, -1.0)
        self._residual()
        rows = self.active[offers]
        starts = self.start[offers]
        owner, local = positions(a.D[rows])
        share = np.maximum(np.bincount(starts[owner] + local, minlength=self.T), 1).astype(float)
        saved = self.n_uniform
        self.n_uniform = max(saved, 3)
        g, phi = self._grid(rows, starts, a.lo[rows], a.hi[rows], share)
        self.n_uniform = saved
        slopes, intercepts = [], []
        for i, r in enumerate(rows):
            ss, ii = [], []
            for q in range(self.p.rows[r].n_slices):
                gq, fq = g[i, q], phi[i, q]
                ln = np.diff(gq)
                keep = ln > 1e-12
                if not keep.any():
                    ss.append(np.array([0.0]))
                    ii.append(np.array([fq[0]]))
                    continue
                sl = np.diff(fq)[keep] / ln[keep]
                ss.append(sl)
                ii.append(fq[:-1][keep] - sl * gq[:-1][keep])
            slopes.append(ss)
            intercepts.append(ii)
        xs = best_energy_many([self.p.rows[r] for r in rows], slopes, intercepts)
        for r, x in zip(rows, xs):
            if x is not None:
                self.x[r, : len(x)] = x
        self._apply(offers, 1.0)

    # -- driver -------------------------------------------------------------------------------------------
    def run(self, max_sweeps: int, time_limit: Optional[float], t0: float) -> tuple[str, float]:
        size = np.array([max(np.abs(self.a.lo[rs].sum(1)).max(), np.abs(self.a.hi[rs].sum(1)).max()) for rs in self.rows_of])
        order = np.lexsort((np.arange(self.n), -size, self.flex))
        deadline = None if time_limit is None else t0 + time_limit
        status = "feasible"
        best_val = math.inf
        best = None
        phases = ([True] if self.hinges else []) + [False]
        first = True
        for smooth in phases:
            self.smooth = smooth
            self.n_uniform = 9 if smooth else self.exact_uniform
            stale = 0
            for sweep in range(max_sweeps):
                if not first:
                    order = self.rng.permutation(self.n)
                for b in range(0, self.n, self.batch):
                    self._step(order[b : b + self.batch])
                    if not first and deadline is not None and time.perf_counter() > deadline:
                        status = "time_limit"
                        break
                if self.pass_special and first:
                    self._special_pass()
                first = False
                self.sweeps += 1
                val = self.true_objective()
                if best is None or val < best_val - 1e-9 * max(1.0, abs(best_val)):
                    gain = best_val - val
                    best_val = val
                    best = self._snapshot()
                    stale = 0 if gain > 1e-4 * max(1.0, abs(val)) else stale + 1
                else:
                    stale += 1
                if stale >= 2 or status == "time_limit":
                    break
            if self.pass_special and status != "time_limit":
                self._special_pass()
                val = self.true_objective()
                if val < best_val - 1e-9 * max(1.0, abs(best_val)):
                    best_val = val
                    best = self._snapshot()
            if status == "time_limit":
                break
        self._restore(best)
        if status != "time_limit" and self.n <= self.forced_limit and (self.hinges or self.peaks or self.has_cap):
            if self._forced_moves(deadline):
                status = "time_limit"
            best_val = self.true_objective()
        return status, best_val

    # -- forced moves (ejection chains of depth two) -----------------------------------------------
    def _bad_intervals(self) -> tuple[np.ndarray, np.ndarray]:
        """Intervals that still cost: (interval, +1 where load should rise / -1 where it should fall)."""
        need = np.zeros(self.T)
        for tgt, over, under in self.hinges:
            d = self.L - tgt
            need += np.where(d < -1e-9, under, 0.0) - np.where(d > 1e-9, over, 0.0)
        for _w, base in self.peaks:
            tot = base + self.L
            need -= (tot >= tot.max() - 1e-9).astype(float)
        if self.has_cap:
            over = np.maximum(self.LP[: self.P] - self.cap_up[: self.P], 0).sum(0)
            under = np.maximum(self.cap_lo[: self.P] - self.LP[: self.P], 0).sum(0)
            need += (under > 1e-9).astype(float) - (over > 1e-9).astype(float)
        ts = np.flatnonzero(np.abs(need) > 0)
        return ts, np.sign(need[ts])

    def _forced_moves(self, deadline: Optional[float], rounds: int = 3, tries: int = 6) -> bool:
        """Move an offer onto an interval that lacks load (or off one with too much) although
        that alone makes things worse, let the offers around its old and new place answer, and
        keep the result if the objective improved. Returns True if the deadline stopped it."""
        a = self.a
        current = self.true_objective()
        for _ in range(rounds):
            improved = False
            ts, sign = self._bad_intervals()
            for k in self.rng.permutation(len(ts)):
                t, want_more = int(ts[k]), sign[k] > 0
                D = a.D[self.active]
                covers = (self.start <= t) & (self.start + D > t)
                reach = (self.span_lo <= t) & (self.span_hi > t)
                cand = np.flatnonzero(reach & ~covers) if want_more else np.flatnonzero(covers & (self.flex > 1))
                if len(cand) == 0:
                    continue
                for o in self.rng.choice(cand, size=min(tries, len(cand)), replace=False):
                    if deadline is not None and time.perf_counter() > deadline:
                        return True
                    value = self._try_forced(int(o), t, want_more, current)
                    if value is not None:
                        current = value
                        improved = True
                        break
            if not improved:
                break
        return False

    def _try_forced(self, o: int, t: int, cover: bool, current: float) -> Optional[float]:
        a = self.a
        rows = self.rows_of[o]
        owner, ws = positions(a.W[rows])
        vr = rows[owner]
        vs = a.first[vr] + ws
        hit = (vs <= t) & (vs + a.D[vr] > t)
        keep = hit if cover else ~hit
        if not keep.any():
            return None
        old_lo, old_hi = int(self.start[o]), int(self.start[o] + a.D[self.active[o]])
        saved_L, saved_LP = self.L.copy(), self.LP.copy()
        self._apply(np.array([o]), -1.0)
        self._residual()
        x, cost = self._respond(vr[keep], vs[keep], np.ones(self.T), a.special[vr[keep]])
        b = int(np.argmin(cost))
        new_r, new_s = int(vr[keep][b]), int(vs[keep][b])
        # the offers around the old and the new place answer (two Gauss-Seidel passes)
        lo, hi = min(old_lo, new_s), max(old_hi, new_s + int(a.D[new_r]))
        D = a.D[self.active]
        near = np.flatnonzero((self.start < hi) & (self.start + D > lo) & (self.flex > 1))
        near = near[near != o]
        if len(near) > self.forced_near:
            near = self.rng.choice(near, size=self.forced_near, replace=False)
        group = np.concatenate([[o], near]).astype(np.int64)
        saved = (self.active[group].copy(), self.start[group].copy(), [self.x[self.rows_of[g]].copy() for g in group])
        self.active[o], self.start[o] = new_r, new_s
        self.x[new_r] = x[b]
        self._apply(np.array([o]), 1.0)
        if self.p.rows[new_r].special:
            self._exact(np.array([o]))
        for _ in range(self.forced_passes):
            for g in self.rng.permutation(near):
                self._step(np.array([g]))
        value = self.true_objective()
        if value < current - 1e-9 * max(1.0, abs(current)):
            return value
        self.active[group], self.start[group] = saved[0], saved[1]
        for g, xs in zip(group, saved[2]):
            self.x[self.rows_of[g]] = xs
        self.L, self.LP = saved_L, saved_LP
        return None

    def _snapshot(self):
        return self.active.copy(), self.start.copy(), self.x.copy(), self.L.copy(), self.LP.copy()

    def _restore(self, snap) -> None:
        self.active, self.start, self.x, self.L, self.LP = (v.copy() for v in snap)


def _argmin_by_group(values: np.ndarray, group: np.ndarray, n: int) -> np.ndarray:
    """Index of the smallest value in each group 0..n-1 (ties: the first index)."""
    order = np.lexsort((np.arange(len(values)), values, group))
    g = group[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = g[1:] != g[:-1]
    out = np.empty(n, dtype=np.int64)
    out[g[first]] = order[first]
    return out


def plan_heuristic(problem: Problem, *, seed: int = 0, max_sweeps: int = 20, time_limit: Optional[float] = None,
                   batch: Optional[int] = None, joint: Optional[bool] = None) -> tuple[Assignment, SolverReport]:
    """Plan with the heuristic (see module doc).

    ``batch``: offers per step (default 1 up to 400 offers, n/128 above); ``joint``: force or
    forbid choosing starts and energies together (default: by size, :data:`JOINT_BUDGET`);
    ``max_sweeps``: per phase (smoothed, exact); a phase also ends after two sweeps without a
    relative improvement of 1e-4.
    """
    t0 = time.perf_counter()
    if not problem.offers:
        return Assignment([], [], []), SolverReport("heuristic", "feasible", time.perf_counter() - t0,
                                                      objective=problem.terms.evaluate(np.zeros(problem.length)),
                                                      time_limit=time_limit)
    h = _Heuristic(problem, seed, batch, joint)
    status, value = h.run(max_sweeps, time_limit, t0)
    rows = h.active.tolist()
    starts = (h.start + problem.start).tolist()
    energies = [h.x[r, : problem.rows[r].n_slices].copy() for r in rows]
    detail = f"{h.sweeps} sweeps, batch {h.batch}, {'joint start+energy' if h.joint else 'start then energy'}"
    report = SolverReport("heuristic", status, time.perf_counter() - t0, objective=value, time_limit=time_limit,
                          detail=detail)
    return Assignment(rows, starts, energies), report
