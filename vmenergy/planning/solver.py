"""Running a PuLP model on the best solver at hand, and reporting honestly what it proved.

HiGHS (through ``highspy``, PuLP's ``HiGHS`` class) is preferred: it is faster than CBC on these
models and tells us the proven bound. CBC (bundled with PuLP) is the fallback when ``highspy`` is
missing. ``HiGHS_CMD`` is never used: it needs a ``highs`` binary that ``highspy`` does not ship.

The report carries what a caller needs to trust a plan: solver, status, wall time, objective,
best bound and proven relative gap (None where the solver does not say), and the limits used.
Timing uses ``time.perf_counter`` only to report how long the solver ran.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Optional

import pulp

__all__ = ["SolverReport", "available_solvers", "make_solver", "run"]


@dataclass(frozen=True)
class SolverReport:
    """How a plan or clearing was computed.

    ``status``: ``optimal`` (proven optimal within ``gap_limit``), ``time_limit`` (stopped by the
    time limit with a solution), ``feasible`` (heuristic result; no optimality claim),
    ``infeasible`` or ``no_solution``. ``gap`` is the proven relative gap |objective - bound| /
    |objective| as the solver reports it (None when unknown, e.g. CBC stopped on time or any
    heuristic). ``objective`` is in the units of the objective (EUR, kWh).
    """

    solver: str
    status: str
    seconds: float
    objective: Optional[float] = None
    bound: Optional[float] = None
    gap: Optional[float] = None
    time_limit: Optional[float] = None
    gap_limit: Optional[float] = None
    detail: str = ""

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "time_limit", "feasible")


def _highs_available() -> bool:
    try:
        import highspy  # noqa: F401
    except ImportError:
        return False
    return bool(pulp.HiGHS().available())


def available_solvers() -> list[str]:
    """Names usable as ``solver=``: ``highs`` when highspy is importable, ``cbc`` always."""
    out = ["highs"] if _highs_available() else []
    return out + ["cbc"]


class _WarmHiGHS(pulp.HiGHS):
    """PuLP's highspy interface, handing HiGHS a starting solution (PuLP's own ``warmStart``
    exists only for the command-line HiGHS)."""

    def __init__(self, start: Optional[dict] = None, **kw) -> None:
        super().__init__(**kw)
        self._start = start

    def callSolver(self, lp) -> None:  # noqa: N802 (PuLP's name)
        if self._start:
            import highspy

            values = [0.0] * lp.solverModel.getNumCol()
            for v in lp.variables():
                values[v.index] = float(self._start.get(v, 0.0))
            sol = highspy.HighsSolution()
            sol.col_value = values
            sol.value_valid = True
            lp.solverModel.setSolution(sol)
        super().callSolver(lp)


def make_solver(name: str, *, time_limit: Optional[float], gap: Optional[float], threads: Optional[int] = None,
                start: Optional[dict] = None):
    """A configured PuLP solver object; ``name`` is ``auto``, ``highs`` or ``cbc``. ``start``
    (variable -> value) is a feasible solution the solver starts from."""
    if name == "auto":
        name = available_solvers()[0]
    if name == "highs":
        if not _highs_available():
            raise ValueError("solver 'highs' needs the highspy package (pip install highspy)")
        kw = {"msg": False, "timeLimit": time_limit, "gapRel": gap}
        if threads is not None:
            kw["threads"] = threads
        return "highs", _WarmHiGHS(start=start, **kw)
    if name == "cbc":
        kw = {"msg": 0, "timeLimit": time_limit, "gapRel": gap}
        if start:
            for v, val in start.items():
                v.setInitialValue(val)
            kw["warmStart"] = True
        if threads is not None:
            kw["threads"] = threads
        with warnings.catch_warnings():  # PuLP 3.x deprecates the bundled CBC; it still works
            warnings.simplefilter("ignore", DeprecationWarning)
            return "cbc", pulp.PULP_CBC_CMD(**kw)
    raise ValueError(f"unknown MILP solver {name!r} (use auto, highs or cbc)")


def run(prob: pulp.LpProblem, *, solver: str = "auto", time_limit: Optional[float] = 60.0,
        gap: Optional[float] = 1e-3, threads: Optional[int] = None, start: Optional[dict] = None) -> SolverReport:
    """Solve ``prob`` in place and report (see :class:`SolverReport`)."""
    name, slv = make_solver(solver, time_limit=time_limit, gap=gap, threads=threads, start=start)
    t0 = time.perf_counter()
    prob.solve(slv)
    seconds = time.perf_counter() - t0
    has_int = any(v.cat == pulp.LpInteger for v in prob.variables())
    sign = -1.0 if prob.sense == pulp.LpMaximize else 1.0
    obj = pulp.value(prob.objective)
    const = float(prob.objective.constant) if prob.objective is not None else 0.0
    bound: Optional[float] = None
    rel_gap: Optional[float] = None
    if name == "highs":
        import highspy

        model = prob.solverModel
        ms = model.getModelStatus()
        info = model.getInfo()
        if ms == highspy.HighsModelStatus.kOptimal:
            status = "optimal"
        elif ms in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
            status = "infeasible"
        elif prob.sol_status in (pulp.LpSolutionIntegerFeasible, pulp.LpSolutionOptimal) and info.primal_solution_status == 2:
            status = "time_limit" if ms == highspy.HighsModelStatus.kTimeLimit else "feasible"
        else:
            status = "no_solution"
        if has_int:
            if status in ("optimal", "time_limit", "feasible"):
                bound = sign * info.mip_dual_bound + const
                rel_gap = float(info.mip_gap)
        elif status == "optimal":
            bound, rel_gap = obj, 0.0
    else:
        if prob.status == pulp.LpStatusInfeasible:
            status = "infeasible"
        elif prob.sol_status == pulp.LpSolutionOptimal:
            status = "optimal"
            rel_gap = 0.0 if not has_int else None  # CBC's bound is not reported through PuLP
        elif prob.sol_status == pulp.LpSolutionIntegerFeasible:
            status = "time_limit"
        else:
            status = "no_solution"
    if status not in ("optimal", "time_limit", "feasible"):
        obj = None
    return SolverReport(solver=name, status=status, seconds=seconds, objective=None if obj is None else float(obj),
                        bound=bound, gap=rel_gap, time_limit=time_limit, gap_limit=gap)
