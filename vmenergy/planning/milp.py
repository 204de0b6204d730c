"""The exact planner: the whole portfolio as one MILP (PuLP; HiGHS via highspy, else CBC).

Variables: the hull formulation of every offer (:mod:`.formulation`), a free load variable per
interval, and per objective term the usual linearisation: ``L - target = over - under`` with both
parts >= 0 for a hinge, ``z >= base + L`` for a peak, slack variables above/below capacity limits
(priced at the capacity penalty), and up/down deviation parts for the offers' own prices. The
objective of the model equals :meth:`Terms.evaluate` of the resulting load plus those costs, so
the solver's proven gap is the gap of the reported objective.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pulp

from .formulation import OfferVars, add_offer, expr, load_pairs
from .problem import Problem
from .result import Assignment
from .solver import SolverReport, run

__all__ = ["plan_milp", "build_model"]


def build_model(problem: Problem) -> tuple[pulp.LpProblem, list[OfferVars]]:
    prob = pulp.LpProblem("vme_plan", pulp.LpMinimize)
    T = problem.length
    per_t: list[list] = [[] for _ in range(T)]
    const_t = np.zeros(T)
    per_pt: dict[tuple[int, int], list] = {}
    const_pt: dict[tuple[int, int], float] = {}
    objective: list = []
    offers: list[OfferVars] = []
    for i, rows in enumerate(problem.rows_of):
        ov = add_offer(prob, problem.rows, rows, i, optional=False, prefix=f"o{i}_")
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
                    dp = pulp.LpVariable(f"o{i}_dp{ch.row}_{ch.start}_{q}", 0)
                    dn = pulp.LpVariable(f"o{i}_dn{ch.row}_{ch.start}_{q}", 0)
                    ref = float(row.ref[q])
                    ypair = [(ch.y, -ref)] if ch.y is not None else []
                    rhs = ref - c if ch.y is None else -c
                    prob.addConstraint(pulp.LpConstraint(expr(pairs + ypair + [(dp, -1.0), (dn, 1.0)]),
                                                         pulp.LpConstraintEQ, rhs=rhs))
                    objective += [(dp, up), (dn, down)]
    loads = []
    for t in range(T):
        L = pulp.LpVariable(f"L{t}")
        prob.addConstraint(pulp.LpConstraint(expr(per_t[t] + [(L, -1.0)]), pulp.LpConstraintEQ, rhs=-const_t[t]))
        loads.append(L)
    terms = problem.terms
    objective += [(loads[t], float(terms.price[t])) for t in range(T) if terms.price[t] != 0.0]
    for h_i, h in enumerate(terms.hinges):
        for t in range(T):
            o = pulp.LpVariable(f"h{h_i}o{t}", 0)
            u = pulp.LpVariable(f"h{h_i}u{t}", 0)
            prob.addConstraint(pulp.LpConstraint(expr([(loads[t], 1.0), (o, -1.0), (u, 1.0)]), pulp.LpConstraintEQ,
                                                 rhs=float(h.target[t])))
            objective += [(o, float(h.over[t])), (u, float(h.under[t]))]
    for p_i, p in enumerate(terms.peaks):
        z = pulp.LpVariable(f"peak{p_i}")
        for t in range(T):
            prob.addConstraint(pulp.LpConstraint(expr([(z, 1.0), (loads[t], -1.0)]), pulp.LpConstraintGE,
                                                 rhs=float(p.base[t])))
        objective.append((z, p.weight))
    pen = problem.capacity_penalty
    for (point, t), pairs in per_pt.items():
        up, lo = problem.cap_upper[point, t], problem.cap_lower[point, t]
        c = const_pt.get((point, t), 0.0)
        if np.isfinite(up):
            v = pulp.LpVariable(f"cu{point}_{t}", 0)
            prob.addConstraint(pulp.LpConstraint(expr(pairs + [(v, -1.0)]), pulp.LpConstraintLE, rhs=float(up) - c))
            objective.append((v, pen))
        if np.isfinite(lo):
            w = pulp.LpVariable(f"cl{point}_{t}", 0)
            prob.addConstraint(pulp.LpConstraint(expr(pairs + [(w, 1.0)]), pulp.LpConstraintGE, rhs=float(lo) - c))
            objective.append((w, pen))
    prob.setObjective(expr(objective))
    return prob, offers


def plan_milp(problem: Problem, *, solver: str = "auto", time_limit: Optional[float] = 60.0,
              gap: Optional[float] = 1e-3, threads: Optional[int] = None) -> tuple[Optional[Assignment], SolverReport]:
    """Solve the planning MILP; the assignment is None when the solver found no solution."""
    prob, offers = build_model(problem)
    report = run(prob, solver=solver, time_limit=time_limit, gap=gap, threads=threads)
    if not report.has_solution:
        return None, report
    rows, starts, energies = [], [], []
    for ov in offers:
        ch = ov.chosen()
        rows.append(ch.row)
        starts.append(ch.start)
        x = ch.energies()
        if ch.y is not None and ch.value() > 1e-9:
            x = x / ch.value() if ch.value() < 1.0 - 1e-9 else x  # undo y slightly below 1
        energies.append(x)
    return Assignment(rows, starts, energies), report
