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
