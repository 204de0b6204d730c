"""The numbers that bound a flex-offer: comparison tolerance and parser limits.

They live apart from the classes so that every part of the model (and the columnar sets, the
aggregation, the codecs) reads the same values without importing the model itself.
"""

from __future__ import annotations

from vmenergy.validation import MAX_ID_LENGTH

__all__ = [
    "TOLERANCE",
    "MAX_SLICES",
    "MAX_PROFILES",
    "MAX_VALUES",
    "MAX_POLYTOPE_ROWS",
    "MAX_ABS_ENERGY",
    "MAX_ID_LENGTH",
    "MAX_LABEL_LENGTH",
    "MAX_RESOLUTION",
    "MAX_SLICE_DURATION",
    "CHECK_SECONDS",
    "check_seconds",
    "set_check_seconds",
]

#: Absolute tolerance in kWh for every energy comparison (slice bounds, totals, discrete values,
#: polytope rows scaled by their 1-norm). Schedules are usually computed in floating point (LP
#: solvers, disaggregation by proportion), so 2.8000000000000003 must count as 2.8. One micro-kWh
#: is far below any meter's resolution, so the tolerance never admits a physically different
#: schedule.
TOLERANCE = 1e-6

#: Parser limits: bigger inputs are refused before any work is done on them.
MAX_SLICES = 10_000
MAX_PROFILES = 16
MAX_VALUES = 1_024
MAX_POLYTOPE_ROWS = 4 * MAX_SLICES
#: No single slice or total of any real device or aggregate reaches 10^12 kWh (1,000 TWh).
MAX_ABS_ENERGY = 1e12
MAX_LABEL_LENGTH = 1024
MAX_RESOLUTION = 7 * 86400
#: A single slice longer than a year of 1-minute intervals is certainly a unit error.
MAX_SLICE_DURATION = 366 * 1440

#: Solver time (seconds) the satisfiability check of one offer's polytope may take by default. A
#: legal 256 KiB polytope costs tens of milliseconds, a hostile one far more: past the budget the
#: offer is refused (naming the polytope) instead of holding a CPU. The budget is far above what
#: any real offer needs, so whether an offer is accepted does not depend on the machine's load.
CHECK_SECONDS = 2.0
_check_seconds = [CHECK_SECONDS]


def check_seconds() -> float:
    """The solver-time budget of a polytope check in this process."""
    return _check_seconds[0]


def set_check_seconds(seconds: float) -> None:
    """Set the budget (a process setting: an agent's config, ``vmenergy validate --budget``)."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 < seconds <= 3600:
        raise ValueError(f"check seconds must be in (0, 3600], got {seconds!r}")
    _check_seconds[0] = float(seconds)
