"""``schedule_offers``: the one entry point of planning, and the guarantee that goes with it.

Whatever solver ran, every schedule handed back has been checked with :meth:`FlexOffer.check`
(with ``now`` for implicit offers). A schedule that fails only by solver round-off is projected
onto the offer's feasible set by a tiny exact MILP and checked again; anything still infeasible
is a bug and raises instead of leaving the planner.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Mapping, Optional, Sequence

import numpy as np

from vmenergy.flexoffer import FlexOffer, Schedule

from .energy import project
from .errors import PlanningError
from .heuristic import plan_heuristic
from .milp import plan_milp
from .objective import CapacityLimit, Objective
from .problem import Problem, prepare
from .result import Assignment, PlanResult
from .solver import SolverReport, available_solvers

__all__ = ["schedule_offers", "SOLVERS", "MILP_AUTO_LIMIT"]

#: Accepted values of ``solver``.
SOLVERS = ("auto", "milp", "highs", "cbc", "heuristic")
#: ``solver="auto"`` uses the MILP while the model has at most this many energy variables.
MILP_AUTO_LIMIT = 20_000


def schedule_offers(
    offers: Sequence[FlexOffer],
    objective: Objective,
    *,
    solver: str = "auto",
    now: Optional[int] = None,
    horizon: Optional[tuple[int, int]] = None,
    capacity: Sequence[CapacityLimit] = (),
    congestion_points: Optional[Mapping[str, str]] = None,
    include_offer_prices: bool = False,
    capacity_penalty: float = 1000.0,
    time_limit: Optional[float] = None,
    gap: float = 1e-3,
    threads: Optional[int] = None,
    seed: int = 0,
    warm_start: bool = True,
) -> PlanResult:
    """One feasible schedule per offer, chosen to minimise ``objective``.

    - ``offers``: any list of :class:`FlexOffer` (aggregates included), one resolution, unique ids.
    - ``solver``: ``milp`` (HiGHS when highspy is importable, else CBC), ``highs``, ``cbc``,
      ``heuristic``, or ``auto`` (the MILP for models up to :data:`MILP_AUTO_LIMIT` energy
      variables, the heuristic above).
    - ``now``: current interval; needed for offers with implicit time flexibility. When given,
      no schedule starts before it.
    - ``horizon``: (first, end) intervals; default the span of the objective's series, or what
      the offers can reach. Every schedule lies inside it.
    - ``capacity`` + ``congestion_points`` (offer id -> point name): limits on the net load of
      the offers behind each point; exceeding one costs ``capacity_penalty`` per kWh (so a plan
      always exists) and is reported in ``capacity_violation`` and ``warnings``.
    - ``include_offer_prices``: add each offer's own deviation prices (``up``/``down`` EUR per
      kWh away from its baseline) to the objective.
    - ``time_limit`` (s): MILP default 60 s; the heuristic runs to convergence unless given.
    - ``gap``: relative MILP gap at which the solver may stop (default 0.1 %).
    - ``warm_start``: run the heuristic first and hand its plan to the MILP as a starting
      solution (the MILP result is then never worse than the heuristic's).
    - ``seed``: the heuristic's random generator seed (its results are deterministic per seed).
    """
    if solver not in SOLVERS:
        raise PlanningError("solver", f"unknown solver {solver!r} (one of {', '.join(SOLVERS)})")
    if time_limit is not None and not (isinstance(time_limit, (int, float)) and time_limit > 0):
        raise PlanningError("time_limit", "must be a number of seconds > 0")
    if not (isinstance(gap, (int, float)) and 0 <= gap < 1):
        raise PlanningError("gap", "must be a fraction in [0, 1)")
    problem = prepare(offers, objective, now=now, horizon=horizon, capacity=capacity,
                      congestion_points=congestion_points, include_offer_prices=include_offer_prices,
                      capacity_penalty=capacity_penalty)
    warnings: list[str] = []
    if solver == "auto":
        size = sum(r.n_starts * r.n_slices for r in problem.rows)
        solver = "milp" if size <= MILP_AUTO_LIMIT else "heuristic"
    assignment: Optional[Assignment]
    if solver == "heuristic":
        assignment, report = plan_heuristic(problem, seed=seed, time_limit=time_limit)
    else:
        name = "auto" if solver == "milp" else solver
        if name == "highs" and "highs" not in available_solvers():
            raise PlanningError("solver", "highs needs the highspy package; use milp or cbc")
        limit = 60.0 if time_limit is None else float(time_limit)
        start = None
        pre = ""
        h_seconds = 0.0
        if warm_start:
            start, h_report = plan_heuristic(problem, seed=seed, time_limit=limit / 4)
            h_seconds = h_report.seconds
            pre = f"warm start from the heuristic (objective {h_report.objective:.6g}, {h_seconds:.2f} s); "
        assignment, report = plan_milp(problem, solver=name, time_limit=limit, gap=gap, threads=threads, start=start)
        report = replace(report, seconds=report.seconds + h_seconds, detail=pre + report.detail)
        if assignment is None and start is not None:
            warnings.append(f"the MILP ({report.solver}) ended with status {report.status} and no solution; "
                            "the schedules come from the heuristic")
            assignment = start
        elif assignment is None:
            warnings.append(f"the MILP ({report.solver}) ended with status {report.status} and no solution; "
                            "the schedules come from the heuristic")
            assignment, h_report = plan_heuristic(problem, seed=seed)
            report = SolverReport(h_report.solver, h_report.status, report.seconds + h_report.seconds,
                                  objective=h_report.objective, time_limit=limit,
                                  detail=f"MILP {report.solver} {report.status}; {h_report.detail}")
    schedules, assignment = _to_schedules(problem, assignment)
    return _result(problem, assignment, schedules, report, warnings)


def _to_schedules(problem: Problem, asg: Assignment) -> tuple[list[Schedule], Assignment]:
    out: list[Schedule] = []
    energies = []
    for i, fo in enumerate(problem.offers):
        r, start = asg.row[i], int(asg.start[i])
        row = problem.rows[r]
        x = np.asarray(asg.energy[i], dtype=float)
        sched = _schedule(fo, row.profile, start, x)
        if fo.check(sched, problem.now):
            fixed = project(row, x)
            if fixed is not None:
                x = fixed
                sched = _schedule(fo, row.profile, start, x)
            problems = fo.check(sched, problem.now)
            if problems:
                raise RuntimeError(f"planner produced an infeasible schedule for offers[{i}] ({fo.id}): "
                                   + "; ".join(map(str, problems)))
        out.append(sched)
        energies.append(np.asarray(sched.energy))
    return out, Assignment(list(asg.row), [int(s) for s in asg.start], energies)


def _schedule(fo: FlexOffer, profile: int, start: int, x: np.ndarray) -> Schedule:
    return Schedule(offer_id=fo.id, start=start, energy=tuple(float(v) for v in x), profile=profile,
                    resolution=fo.resolution)


def _result(problem: Problem, asg: Assignment, schedules: list[Schedule], report: SolverReport,
            warnings: list[str]) -> PlanResult:
    load = problem.load_of(asg.row, asg.start, asg.energy)
    value = problem.terms.evaluate(load)
    violation = 0.0
    if problem.n_points:
        viol = problem.capacity_violation(problem.point_loads(asg.row, asg.start, asg.energy))
        violation = float(viol.sum())
        value += problem.capacity_penalty * violation
        if violation > 1e-6:
            p, t = np.unravel_index(int(np.argmax(viol)), viol.shape)
            warnings.append(f"capacity limits exceeded by {violation:.6g} kWh in total (worst: point "
                            f"{problem.points[p]!r} at interval {problem.start + int(t)}, {viol[p, t]:.6g} kWh); "
                            "no plan found that respects them")
    offer_cost = math.fsum(problem.rows[r].deviation_cost(x) for r, x in zip(asg.row, asg.energy))
    value += offer_cost
    return PlanResult(schedules=schedules, objective=value, report=report, horizon=(problem.start, problem.end),
                      load=load, capacity_violation=violation, offer_cost=offer_cost, warnings=warnings)
