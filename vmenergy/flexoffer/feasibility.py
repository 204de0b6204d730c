"""Feasibility of a schedule against an offer: every violated constraint, each with a reason.

A list of violations (rather than a first-error exception) lets an aggregator reply with the whole
picture and lets tests pin the exact constraint. ``Violation.field`` uses the schedule's field
names: ``start``, ``profile``, ``energy`` (wrong length), ``energy[i]``, ``total``,
``polytope.A[j]``, ``offer_id``, ``resolution``.

Tolerance: every energy comparison allows :data:`~vmenergy.flexoffer.model.TOLERANCE` kWh
(polytope rows: that times the row's 1-norm), so float rounding from solvers and proportional
disaggregation never turns a feasible schedule infeasible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from .model import TOLERANCE, Profile

if TYPE_CHECKING:  # pragma: no cover
    from .model import FlexOffer
    from .schedule import Schedule

__all__ = ["Violation", "check_schedule", "check_start", "check_energy", "polytope_is_satisfiable"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One violated constraint: ``field`` of the schedule and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def check_schedule(offer: "FlexOffer", schedule: "Schedule", now: int | None = None) -> list[Violation]:
    out: list[Violation] = []
    if schedule.offer_id != offer.id:
        out.append(Violation("offer_id", f"schedule is for {schedule.offer_id!r}, not {offer.id!r}"))
    if schedule.resolution != offer.resolution:
        out.append(Violation("resolution", f"{schedule.resolution} s differs from the offer's {offer.resolution} s"))
        return out  # start intervals are not comparable
    if schedule.profile >= len(offer.profiles):
        out.append(Violation("profile", f"no profile {schedule.profile} (offer has {len(offer.profiles)})"))
        return out
    out += check_start(offer, schedule.start, schedule.profile, now)
    out += check_energy(offer.profiles[schedule.profile], schedule.energy)
    return out


def check_start(offer: "FlexOffer", start: int, profile: int, now: int | None, *, strict: bool = True) -> list[Violation]:
    """Start-window check. With ``strict=False`` a window side that depends on an unknown
    ``now`` is not checked (used for an implicit offer's own baseline)."""
    lo = offer.earliest_start(now, profile)
    hi = offer.latest_start(now, profile)
    out = []
    if strict and (lo is None or hi is None):
        out.append(Violation("start", "the offer has implicit time flexibility; checking its start needs now"))
    if lo is not None and start < lo:
        out.append(Violation("start", f"{offer._time(start)} is before the earliest start {offer._time(lo)}"))
    if hi is not None and start > hi:
        out.append(Violation("start", f"{offer._time(start)} is after the latest start {offer._time(hi)}"))
    return out


def check_energy(profile: Profile, energy: Sequence[float]) -> list[Violation]:
    """Energy checks of one profile: length, slice bounds, discrete values, total, polytope."""
    n = len(profile.slices)
    if len(energy) != n:
        return [Violation("energy", f"has {len(energy)} values; the profile has {n} slices")]
    out = []
    for i, (e, s) in enumerate(zip(energy, profile.slices)):
        if e < s.min - TOLERANCE:
            out.append(Violation(f"energy[{i}]", f"{e:g} kWh is below the slice min {s.min:g} kWh"))
        elif e > s.max + TOLERANCE:
            out.append(Violation(f"energy[{i}]", f"{e:g} kWh is above the slice max {s.max:g} kWh"))
        elif s.values is not None and not any(abs(e - v) <= TOLERANCE for v in s.values):
            allowed = ", ".join(f"{v:g}" for v in s.values)
            out.append(Violation(f"energy[{i}]", f"{e:g} kWh is not one of the allowed values ({allowed})"))
    t = profile.total
    if t is not None:
        total = math.fsum(energy)
        if t.min is not None and total < t.min - TOLERANCE:
            out.append(Violation("total", f"{total:g} kWh is below the total min {t.min:g} kWh"))
        if t.max is not None and total > t.max + TOLERANCE:
            out.append(Violation("total", f"{total:g} kWh is above the total max {t.max:g} kWh"))
    p = profile.polytope
    if p is not None:
        for j, (row, bj) in enumerate(zip(p.A, p.b)):
            lhs = math.fsum(a * e for a, e in zip(row, energy))
            if lhs > bj + p.row_tolerance(j):
                out.append(Violation(f"polytope.A[{j}]", f"A[{j}]·x = {lhs:g} exceeds b[{j}] = {bj:g}"))
    return out


def polytope_is_satisfiable(profile: Profile) -> bool:
    """True if some energy vector meets the slice bounds, the total and ``A·x <= b``.

    Solved as an LP with SciPy's HiGHS (discrete slice values are relaxed to their [min, max]
    range, so this rejects only offers that are certainly empty).
    """
    import numpy as np
    from scipy.optimize import linprog

    assert profile.polytope is not None
    n = len(profile.slices)
    a_ub = [list(r) for r in profile.polytope.A]
    b_ub = [b + profile.polytope.row_tolerance(j) for j, b in enumerate(profile.polytope.b)]
    if profile.total is not None:
        if profile.total.max is not None:
            a_ub.append([1.0] * n)
            b_ub.append(profile.total.max + TOLERANCE)
        if profile.total.min is not None:
            a_ub.append([-1.0] * n)
            b_ub.append(-profile.total.min + TOLERANCE)
    res = linprog(
        c=np.zeros(n),
        A_ub=np.asarray(a_ub, dtype=float),
        b_ub=np.asarray(b_ub, dtype=float),
        bounds=[(s.min, s.max) for s in profile.slices],
        method="highs",
    )
    return res.status == 0
