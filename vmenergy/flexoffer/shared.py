"""One object per repeated value: bounded pools of immutable parts that many offers repeat.

A day's offers of an FOA of 1,000 households hold 57,074 polytope rows of which 14,668 are
distinct (the same thermal and battery dynamics recur from device to device and day to day),
and 171,837 slices of which a third repeat (a PV night, a base load's quarter hours). Each row
is a tuple of 24 cell references, ~250 bytes; each slice an object and two floats. Holding a
repeated one once, for every offer a process holds (the FOA's ledger and its devices' runs, a
leaf aggregator's members, the report), is what these pools are for (bench/RESULTS.md, "A
million devices").

A pool hands back the object it already holds for an equal value. Python's equality takes
``-0.0`` for ``0.0``, so a value holding a negative zero is pooled under a key of its bits, or
not at all (its bits must reach the wire as they were). A pool is bounded and cleared when full: the objects it handed out stay
with their holders, only later repeats of them are no longer merged.
"""

from __future__ import annotations

import math
from typing import Hashable, Iterable, TypeVar

__all__ = ["Pool", "has_negative_zero"]

T = TypeVar("T", bound=Hashable)


class Pool(dict):
    """Values already seen, each mapped to the one object handed out for it (see the module
    docstring). ``limit``: the number of values held before the pool starts again empty."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"Pool.limit: a positive int (got {limit!r})")
        self.limit = limit

    def share(self, value: T, key: Hashable = None) -> T:
        """The object held for ``key`` (default: ``value`` itself), or ``value``, now held under
        it. Without ``key`` the caller makes sure ``value`` holds no negative zero
        (:func:`has_negative_zero`); with one, that the key tells such values apart (their bits)."""
        k = value if key is None else key
        held = self.get(k)
        if held is not None:
            return held
        if len(self) >= self.limit:
            self.clear()
        self[k] = value
        return value


def has_negative_zero(numbers: Iterable[float]) -> bool:
    """Whether any of ``numbers`` is ``-0.0`` (equal to ``0.0`` for Python, not in its bits)."""
    return any(x == 0 and math.copysign(1.0, x) < 0 for x in numbers)
