"""The error type of planning: bad input named by its field path, as everywhere in the core.

A :class:`PlanningError` is a :class:`~vmenergy.flexoffer.FlexOfferError`, so an agent that
already catches the core's single error type also catches planning input problems, and the
message carries the path (``offers[3].start_after``, ``objective.values``) a person can act on.
"""

from __future__ import annotations

from vmenergy.flexoffer import FlexOfferError
from vmenergy.validation import Checks

__all__ = ["PlanningError", "check"]


class PlanningError(FlexOfferError):
    """Invalid planning input (offers, objective, horizon, limits): ``path`` and ``reason``."""


#: The field checks of planning input (objectives, limits, "now").
check = Checks(PlanningError)
