"""What planning returns: one schedule per offer plus an honest account of how it was found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from vmenergy.flexoffer import Schedule

from .solver import SolverReport

__all__ = ["Assignment", "PlanResult"]


@dataclass(eq=False)
class Assignment:
    """Solver output before it becomes schedules: per offer the row, absolute start, energies."""

    row: list[int]
    start: list[int]
    energy: list[np.ndarray]


@dataclass(eq=False)
class PlanResult:
    """The plan: ``schedules[i]`` is the schedule of ``offers[i]`` (same order as given).

    ``objective`` is the objective value of the returned schedules (objective terms, plus the
    offers' deviation prices when they were included, plus ``capacity_penalty`` times every kWh
    over a capacity limit), computed by the same formula for every solver so results compare.
    ``load`` is the flexible load per interval over ``horizon`` (start, end exclusive);
    ``capacity_violation`` the kWh over a limit summed over points and intervals (0 when every
    limit holds); ``report`` says which solver ran, how long, and what it proved.
    """

    schedules: list[Schedule]
    objective: float
    report: SolverReport
    horizon: tuple[int, int]
    load: np.ndarray
    capacity_violation: float = 0.0
    offer_cost: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def solver(self) -> str:
        return self.report.solver

    @property
    def seconds(self) -> float:
        return self.report.seconds

    @property
    def gap(self) -> Optional[float]:
        return self.report.gap

    @property
    def by_id(self) -> dict[str, Schedule]:
        return {s.offer_id: s for s in self.schedules}
