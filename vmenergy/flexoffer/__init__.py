"""The flex-offer model: the one representation of flexibility every VME node speaks."""

from .errors import DOCUMENT, FlexOfferError
from .limits import MAX_PROFILES, MAX_SLICES, TOLERANCE
from .model import TRANSITIONS, FlexOffer, State
from .parts import Baseline, Polytope, Prices, Profile, Slice, SlicePrice, TotalEnergy
from .schedule import Schedule
from .violation import Violation
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
