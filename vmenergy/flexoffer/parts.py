"""The parts of a flex-offer: slices, total-energy and polytope constraints, profiles, the
baseline (default schedule) and prices. Each is a frozen dataclass that validates itself, knows
its JSON form, and (for a profile) which energy vectors it admits.

Paths in errors are local (``min``, ``slices[1]``); the offer that holds a part adds where it
sits (``profiles[0].slices[1].min``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import chain
from dataclasses import dataclass
from operator import itemgetter, mul
from typing import Any, Iterator, Optional, Sequence, cast

import numpy as np

from vmenergy.validation import set_field

from . import jsontext as jt
from .checked import is_checked
from .errors import FlexOfferError, check
from .shared import Pool, has_negative_zero
from .limits import (
    MAX_ABS_ENERGY, MAX_POLYTOPE_ROWS, MAX_PROFILES, MAX_SLICE_DURATION, MAX_SLICES, MAX_VALUES, TOLERANCE, check_seconds,
)
from .timeutil import format_utc
from .violation import Violation

__all__ = ["Slice", "TotalEnergy", "Polytope", "Profile", "Baseline", "SlicePrice", "Prices", "shared_slice"]


SLICE_FIELDS = ("duration", "min", "max", "values")
PROFILE_FIELDS = ("slices", "total", "polytope", "start_after", "start_before")


@dataclass(frozen=True, slots=True)
class Slice:
    """A run of ``duration`` intervals whose energy (kWh over the whole slice) lies in [min, max].

    ``values``, when given, restricts the energy to a few discrete levels (an on/off kettle, a
    heat pump with stages); they must be strictly increasing and lie inside [min, max].
    """

    duration: int
    min: float
    max: float
    values: Optional[tuple[float, ...]] = None

    def __post_init__(self) -> None:
        d, lo, hi = self.duration, self.min, self.max
        if (type(d) is int and type(lo) is float and type(hi) is float and self.values is None
                and 1 <= d <= MAX_SLICE_DURATION and -MAX_ABS_ENERGY <= lo <= hi <= MAX_ABS_ENERGY):
            # the common case (a device model's slices, a parsed offer's) checked in one go: the
            # checks below would accept these values unchanged (NaN fails every comparison)
            return
        duration = check.integer(self.duration, "duration", maximum=MAX_SLICE_DURATION)
        if duration < 1:
            raise FlexOfferError("duration", f"duration must be >= 1 interval (got {duration})")
        set_field(self, "duration", duration)
        lo = check.number(self.min, "min")
        hi = check.number(self.max, "max")
        set_field(self, "min", lo)
        set_field(self, "max", hi)
        if lo > hi:
            raise FlexOfferError("", f"min > max ({lo!r} > {hi!r} kWh)")
        if self.values is not None:
            vals = check.numbers(self.values, "values", at_most=MAX_VALUES)
            if not vals:
                raise FlexOfferError("values", "must not be empty (omit it for a continuous slice)")
            for i, v in enumerate(vals):
                if v < lo - TOLERANCE or v > hi + TOLERANCE:
                    raise FlexOfferError(f"values[{i}]", f"{v!r} outside [min, max] = [{lo!r}, {hi!r}]")
                if i and v <= vals[i - 1]:
                    raise FlexOfferError(f"values[{i}]", "values must be strictly increasing")
            set_field(self, "values", vals)

    @property
    def flexibility(self) -> float:
        """Energy flexibility of this slice (kWh)."""
        return self.max - self.min

    def admits(self, energy: float, tolerance: float = TOLERANCE) -> bool:
        """True if ``energy`` is allowed in this slice (bounds and discrete values)."""
        if energy < self.min - tolerance or energy > self.max + tolerance:
            return False
        if self.values is not None:
            return any(abs(energy - v) <= tolerance for v in self.values)
        return True

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> "Slice":
        d = jt.obj(data, path, SLICE_FIELDS)
        for key in ("duration", "min", "max"):
            if key not in d:
                raise FlexOfferError(jt.join(path, key), "required")
        values = d.get("values")
        if values is not None:
            values = tuple(jt.array(values, jt.join(path, "values")))
        return check.build(path, lambda: cls(d["duration"], d["min"], d["max"], values))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"duration": self.duration, "min": self.min, "max": self.max}
        if self.values is not None:
            out["values"] = list(self.values)
        return out


@dataclass(frozen=True, slots=True)
class TotalEnergy:
    """Bounds on the sum of a profile's slice energies (kWh); either side may be open (None)."""

    min: Optional[float] = None
    max: Optional[float] = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise FlexOfferError("", "give min, max or both (or omit total)")
        lo = None if self.min is None else check.number(self.min, "min")
        hi = None if self.max is None else check.number(self.max, "max")
        set_field(self, "min", lo)
        set_field(self, "max", hi)
        if lo is not None and hi is not None and lo > hi:
            raise FlexOfferError("", f"min > max ({lo!r} > {hi!r} kWh)")


#: Per-slice energies a caller knows to be a schedule of the profile it builds (an offer's
#: baseline, which a device model makes feasible by construction): see :func:`known_point`.
_KNOWN_POINT: ContextVar[Optional[tuple[float, ...]]] = ContextVar("known_point", default=None)


@contextmanager
def known_point(energy: Optional[Sequence[float]]) -> Iterator[None]:
    """Profiles built in this block first try ``energy`` as a witness that their polytope is not
    empty: a point that meets the slice bounds, the total and ``A·x <= b`` (with the LP's
    tolerances) proves it, so the LP is skipped. The answer is the LP's; only the cost differs
    (about 10 ms of LP per offer: a day of offers of 100,000 devices spent most of its time
    there). A point that does not meet them proves nothing, and the LP decides."""
    token = _KNOWN_POINT.set(None if energy is None else tuple(float(e) for e in energy))
    try:
        yield
    finally:
        _KNOWN_POINT.reset(token)


#: Polytope rows already held in this process (:mod:`.shared`): an FOA's day repeats three rows
#: in four, from device to device; so do a leaf aggregator's members and the report's offers.
ROWS = Pool(1 << 16)
#: Slices already held in this process (:func:`shared_slice`).
SLICES = Pool(1 << 16)
_NEGATIVE_ZERO_BITS = np.int64(-(1 << 63))  # -0.0 read as an int64


def _pooled_rows(a: np.ndarray) -> tuple[tuple[float, ...], ...]:
    """The rows of ``a`` as tuples of floats sharing one float object per distinct value (by bit
    pattern: -0.0 stays -0.0), which holds a polytope in about half the memory, and each row
    one tuple per process when an equal row is held already (:data:`ROWS`; a row with a -0.0
    cell only with rows of the same bits)."""
    bits = np.ascontiguousarray(a).view(np.int64)
    distinct, index = np.unique(bits, return_inverse=True)
    pool: list[float] = distinct.view(np.float64).tolist()
    rows = cast(list, index.reshape(a.shape).tolist())  # a 2-D array: a list of rows
    if a.shape[1] == 1:
        out = tuple((pool[row[0]],) for row in rows)
    else:
        out = tuple(itemgetter(*row)(pool) for row in rows)
    share = ROWS.share
    if _NEGATIVE_ZERO_BITS not in distinct:
        return tuple(share(row) for row in out)
    # a row with a -0.0 cell (a thermal row's negated zero coefficients: half of them) is
    # pooled under its bits, which equality of floats would not tell from a row of 0.0
    signed = (bits == _NEGATIVE_ZERO_BITS).any(axis=1).tolist()
    return tuple(share(row, bits[j].tobytes()) if signed[j] else share(row) for j, row in enumerate(out))


def shared_slice(s: "Slice") -> "Slice":
    """``s``, or the equal slice this process already holds (:data:`SLICES`): a device model's
    offers repeat a third of their slices (a PV night, a base load's quarter hours), and so do
    the offers a report or a restarted agent reads. Only a slice of an int duration and float
    bounds is pooled (equality takes 1 for 1.0 and -0.0 for 0.0; the JSON must not)."""
    lo, hi = s.min, s.max
    if type(s.duration) is not int or type(lo) is not float or type(hi) is not float:
        return s
    if (lo == 0 and math.copysign(1.0, lo) < 0) or (hi == 0 and math.copysign(1.0, hi) < 0):
        return s  # (has_negative_zero, inline: this runs for every slice a report reads)
    if s.values is not None and (any(type(v) is not float for v in s.values) or has_negative_zero(s.values)):
        return s
    return SLICES.share(s)


def _checked_arrays(A: np.ndarray, b: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """``A`` and ``b`` as float arrays if they meet every rule a polytope's cells meet one by
    one (numbers, finite, within the limit, 1 to MAX_POLYTOPE_ROWS rows of at least one cell,
    one bound a row); None if any rule fails."""
    if A.ndim != 2 or b.ndim != 1 or A.dtype.kind not in "iuf" or b.dtype.kind not in "iuf" or not A.shape[1]:
        return None
    if not 1 <= A.shape[0] <= MAX_POLYTOPE_ROWS or b.shape[0] != A.shape[0]:
        return None
    a, bb = A.astype(np.float64, copy=False), b.astype(np.float64, copy=False)
    if not (np.isfinite(a).all() and np.isfinite(bb).all()):
        return None
    if (a.size and np.abs(a).max() > check.limit) or np.abs(bb).max() > check.limit:
        return None
    return a, bb


def _plain_arrays(rows: Sequence[Sequence[Any]], b: Sequence[Any]) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """Parsed rows and bounds as float arrays when every cell is exactly an int or a float (a
    boolean or a numpy scalar is not: those keep the cell-by-cell checks and their errors);
    None otherwise (ragged rows, an int beyond any float, a row that is not a list)."""
    try:
        if not set(map(type, chain.from_iterable(rows))) <= _PLAIN or not set(map(type, b)) <= _PLAIN:
            return None
        return np.array(rows, dtype=np.float64), np.array(b, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None


_PLAIN = frozenset({int, float})


@dataclass(frozen=True, slots=True)
class Polytope:
    """Linear constraints ``A·x <= b`` over a profile's slice energies x (one column per slice).

    Covers dependency-based offers (state of charge of a battery, thermal inertia of a heat pump),
    which :mod:`vmenergy.flexoffer.builders` turns into rows of ``A``.
    """

    A: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]

    def __post_init__(self) -> None:
        A, b = self.A, self.b
        if isinstance(A, np.ndarray) and isinstance(b, np.ndarray):
            if self._take_arrays(A, b):
                return
            A, b = A.tolist(), b.tolist()  # Python values: the errors read as for any list
        raw_rows = check.items(A, "A", "rows")
        raw_b = check.items(b, "b", "numbers")
        rows = []
        for j, row in enumerate(raw_rows):
            cells = check.items(row, f"A[{j}]", "numbers")
            rows.append(tuple(check.number(a, f"A[{j}][{k}]") for k, a in enumerate(cells)))
            if len(rows) > MAX_POLYTOPE_ROWS:
                raise FlexOfferError("A", f"more than {MAX_POLYTOPE_ROWS} rows")
        b = tuple(check.number(v, f"b[{j}]") for j, v in enumerate(raw_b))
        if not rows:
            raise FlexOfferError("A", "at least one row (omit polytope for none)")
        if len(b) != len(rows):
            raise FlexOfferError("b", f"has {len(b)} entries but A has {len(rows)} rows")
        set_field(self, "A", tuple(rows))
        set_field(self, "b", b)

    @classmethod
    def of_arrays(cls, A: np.ndarray, b: np.ndarray) -> "Polytope":
        """The polytope of numpy rows ``A`` and bounds ``b``, checked as arrays (see
        :meth:`_take_arrays`); the same object as from the same numbers in tuples."""
        return cls(A, b)  # type: ignore[arg-type]  # __post_init__ turns them into tuples

    @classmethod
    def of_rows(cls, rows: Sequence[Sequence[Any]], b: Sequence[Any]) -> "Polytope":
        """The polytope of rows as a parser hands them (lists of numbers from a JSON or XML
        offer): the same object as ``Polytope(rows, b)``, checked as arrays when every cell is a
        plain int or float, and held with one float object per distinct value. A heat pump's
        day (48 rows of 24 cells) parsed cell by cell was about 40 KiB of float objects at each
        aggregator and in the report, and its checks most of the report's CPU (bench/RESULTS.md,
        "A million devices"). Anything else (a boolean, text, a ragged row, a bad value) goes the
        cell-by-cell way, whose errors name the first bad cell as always."""
        arrays = _plain_arrays(rows, b)
        if arrays is not None and _checked_arrays(*arrays) is not None:
            return cls.of_arrays(*arrays)
        return cls(tuple(tuple(r) for r in rows), tuple(b))

    def _take_arrays(self, A: np.ndarray, b: np.ndarray) -> bool:
        """Arrays (a device model's rows, thousands of cells an offer) checked at once by numpy
        under the same rules as cell by cell; False if any rule fails, and the cell-by-cell
        checks then find the first failing cell and name it. The cells are stored as the tuples
        of any polytope, each distinct value once (a day's thermal rows are half zeros)."""
        checked = _checked_arrays(A, b)
        if checked is None:
            return False
        a, bb = checked
        set_field(self, "A", _pooled_rows(a))
        set_field(self, "b", tuple(bb.tolist()))
        return True

    def row_tolerance(self, j: int) -> float:
        """Tolerance of row j: TOLERANCE scaled by the row's 1-norm (at least 1)."""
        return TOLERANCE * max(1.0, sum(map(abs, self.A[j])))  # map: same sum, no frame per cell


@dataclass(frozen=True, slots=True)
class Profile:
    """One exclusive-OR alternative of an offer: slices plus optional total and polytope.

    ``start_after``/``start_before`` (intervals), when given, narrow the offer's start window for
    this profile only; two-mode conditional offers use them so that the mode depends on when the
    device starts.
    """

    slices: tuple[Slice, ...]
    total: Optional[TotalEnergy] = None
    polytope: Optional[Polytope] = None
    start_after: Optional[int] = None
    start_before: Optional[int] = None

    def __post_init__(self) -> None:
        if is_checked():  # read back from VME's own store (the witness or LP ran when it was made)
            return
        slices = check.parts(self.slices, "slices", Slice, "slice", at_most=MAX_SLICES)
        set_field(self, "slices", slices)
        set_field(self, "start_after", check.optional_integer(self.start_after, "start_after"))
        set_field(self, "start_before", check.optional_integer(self.start_before, "start_before"))
        if self.start_after is not None and self.start_before is not None and self.start_before < self.start_after:
            raise FlexOfferError("start_before", "start_before before start_after")
        lo = math.fsum(s.min for s in slices)
        hi = math.fsum(s.max for s in slices)
        if self.total is not None:
            t = self.total
            if (t.min is not None and t.min > hi + TOLERANCE) or (t.max is not None and t.max < lo - TOLERANCE):
                raise FlexOfferError(
                    "total",
                    f"outside the sum of slice bounds (total [{_fmt(t.min)}, {_fmt(t.max)}] kWh, "
                    f"slices sum to [{lo:g}, {hi:g}] kWh)",
                )
        if self.polytope is not None:
            n = len(slices)
            for j, row in enumerate(self.polytope.A):
                if len(row) != n:
                    raise FlexOfferError(
                        f"polytope.A[{j}]", f"row length differs from slice count ({len(row)} != {n})"
                    )
            if not self._polytope_is_satisfiable(self.polytope):
                raise FlexOfferError("polytope",
                                     "no energy profile satisfies A·x <= b within the slice and total bounds")

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    @property
    def duration(self) -> int:
        """Length in intervals (sum of slice durations)."""
        return sum(s.duration for s in self.slices)

    @property
    def min_total(self) -> float:
        """Smallest total energy any schedule of this profile can have (kWh)."""
        lo = math.fsum(s.min for s in self.slices)
        return lo if self.total is None or self.total.min is None else max(lo, self.total.min)

    @property
    def max_total(self) -> float:
        """Largest total energy any schedule of this profile can have (kWh)."""
        hi = math.fsum(s.max for s in self.slices)
        return hi if self.total is None or self.total.max is None else min(hi, self.total.max)

    @property
    def energy_flexibility(self) -> float:
        """kWh between the slice minima and maxima."""
        return math.fsum(s.max - s.min for s in self.slices)

    def spread(self, values: Sequence[float] | np.ndarray) -> np.ndarray:
        """Per-slice kWh (a schedule's energies, or the slices' minima or maxima) spread evenly
        over each slice's ``duration`` intervals: kWh per interval, ``duration`` values. A slice's
        energy is over its whole duration, so this is what a meter sees when the device runs."""
        if len(values) != len(self.slices):
            raise FlexOfferError("energy", f"has {len(values)} values; the profile has {len(self.slices)} slices")
        d = np.fromiter((s.duration for s in self.slices), dtype=np.int64, count=len(self.slices))
        return np.repeat(np.asarray(values, dtype=np.float64) / d, d)

    # -- feasibility ------------------------------------------------------------------------
    def check_energy(self, energy: Sequence[float]) -> list[Violation]:
        """Energy checks of one schedule of this profile: length, slice bounds, discrete values,
        total, polytope (each within :data:`~.limits.TOLERANCE`)."""
        n = len(self.slices)
        if len(energy) != n:
            return [Violation("energy", f"has {len(energy)} values; the profile has {n} slices")]
        out = []
        for i, (e, s) in enumerate(zip(energy, self.slices)):
            if e < s.min - TOLERANCE:
                out.append(Violation(f"energy[{i}]", f"{e:g} kWh is below the slice min {s.min:g} kWh"))
            elif e > s.max + TOLERANCE:
                out.append(Violation(f"energy[{i}]", f"{e:g} kWh is above the slice max {s.max:g} kWh"))
            elif s.values is not None and not any(abs(e - v) <= TOLERANCE for v in s.values):
                allowed = ", ".join(f"{v:g}" for v in s.values)
                out.append(Violation(f"energy[{i}]", f"{e:g} kWh is not one of the allowed values ({allowed})"))
        t = self.total
        if t is not None:
            total = math.fsum(energy)
            if t.min is not None and total < t.min - TOLERANCE:
                out.append(Violation("total", f"{total:g} kWh is below the total min {t.min:g} kWh"))
            if t.max is not None and total > t.max + TOLERANCE:
                out.append(Violation("total", f"{total:g} kWh is above the total max {t.max:g} kWh"))
        p = self.polytope
        if p is not None:
            for j, (row, bj) in enumerate(zip(p.A, p.b)):
                lhs = math.fsum(map(mul, row, energy))
                if lhs > bj + p.row_tolerance(j):
                    out.append(Violation(f"polytope.A[{j}]", f"A[{j}]·x = {lhs:g} exceeds b[{j}] = {bj:g}"))
        return out

    def _polytope_is_satisfiable(self, polytope: Polytope) -> bool:
        """True if some energy vector meets the slice bounds, the total and ``A·x <= b``.

        Solved as an LP with SciPy's HiGHS (discrete slice values are relaxed to their [min, max]
        range, so this rejects only offers that are certainly empty).
        """
        point = _KNOWN_POINT.get()
        if point is not None and self._witnesses(point, polytope):
            return True
        from scipy.optimize import linprog  # here: SciPy is loaded only by offers with a polytope

        n = len(self.slices)
        a_ub = [list(r) for r in polytope.A]
        b_ub = [b + polytope.row_tolerance(j) for j, b in enumerate(polytope.b)]
        if self.total is not None:
            if self.total.max is not None:
                a_ub.append([1.0] * n)
                b_ub.append(self.total.max + TOLERANCE)
            if self.total.min is not None:
                a_ub.append([-1.0] * n)
                b_ub.append(-self.total.min + TOLERANCE)
        budget = check_seconds()
        res = linprog(
            c=np.zeros(n),
            A_ub=np.asarray(a_ub, dtype=float),
            b_ub=np.asarray(b_ub, dtype=float),
            bounds=[(s.min, s.max) for s in self.slices],
            method="highs",
            options={"time_limit": budget},
        )
        if res.status == 1:  # the time (or iteration) limit came first
            raise FlexOfferError("polytope", f"too costly to check: the solver needed more than {budget:g} s "
                                             "to decide whether any schedule meets A·x <= b (simplify it)")
        return bool(res.status == 0)

    def _witnesses(self, x: tuple[float, ...], polytope: Polytope) -> bool:
        """Whether ``x`` lies in the set the LP of :meth:`_polytope_is_satisfiable` searches:
        slice bounds exactly, the total and the rows with the same tolerances."""
        if len(x) != len(self.slices) or not all(math.isfinite(e) for e in x):
            return False
        if any(not (s.min <= e <= s.max) for e, s in zip(x, self.slices)):
            return False
        if self.total is not None:
            total = math.fsum(x)
            if (self.total.max is not None and total > self.total.max + TOLERANCE) or (
                    self.total.min is not None and total < self.total.min - TOLERANCE):
                return False
        return all(math.fsum(map(mul, row, x)) <= bj + polytope.row_tolerance(j)
                   for j, (row, bj) in enumerate(zip(polytope.A, polytope.b)))

    # -- JSON form --------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, path: str, resolution: int) -> "Profile":
        d = jt.obj(data, path, PROFILE_FIELDS)
        where = jt.join(path, "slices")
        if "slices" not in d:
            raise FlexOfferError(where, "required (at least one slice)")
        raw = jt.array(d["slices"], where)
        if len(raw) > MAX_SLICES:
            raise FlexOfferError(where, f"more than {MAX_SLICES} slices ({len(raw)})")
        if is_checked():  # VME's own store: each slice is what Slice.to_dict wrote
            slices = tuple(shared_slice(Slice(s["duration"], s["min"], s["max"], None if s.get("values") is None
                                              else tuple(s["values"]))) for s in raw)
        else:
            slices = tuple(shared_slice(Slice.from_dict(s, f"{where}[{j}]")) for j, s in enumerate(raw))
        total = None
        if d.get("total") is not None:
            where = jt.join(path, "total")
            t = jt.obj(d["total"], where, ("min", "max"))
            total = check.build(where, lambda: TotalEnergy(t.get("min"), t.get("max")))
        polytope = None
        if d.get("polytope") is not None:
            where = jt.join(path, "polytope")
            pd = jt.obj(d["polytope"], where, ("A", "b"))
            for key in ("A", "b"):
                if key not in pd:
                    raise FlexOfferError(f"{where}.{key}", "required")
            rows = jt.array(pd["A"], f"{where}.A")
            for j, row in enumerate(rows):
                jt.array(row, f"{where}.A[{j}]")
            b = jt.array(pd["b"], f"{where}.b")
            polytope = check.build(where, lambda: Polytope.of_rows(rows, b))
        return check.build(
            path,
            lambda: cls(
                slices,
                total=total,
                polytope=polytope,
                start_after=jt.time_field(d, "start_after", "", resolution),
                start_before=jt.time_field(d, "start_before", "", resolution),
            ),
        )

    def to_dict(self, resolution: int) -> dict:
        out: dict[str, Any] = {"slices": [s.to_dict() for s in self.slices]}
        if self.total is not None:
            t: dict[str, Any] = {}
            if self.total.min is not None:
                t["min"] = self.total.min
            if self.total.max is not None:
                t["max"] = self.total.max
            out["total"] = t
        if self.polytope is not None:
            out["polytope"] = {"A": [list(r) for r in self.polytope.A], "b": list(self.polytope.b)}
        if self.start_after is not None:
            out["start_after"] = format_utc(self.start_after * resolution)
        if self.start_before is not None:
            out["start_before"] = format_utc(self.start_before * resolution)
        return out


@dataclass(frozen=True, slots=True)
class Baseline:
    """What the device would do without flexibility being used: a schedule without ids.

    ``start`` is an interval; None means "at the offer's earliest start" (useful with implicit
    time flexibility, where the earliest start is only known on acceptance).
    """

    energy: tuple[float, ...]
    profile: int = 0
    start: Optional[int] = None

    def __post_init__(self) -> None:
        if is_checked():
            return
        set_field(self, "energy", check.numbers(self.energy, "energy", at_most=MAX_SLICES))
        set_field(self, "profile", check.integer(self.profile, "profile", minimum=0, maximum=MAX_PROFILES - 1))
        set_field(self, "start", check.optional_integer(self.start, "start"))

    @classmethod
    def from_dict(cls, data: Any, path: str, resolution: int) -> "Baseline":
        b = jt.obj(data, path, ("profile", "start", "energy"))
        if "energy" not in b:
            raise FlexOfferError(jt.join(path, "energy"), "required")
        energy = jt.array(b["energy"], jt.join(path, "energy"))
        return check.build(
            path,
            lambda: cls(energy=tuple(energy), profile=b.get("profile", 0),
                        start=jt.time_field(b, "start", "", resolution)),
        )

    def to_dict(self, resolution: int) -> dict:
        out: dict[str, Any] = {"profile": self.profile}
        if self.start is not None:
            out["start"] = format_utc(self.start * resolution)
        out["energy"] = list(self.energy)
        return out


@dataclass(frozen=True, slots=True)
class SlicePrice:
    """EUR per kWh for deviating up (more consumption / less production) and down in a slice."""

    up: float
    down: float

    def __post_init__(self) -> None:
        set_field(self, "up", check.number(self.up, "up", limit=1e9))
        set_field(self, "down", check.number(self.down, "down", limit=1e9))


@dataclass(frozen=True, slots=True)
class Prices:
    """Per-slice linear prices. One entry applies to every slice; otherwise entry i prices slice i
    of whichever profile is chosen, so there must be as many entries as the longest profile has
    slices."""

    slices: tuple[SlicePrice, ...]
    currency: str = "EUR"

    def __post_init__(self) -> None:
        prices = check.parts(self.slices, "slices", SlicePrice, "price", if_empty="omit prices for none")
        set_field(self, "slices", prices)
        check.currency(self.currency, "currency")

    def for_slice(self, i: int) -> SlicePrice:
        return self.slices[0] if len(self.slices) == 1 else self.slices[i]

    @classmethod
    def from_dict(cls, data: Any, path: str) -> "Prices":
        pr = jt.obj(data, path, ("currency", "slices"))
        raw = jt.array(pr.get("slices"), jt.join(path, "slices"))
        items = tuple(_price(x, f"{path}.slices[{i}]") for i, x in enumerate(raw))
        return check.build(path, lambda: cls(items, currency=pr.get("currency", "EUR")))

    def to_dict(self) -> dict:
        return {"currency": self.currency, "slices": [{"up": p.up, "down": p.down} for p in self.slices]}


def _price(data: Any, path: str) -> SlicePrice:
    d = jt.obj(data, path, ("up", "down"))
    for key in ("up", "down"):
        if key not in d:
            raise FlexOfferError(jt.join(path, key), "required")
    return check.build(path, lambda: SlicePrice(d["up"], d["down"]))


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"
