"""Planning: scheduling a portfolio of flex-offers against an objective (what an aggregator does).

Pure core: no I/O, no clock; time comes in as interval numbers.

>>> from vmenergy.planning import schedule_offers, Objective
>>> result = schedule_offers(offers, Objective.target(profile, start=t0))   # doctest: +SKIP
>>> result.schedules[0], result.objective, result.report.solver, result.report.gap  # doctest: +SKIP

Two solvers behind one interface: an exact MILP (PuLP with HiGHS, or CBC) and a vectorised
heuristic for large portfolios. :func:`trade_directly` applies GOFLEX's direct trading rule
(merit order, only profitable offers). See ``docs/planning.md``.
"""

from .errors import PlanningError
from .objective import CapacityLimit, Objective
from .result import PlanResult
from .scheduling import MILP_AUTO_LIMIT, SOLVERS, schedule_offers
from .solver import SolverReport, available_solvers
from .trading import TradingResult, trade_directly

__all__ = [
    "schedule_offers",
    "trade_directly",
    "TradingResult",
    "Objective",
    "CapacityLimit",
    "PlanResult",
    "SolverReport",
    "PlanningError",
    "available_solvers",
    "SOLVERS",
    "MILP_AUTO_LIMIT",
]
