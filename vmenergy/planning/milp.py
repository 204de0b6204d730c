"""The exact planner: the whole portfolio as one MILP (PuLP; HiGHS via highspy, else CBC).

Variables: the formulation of every offer (:mod:`.formulation`, compact by default), a free load variable per
interval, and per objective term the usual linearisation: ``L - target = over - under`` with both
parts >= 0 for a hinge, ``z >= base + L`` for a peak, slack variables above/below capacity limits
(priced at the capacity penalty), and up/down deviation parts for the offers' own prices. The
objective of the model equals :meth:`Terms.evaluate` of the resulting load plus those costs, so
the solver's proven gap is the gap of the reported objective.

The solver may be handed a starting solution (the heuristic's plan): it then never returns a
plan worse than that one and prunes more of the search tree from the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pulp

from .formulation import Choice, OfferVars, add_offer, expr, load_pairs, new_var
from .problem import Problem
from .result import Assignment
from .solver import SolverReport, run

__all__ = ["plan_milp", "build_model", "Model"]


#: Objective coefficients smaller than this are left out of the model (see build).
NEGLIGIBLE = 1e-12

@dataclass(eq=False)
class Model:
    """The PuLP problem plus handles on its variables (for reading and warm-starting)."""

    prob: pulp.LpProblem
    offers: list[OfferVars]
    loads: list[pulp.LpVariable]
    hinges: list[tuple[list, list]] = field(default_factory=list)
    peaks: list[pulp.LpVariable] = field(default_factory=list)
    caps: dict = field(default_factory=dict)
    devs: list[tuple[Choice, int, pulp.LpVariable, pulp.LpVariable, float]] = field(default_factory=list)


def build_model(problem: Problem, *, compact: bool = True) -> Model:
    prob = pulp.LpProblem("vme_plan", pulp.LpMinimize)
    T = problem.length
    per_t: list[list] = [[] for _ in range(T)]
    const_t = np.zeros(T)
    per_pt: dict[tuple[int, int], list] = {}
    const_pt: dict[tuple[int, int], float] = {}
    objective: list = []
    offers: list[OfferVars] = []
    devs = []
    for i, rows in enumerate(problem.rows_of):
        ov = add_offer(prob, problem.rows, rows, i, optional=False, prefix=f"o{i}_", compact=compact)
        offers.append(ov)
        point = int(problem.point_of_offer[i]) if len(problem.point_of_offer) else -1
        for ch in ov.choices:
            for t, pairs, c in load_pairs(problem.rows, ch, problem.start):
                per_t[t].extend(pairs)
                const_t[t] += c
                if point >= 0:
                    per_pt.setdefault((point, t), []).extend(pairs)
                    const_pt[(point, t)] = const_pt.get((point, t), 0.0) + c
            row = problem.rows[ch.row]
            if row.priced:  # deviation from the reference, priced up/down per slice
                for q, (pairs, c) in enumerate(ch.energy):
                    up, down = float(row.up[q]), float(row.down[q])
                    if up == 0.0 and down == 0.0:
                        continue
                    dp = new_var(prob, f"o{i}_dp{ch.row}_{ch.start}_{q}", 0)
                    dn = new_var(prob, f"o{i}_dn{ch.row}_{ch.start}_{q}", 0)
                    ref = float(row.ref[q])
                    ypair = [(ch.y, -ref)] if ch.y is not None else []
                    rhs = ref - c if ch.y is None else -c
                    prob.addConstraint(pulp.LpConstraint(expr(pairs + ypair + [(dp, -1.0), (dn, 1.0)]),
                                                         pulp.LpConstraintEQ, rhs=rhs))
                    objective += [(dp, up), (dn, down)]
                    devs.append((ch, q, dp, dn, ref))
    loads = []
    for t in range(T):
        L = new_var(prob, f"L{t}")
        prob.addConstraint(pulp.LpConstraint(expr(per_t[t] + [(L, -1.0)]), pulp.LpConstraintEQ, rhs=-const_t[t]))
        loads.append(L)
    model = Model(prob, offers, loads, devs=devs)
    terms = problem.terms
    objective += [(loads[t], float(terms.price[t])) for t in range(T) if terms.price[t] != 0.0]
    for h_i, h in enumerate(terms.hinges):
        os_, us_ = [], []
        for t in range(T):
            o = new_var(prob, f"h{h_i}o{t}", 0)
            u = new_var(prob, f"h{h_i}u{t}", 0)
            prob.addConstraint(pulp.LpConstraint(expr([(loads[t], 1.0), (o, -1.0), (u, 1.0)]), pulp.LpConstraintEQ,
                                                 rhs=float(h.target[t])))
            objective += [(o, float(h.over[t])), (u, float(h.under[t]))]
            os_.append(o)
            us_.append(u)
        model.hinges.append((os_, us_))
    for p_i, p in enumerate(terms.peaks):
        z = new_var(prob, f"peak{p_i}")
        for t in range(T):
            prob.addConstraint(pulp.LpConstraint(expr([(z, 1.0), (loads[t], -1.0)]), pulp.LpConstraintGE,
                                                 rhs=float(p.base[t])))
        objective.append((z, p.weight))
        model.peaks.append(z)
    pen = problem.capacity_penalty
    for (point, t), pairs in per_pt.items():
        up, lo = problem.cap_upper[point, t], problem.cap_lower[point, t]
        c = const_pt.get((point, t), 0.0)
        v = w = None
        if np.isfinite(up):
            v = new_var(prob, f"cu{point}_{t}", 0)
            prob.addConstraint(pulp.LpConstraint(expr(pairs + [(v, -1.0)]), pulp.LpConstraintLE, rhs=float(up) - c))
            objective.append((v, pen))
        if np.isfinite(lo):
            w = new_var(prob, f"cl{point}_{t}", 0)
            prob.addConstraint(pulp.LpConstraint(expr(pairs + [(w, 1.0)]), pulp.LpConstraintGE, rhs=float(lo) - c))
            objective.append((w, pen))
        model.caps[(point, t)] = (v, w)
    # a coefficient far below the solver's tolerances is noise to it, and one that is denormal
    # (5e-324) breaks its cost scaling (it then proved a worse plan "optimal"): drop them
    prob.setObjective(expr([(v, c) for v, c in objective if abs(c) >= NEGLIGIBLE]))
    return model


def warm_start(problem: Problem, model: Model, asg: Assignment) -> dict:
    """Values of every model variable for a given (feasible) assignment."""
    start: dict = {}
    for i, ov in enumerate(model.offers):
        r, s, x = asg.row[i], int(asg.start[i]), np.asarray(asg.energy[i], dtype=float)
        for ch in ov.choices:
            on = ch.row == r and ch.start == s
            if ch.y is not None:
                start[ch.y] = 1.0 if on else 0.0
            for q, (pairs, _c) in enumerate(ch.energy):
                if not pairs or (len(pairs) == 1 and pairs[0][0] is ch.y):
                    continue  # fixed energy: nothing but y
                if len(pairs) == 1 and pairs[0][1] == 1.0:
                    start[pairs[0][0]] = float(x[q]) if on else 0.0
                else:  # discrete values: one binary per allowed value
                    vals = np.array([c for _, c in pairs])
                    pick = int(np.argmin(np.abs(vals - x[q]))) if on else -1
                    for m, (z, _) in enumerate(pairs):
                        start[z] = 1.0 if m == pick else 0.0
    load = problem.load_of(asg.row, asg.start, asg.energy)
    for t, L in enumerate(model.loads):
        start[L] = float(load[t])
    for h, (os_, us_) in zip(problem.terms.hinges, model.hinges):
        d = load - h.target
        for t in range(problem.length):
            start[os_[t]] = max(float(d[t]), 0.0)
            start[us_[t]] = max(-float(d[t]), 0.0)
    for p, z in zip(problem.terms.peaks, model.peaks):
        start[z] = float(np.max(p.base + load))
    if model.caps:
        pl = problem.point_loads(asg.row, asg.start, asg.energy)
        for (point, t), (v, w) in model.caps.items():
            if v is not None:
                start[v] = max(float(pl[point, t] - problem.cap_upper[point, t]), 0.0)
            if w is not None:
                start[w] = max(float(problem.cap_lower[point, t] - pl[point, t]), 0.0)
    chosen = {i: (asg.row[i], int(asg.start[i])) for i in range(len(model.offers))}
    for ch, q, dp, dn, ref in model.devs:
        i = problem.rows[ch.row].offer
        if chosen[i] == (ch.row, ch.start):
            d = float(asg.energy[i][q]) - ref
            start[dp], start[dn] = max(d, 0.0), max(-d, 0.0)
        else:
            start[dp] = start[dn] = 0.0
    return start


def plan_milp(problem: Problem, *, solver: str = "auto", time_limit: Optional[float] = 60.0,
              gap: Optional[float] = 1e-3, threads: Optional[int] = None,
              start: Optional[Assignment] = None, compact: bool = True) -> tuple[Optional[Assignment], SolverReport]:
    """Solve the planning MILP, optionally from a starting assignment; the assignment returned is
    None when the solver found no solution. ``compact``: see :func:`.formulation.add_offer`
    (on the 200-offer benchmark it proved optimality in 26 s where the full hull formulation
    stopped at 60 s with a 0.4 % gap)."""
    model = build_model(problem, compact=compact)
    values = warm_start(problem, model, start) if start is not None else None
    report = run(model.prob, solver=solver, time_limit=time_limit, gap=gap, threads=threads, start=values)
    if not report.has_solution:
        return None, report
    rows, starts, energies = [], [], []
    for ov in model.offers:
        ch = ov.chosen()
        rows.append(ch.row)
        starts.append(ch.start)
        x = ch.energies()
        y = ch.value()
        if ch.y is not None and 1e-9 < y < 1.0 - 1e-9:
            x = x / y  # undo a binary a hair below 1
        energies.append(x)
    return Assignment(rows, starts, energies), report
