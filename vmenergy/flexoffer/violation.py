"""One violated constraint of a schedule, with its reason.

Feasibility answers with a list of violations (rather than a first-error exception) so that an
aggregator can reply with the whole picture and tests can pin the exact constraint.
``Violation.field`` uses the schedule's field names: ``start``, ``profile``, ``energy`` (wrong
length), ``energy[i]``, ``total``, ``polytope.A[j]``, ``offer_id``, ``resolution``.

Tolerance: every energy comparison allows :data:`~vmenergy.flexoffer.limits.TOLERANCE` kWh
(polytope rows: that times the row's 1-norm), so float rounding from solvers and proportional
disaggregation never turns a feasible schedule infeasible. The checks themselves are
:meth:`Profile.check_energy <vmenergy.flexoffer.parts.Profile.check_energy>` and
:meth:`FlexOffer.check <vmenergy.flexoffer.model.FlexOffer.check>`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Violation"]


@dataclass(frozen=True, slots=True)
class Violation:
    """One violated constraint: ``field`` of the schedule and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"
