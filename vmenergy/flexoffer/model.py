"""The flex-offer: one common, immutable representation of flexibility.

Follows the MIRABEL/TotalFlex flex-offer with the GOFLEX extensions (implicit time flexibility,
polytopic/dependency constraints, exclusive-OR profiles). Objects are frozen dataclasses that
validate themselves on construction, so an instance that exists is a valid offer; parsers and
builders can therefore never hand an invalid offer to the rest of the system.

Units: energy in kWh over a whole slice (+ consumption, - production), money in EUR per kWh,
time windows in integer intervals of ``resolution`` seconds since the Unix epoch, lifecycle
deadlines in whole epoch seconds. See ``docs/protocol.md`` for the wire forms.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Iterable, Optional

from .errors import FlexOfferError
from .timeutil import DEFAULT_RESOLUTION, format_utc

if TYPE_CHECKING:  # pragma: no cover
    from .feasibility import Violation
    from .schedule import Schedule

__all__ = [
    "TOLERANCE",
    "MAX_SLICES",
    "MAX_PROFILES",
    "MAX_VALUES",
    "MAX_POLYTOPE_ROWS",
    "MAX_ABS_ENERGY",
    "State",
    "TRANSITIONS",
    "Slice",
    "TotalEnergy",
    "Polytope",
    "Profile",
    "Baseline",
    "SlicePrice",
    "Prices",
    "FlexOffer",
    "check_identifier",
    "check_integer",
    "check_number",
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
MAX_ID_LENGTH = 256
MAX_RESOLUTION = 7 * 86400
#: A single slice longer than a year of 1-minute intervals is certainly a unit error.
MAX_SLICE_DURATION = 366 * 1440

_ID_OK = re.compile(r"[^\x00-\x20\x7f\ud800-\udfff\ufffe\uffff]+\Z")
# Text that XML 1.0 can carry in an attribute and that survives attribute normalisation.
_LABEL_OK = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]*\Z")
_CURRENCY = re.compile(r"[A-Z]{3}\Z")


class State(str, Enum):
    """Lifecycle of a flex-offer, from creation by a prosumer to settlement."""

    INITIAL = "initial"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ASSIGNED = "assigned"
    EXECUTING = "executing"
    EXECUTED = "executed"
    SETTLED = "settled"
    WITHDRAWN = "withdrawn"

    def __str__(self) -> str:
        return self.value


#: Legal state transitions. ``assigned -> assigned`` is a re-assignment (a new schedule update
#: replaces the previous one before execution starts). Once execution starts an offer can no
#: longer be withdrawn: energy has already been moved.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.INITIAL: frozenset({State.OFFERED, State.WITHDRAWN}),
    State.OFFERED: frozenset({State.ACCEPTED, State.REJECTED, State.WITHDRAWN}),
    State.ACCEPTED: frozenset({State.ASSIGNED, State.REJECTED, State.WITHDRAWN}),
    State.ASSIGNED: frozenset({State.ASSIGNED, State.EXECUTING, State.EXECUTED}),
    State.EXECUTING: frozenset({State.EXECUTED}),
    State.EXECUTED: frozenset({State.SETTLED}),
    State.REJECTED: frozenset(),
    State.SETTLED: frozenset(),
    State.WITHDRAWN: frozenset(),
}


# --------------------------------------------------------------------------------------------
# value checks shared by the dataclasses and by other packages' message types (they raise with a
# local path; callers prefix it)


def check_number(value: object, path: str, *, limit: float = MAX_ABS_ENERGY) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            import numpy as _np  # numpy scalars are numbers too (FlexOfferSet hands them over)

            if isinstance(value, (_np.integer, _np.floating)):
                return check_number(value.item(), path, limit=limit)
        except ImportError:  # pragma: no cover
            pass
        raise FlexOfferError(path, f"not a number: {value!r}")
    out = float(value)
    if math.isnan(out):
        raise FlexOfferError(path, "not a number (NaN)")
    if math.isinf(out) or abs(out) > limit:
        raise FlexOfferError(path, f"out of range: {value!r} (magnitude above {limit:g})")
    return out


def check_integer(value: object, path: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu":  # numpy integer
            value = int(value)  # type: ignore[arg-type]
        else:
            raise FlexOfferError(path, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise FlexOfferError(path, f"must be >= {minimum} (got {value})")
    if maximum is not None and value > maximum:
        raise FlexOfferError(path, f"must be <= {maximum} (got {value})")
    return int(value)


def _optional_integer(value: object, path: str, **kw) -> int | None:
    return None if value is None else check_integer(value, path, **kw)


def _text(value: object, path: str, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise FlexOfferError(path, "required")
        return None
    if not isinstance(value, str):
        raise FlexOfferError(path, f"must be a string, got {value!r}")
    if required and not value:
        raise FlexOfferError(path, "required (empty)")
    return value


def check_identifier(value: object, path: str, *, required: bool = True) -> str | None:
    text = _text(value, path, required=required)
    if text is None:
        return None
    if not text:
        raise FlexOfferError(path, "must not be empty (omit it instead)")
    if len(text) > MAX_ID_LENGTH:
        raise FlexOfferError(path, f"longer than {MAX_ID_LENGTH} characters")
    if not _ID_OK.match(text):
        raise FlexOfferError(path, "must not contain whitespace or control characters")
    return text


def _set(obj: object, name: str, value: object) -> None:
    object.__setattr__(obj, name, value)


# --------------------------------------------------------------------------------------------


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
        duration = check_integer(self.duration, "duration", maximum=MAX_SLICE_DURATION)
        if duration < 1:
            raise FlexOfferError("duration", f"duration must be >= 1 interval (got {duration})")
        _set(self, "duration", duration)
        lo = check_number(self.min, "min")
        hi = check_number(self.max, "max")
        _set(self, "min", lo)
        _set(self, "max", hi)
        if lo > hi:
            raise FlexOfferError("", f"min > max ({lo!r} > {hi!r} kWh)")
        if self.values is not None:
            vals = self.values
            if isinstance(vals, (str, bytes)) or not isinstance(vals, Iterable):
                raise FlexOfferError("values", "must be a list of numbers")
            vals = tuple(check_number(v, f"values[{i}]") for i, v in enumerate(vals))
            if not vals:
                raise FlexOfferError("values", "must not be empty (omit it for a continuous slice)")
            if len(vals) > MAX_VALUES:
                raise FlexOfferError("values", f"more than {MAX_VALUES} values")
            for i, v in enumerate(vals):
                if v < lo - TOLERANCE or v > hi + TOLERANCE:
                    raise FlexOfferError(f"values[{i}]", f"{v!r} outside [min, max] = [{lo!r}, {hi!r}]")
                if i and v <= vals[i - 1]:
                    raise FlexOfferError(f"values[{i}]", "values must be strictly increasing")
            _set(self, "values", vals)

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


@dataclass(frozen=True, slots=True)
class TotalEnergy:
    """Bounds on the sum of a profile's slice energies (kWh); either side may be open (None)."""

    min: Optional[float] = None
    max: Optional[float] = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise FlexOfferError("", "give min, max or both (or omit total)")
        lo = None if self.min is None else check_number(self.min, "min")
        hi = None if self.max is None else check_number(self.max, "max")
        _set(self, "min", lo)
        _set(self, "max", hi)
        if lo is not None and hi is not None and lo > hi:
            raise FlexOfferError("", f"min > max ({lo!r} > {hi!r} kWh)")


@dataclass(frozen=True, slots=True)
class Polytope:
    """Linear constraints ``A·x <= b`` over a profile's slice energies x (one column per slice).

    Covers dependency-based offers (state of charge of a battery, thermal inertia of a heat pump),
    which :mod:`vmenergy.flexoffer.builders` turns into rows of ``A``.
    """

    A: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]

    def __post_init__(self) -> None:
        if isinstance(self.A, (str, bytes)) or not isinstance(self.A, Iterable):
            raise FlexOfferError("A", "must be a list of rows")
        if isinstance(self.b, (str, bytes)) or not isinstance(self.b, Iterable):
            raise FlexOfferError("b", "must be a list of numbers")
        rows = []
        for j, row in enumerate(self.A):
            if isinstance(row, (str, bytes)) or not isinstance(row, Iterable):
                raise FlexOfferError(f"A[{j}]", "must be a list of numbers")
            rows.append(tuple(check_number(a, f"A[{j}][{k}]") for k, a in enumerate(row)))
            if len(rows) > MAX_POLYTOPE_ROWS:
                raise FlexOfferError("A", f"more than {MAX_POLYTOPE_ROWS} rows")
        b = tuple(check_number(v, f"b[{j}]") for j, v in enumerate(self.b))
        if not rows:
            raise FlexOfferError("A", "at least one row (omit polytope for none)")
        if len(b) != len(rows):
            raise FlexOfferError("b", f"has {len(b)} entries but A has {len(rows)} rows")
        _set(self, "A", tuple(rows))
        _set(self, "b", b)

    def row_tolerance(self, j: int) -> float:
        """Tolerance of row j: TOLERANCE scaled by the row's 1-norm (at least 1)."""
        return TOLERANCE * max(1.0, sum(abs(a) for a in self.A[j]))


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
        if isinstance(self.slices, (str, bytes)) or not isinstance(self.slices, Iterable):
            raise FlexOfferError("slices", "must be a list of slices")
        slices = tuple(self.slices)
        if not slices:
            raise FlexOfferError("slices", "at least one slice")
        if len(slices) > MAX_SLICES:
            raise FlexOfferError("slices", f"more than {MAX_SLICES} slices ({len(slices)})")
        for i, s in enumerate(slices):
            if not isinstance(s, Slice):
                raise FlexOfferError(f"slices[{i}]", "must be a Slice")
        _set(self, "slices", slices)
        _set(self, "start_after", _optional_integer(self.start_after, "start_after"))
        _set(self, "start_before", _optional_integer(self.start_before, "start_before"))
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
            from .feasibility import polytope_is_satisfiable  # local: scipy only when needed

            if not polytope_is_satisfiable(self):
                raise FlexOfferError("polytope", "no energy profile satisfies A·x <= b within the slice and total bounds")

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
        if isinstance(self.energy, (str, bytes)) or not isinstance(self.energy, Iterable):
            raise FlexOfferError("energy", "must be a list of numbers")
        energy = tuple(check_number(e, f"energy[{i}]") for i, e in enumerate(self.energy))
        if len(energy) > MAX_SLICES:
            raise FlexOfferError("energy", f"more than {MAX_SLICES} values")
        _set(self, "energy", energy)
        _set(self, "profile", check_integer(self.profile, "profile", minimum=0, maximum=MAX_PROFILES - 1))
        _set(self, "start", _optional_integer(self.start, "start"))


@dataclass(frozen=True, slots=True)
class SlicePrice:
    """EUR per kWh for deviating up (more consumption / less production) and down in a slice."""

    up: float
    down: float

    def __post_init__(self) -> None:
        _set(self, "up", check_number(self.up, "up", limit=1e9))
        _set(self, "down", check_number(self.down, "down", limit=1e9))


@dataclass(frozen=True, slots=True)
class Prices:
    """Per-slice linear prices. One entry applies to every slice; otherwise entry i prices slice i
    of whichever profile is chosen, so there must be as many entries as the longest profile has
    slices."""

    slices: tuple[SlicePrice, ...]
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if isinstance(self.slices, (str, bytes)) or not isinstance(self.slices, Iterable):
            raise FlexOfferError("slices", "must be a list of prices")
        slices = tuple(self.slices)
        if not slices:
            raise FlexOfferError("slices", "at least one price (omit prices for none)")
        for i, p in enumerate(slices):
            if not isinstance(p, SlicePrice):
                raise FlexOfferError(f"slices[{i}]", "must be a SlicePrice")
        _set(self, "slices", slices)
        if not isinstance(self.currency, str) or not _CURRENCY.match(self.currency):
            raise FlexOfferError("currency", f"must be an ISO 4217 code such as EUR, got {self.currency!r}")

    def for_slice(self, i: int) -> SlicePrice:
        return self.slices[0] if len(self.slices) == 1 else self.slices[i]


@dataclass(frozen=True, slots=True)
class FlexOffer:
    """A prosumer's (or aggregator's) offer of flexibility.

    Time window: the schedule may start at any interval in [start_after, start_before] (both
    inclusive). With implicit time flexibility ``start_after`` is omitted ("now": the moment the
    receiver handles the offer) and/or ``start_before`` is replaced by ``start_before_duration``
    intervals after the earliest start. Omitted ``start_before`` with no duration means the start
    is fixed at the earliest start.
    """

    id: str
    profiles: tuple[Profile, ...]
    issuer: Optional[str] = None
    label: Optional[str] = None
    state: State = State.INITIAL
    version: int = 0
    resolution: int = DEFAULT_RESOLUTION
    creation_time: Optional[int] = None
    acceptance_before: Optional[int] = None
    assignment_before: Optional[int] = None
    start_after: Optional[int] = None
    start_before: Optional[int] = None
    start_before_duration: Optional[int] = None
    baseline: Optional[Baseline] = None
    prices: Optional[Prices] = None

    def __post_init__(self) -> None:
        _set(self, "id", check_identifier(self.id, "id"))
        _set(self, "issuer", check_identifier(self.issuer, "issuer", required=False))
        label = _text(self.label, "label", required=False) or None  # "" and absent mean the same
        if label is not None and len(label) > 1024:
            raise FlexOfferError("label", "longer than 1024 characters")
        if label is not None and not _LABEL_OK.match(label):
            raise FlexOfferError("label", "must not contain control characters")
        _set(self, "label", label)
        try:
            _set(self, "state", State(self.state))
        except ValueError:
            raise FlexOfferError("state", f"unknown state {self.state!r} (one of {', '.join(s.value for s in State)})") from None
        _set(self, "version", check_integer(self.version, "version", minimum=0))
        res = check_integer(self.resolution, "resolution", maximum=MAX_RESOLUTION)
        if res <= 0:
            raise FlexOfferError("resolution", f"must be > 0 (got {res} s)")
        _set(self, "resolution", res)
        for name in ("creation_time", "acceptance_before", "assignment_before", "start_after", "start_before"):
            _set(self, name, _optional_integer(getattr(self, name), name))
        _set(self, "start_before_duration", _optional_integer(self.start_before_duration, "start_before_duration", minimum=0))
        self._check_times()
        self._check_profiles()
        if self.baseline is not None:
            self._check_baseline()
        if self.prices is not None:
            n = max(p.n_slices for p in self.profiles)
            if len(self.prices.slices) not in (1, n):
                raise FlexOfferError(
                    "prices.slices", f"has {len(self.prices.slices)} entries; give 1 or {n} (the longest profile's slice count)"
                )

    # -- validation -------------------------------------------------------------------------
    def _check_times(self) -> None:
        sa, sb, dur = self.start_after, self.start_before, self.start_before_duration
        if sa is not None and sb is not None and sb < sa:
            raise FlexOfferError(
                "start_before",
                f"start_before before start_after ({self._time(sb)} < {self._time(sa)})",
            )
        if sb is not None and dur is not None:
            raise FlexOfferError("start_before_duration", "give start_before or start_before_duration, not both")
        res = self.resolution
        c, acc, asg = self.creation_time, self.acceptance_before, self.assignment_before
        if c is not None and acc is not None and acc < c:
            raise FlexOfferError("acceptance_before", "before creation_time")
        if acc is not None and asg is not None and asg < acc:
            raise FlexOfferError("assignment_before", "before acceptance_before")
        if c is not None and asg is not None and asg < c:
            raise FlexOfferError("assignment_before", "before creation_time")
        latest = self.latest_start()
        if asg is not None and latest is not None and asg > latest * res:
            raise FlexOfferError("assignment_before", f"after the latest start {self._time(latest)}")

    def _check_profiles(self) -> None:
        if isinstance(self.profiles, (str, bytes)) or not isinstance(self.profiles, Iterable):
            raise FlexOfferError("profiles", "must be a list of profiles")
        profiles = tuple(self.profiles)
        if not profiles:
            raise FlexOfferError("profiles", "at least one profile")
        if len(profiles) > MAX_PROFILES:
            raise FlexOfferError("profiles", f"more than {MAX_PROFILES} profiles ({len(profiles)})")
        for i, p in enumerate(profiles):
            if not isinstance(p, Profile):
                raise FlexOfferError(f"profiles[{i}]", "must be a Profile")
            if p.start_after is not None and self.start_after is not None and p.start_after < self.start_after:
                raise FlexOfferError(f"profiles[{i}].start_after", "before the offer's start_after")
            latest = self.latest_start()
            if p.start_before is not None and latest is not None and p.start_before > latest:
                raise FlexOfferError(f"profiles[{i}].start_before", "after the offer's latest start")
            if self.start_after is not None and latest is not None:
                lo = max(self.start_after, p.start_after if p.start_after is not None else self.start_after)
                hi = min(latest, p.start_before if p.start_before is not None else latest)
                if hi < lo:
                    raise FlexOfferError(f"profiles[{i}]", "its start window does not overlap the offer's")
        _set(self, "profiles", profiles)

    def _check_baseline(self) -> None:
        from .feasibility import check_energy

        b = self.baseline
        if not isinstance(b, Baseline):
            raise FlexOfferError("baseline", "must be a Baseline")
        if b.profile >= len(self.profiles):
            raise FlexOfferError("baseline.profile", f"no profile {b.profile} (offer has {len(self.profiles)})")
        violations = check_energy(self.profiles[b.profile], b.energy)
        if b.start is not None:
            violations = self._check_start(b.start, b.profile, None, strict=False) + violations
        if violations:
            v = violations[0]
            raise FlexOfferError(f"baseline.{v.field}", f"the default schedule must be feasible: {v.reason}")

    # -- time window ------------------------------------------------------------------------
    def earliest_start(self, now: int | None = None, profile: int | None = None) -> int | None:
        """Earliest start interval; None if it depends on a ``now`` that was not given."""
        sa = self.start_after if self.start_after is not None else now
        if profile is not None and self.profiles[profile].start_after is not None:
            psa = self.profiles[profile].start_after
            sa = psa if sa is None else max(sa, psa)
        return sa

    def latest_start(self, now: int | None = None, profile: int | None = None) -> int | None:
        """Latest start interval (inclusive); None if it depends on a ``now`` that was not given."""
        if self.start_before is not None:
            sb: int | None = self.start_before
        else:
            base = self.start_after if self.start_after is not None else now
            sb = None if base is None else base + (self.start_before_duration or 0)
        if profile is not None and self.profiles[profile].start_before is not None:
            psb = self.profiles[profile].start_before
            sb = psb if sb is None else min(sb, psb)
        return sb

    @property
    def is_implicit(self) -> bool:
        """True if the start window is only known relative to "now" (implicit time flexibility)."""
        return self.start_after is None

    def resolve(self, now: int) -> "FlexOffer":
        """Make implicit time flexibility explicit at interval ``now`` (done on acceptance)."""
        if not self.is_implicit and self.start_before is not None:
            return self
        return replace(
            self,
            start_after=self.earliest_start(now),
            start_before=self.latest_start(now),
            start_before_duration=None,
        )

    # -- lifecycle --------------------------------------------------------------------------
    def with_state(self, state: State | str) -> "FlexOffer":
        """Return this offer in ``state``; illegal transitions raise :class:`FlexOfferError`."""
        try:
            new = State(state)
        except ValueError:
            raise FlexOfferError("state", f"unknown state {state!r}") from None
        if new not in TRANSITIONS[self.state]:
            allowed = ", ".join(sorted(s.value for s in TRANSITIONS[self.state])) or "none (final state)"
            raise FlexOfferError("state", f"illegal transition {self.state.value} -> {new.value} (allowed: {allowed})")
        return replace(self, state=new)

    def revised(self, **changes) -> "FlexOffer":
        """An updated offer: same id, ``version`` + 1, back to ``offered`` if it had been offered.

        Updates are only possible before an assignment; afterwards the schedule binds.
        """
        if self.state not in (State.INITIAL, State.OFFERED, State.ACCEPTED):
            raise FlexOfferError("state", f"an offer in state {self.state.value} can no longer be updated")
        if "id" in changes and changes["id"] != self.id:
            raise FlexOfferError("id", "an update keeps the offer id")
        state = State.INITIAL if self.state is State.INITIAL else State.OFFERED
        return replace(self, **{"state": state, **changes, "version": self.version + 1})

    # -- feasibility ------------------------------------------------------------------------
    def check(self, schedule: "Schedule", now: int | None = None) -> list["Violation"]:
        """Every constraint ``schedule`` violates, each with a readable reason; empty = feasible.

        ``now`` (an interval) is needed only for offers with implicit time flexibility.
        Comparisons use :data:`TOLERANCE`.
        """
        from .feasibility import check_schedule

        return check_schedule(self, schedule, now)

    def is_feasible(self, schedule: "Schedule", now: int | None = None) -> bool:
        return not self.check(schedule, now)

    def _check_start(self, start: int, profile: int, now: int | None, *, strict: bool = True) -> list["Violation"]:
        from .feasibility import check_start

        return check_start(self, start, profile, now, strict=strict)

    # -- measures (see vmenergy.flexoffer.measures for definitions) ---------------------------
    @property
    def time_flexibility(self) -> int:
        from .measures import time_flexibility

        return time_flexibility(self)

    @property
    def energy_flexibility(self) -> float:
        from .measures import energy_flexibility

        return energy_flexibility(self)

    @property
    def product_flexibility(self) -> float:
        from .measures import product_flexibility

        return product_flexibility(self)

    @property
    def min_total_energy(self) -> float:
        return min(p.min_total for p in self.profiles)

    @property
    def max_total_energy(self) -> float:
        return max(p.max_total for p in self.profiles)

    @property
    def direction(self) -> str:
        """"consumption", "production" or "mixed", from the slice bounds of every profile."""
        lo = min(s.min for p in self.profiles for s in p.slices)
        hi = max(s.max for p in self.profiles for s in p.slices)
        if lo >= 0:
            return "consumption"
        if hi <= 0:
            return "production"
        return "mixed"

    # -- codecs (the wire package does the work; these are the documented entry points) -----
    @classmethod
    def from_json(cls, text: str | bytes) -> "FlexOffer":
        from vmenergy.wire.json import parse_offer

        return parse_offer(text)

    def to_json(self, *, indent: int | None = None) -> str:
        from vmenergy.wire.json import offer_to_json

        return offer_to_json(self, indent=indent)

    @classmethod
    def from_dict(cls, data: object) -> "FlexOffer":
        from vmenergy.wire.json import offer_from_dict

        return offer_from_dict(data)

    def to_dict(self) -> dict:
        from vmenergy.wire.json import offer_to_dict

        return offer_to_dict(self)

    def _time(self, interval: int) -> str:
        return format_utc(interval * self.resolution)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"

