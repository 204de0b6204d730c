"""The flex-offer model: the one representation of flexibility every VME node speaks."""

from .errors import DOCUMENT, FlexOfferError
from .feasibility import Violation
from .model import (
    MAX_PROFILES,
    MAX_SLICES,
    TOLERANCE,
    TRANSITIONS,
    Baseline,
    FlexOffer,
    Polytope,
    Prices,
    Profile,
    Slice,
    SlicePrice,
    State,
    TotalEnergy,
)
from .schedule import Schedule
from .offerset import FlexOfferSet, ScheduleSet, CheckResult

__all__ = [
    "DOCUMENT",
    "FlexOfferError",
    "Violation",
    "MAX_PROFILES",
    "MAX_SLICES",
    "TOLERANCE",
    "TRANSITIONS",
    "Baseline",
    "FlexOffer",
    "Polytope",
    "Prices",
    "Profile",
    "Slice",
    "SlicePrice",
    "State",
    "TotalEnergy",
    "Schedule",
    "FlexOfferSet",
    "ScheduleSet",
    "CheckResult",
]
