"""The flex-offer: one common, immutable representation of flexibility.

Follows the MIRABEL/TotalFlex flex-offer with the GOFLEX extensions (implicit time flexibility,
polytopic/dependency constraints, exclusive-OR profiles). Objects are frozen dataclasses that
validate themselves on construction, so an instance that exists is a valid offer; parsers and
builders can therefore never hand an invalid offer to the rest of the system. The parts an offer
is made of (slices, profiles, baseline, prices) are in :mod:`.parts`.

Units: energy in kWh over a whole slice (+ consumption, - production), money in EUR per kWh,
time windows in integer intervals of ``resolution`` seconds since the Unix epoch, lifecycle
deadlines in whole epoch seconds. See ``docs/protocol.md`` for the wire forms.

The JSON form is the model's canonical form: the wire, the store and a run folder's
``offers.jsonl`` all carry it, and ``FlexOffer.from_json`` is the documented way in. So the model
owns its codec (each class reads and writes its own fields, with the strict rules of
:mod:`.jsontext`) and the dependency runs one way: :mod:`vmenergy.wire` imports the model, never
the reverse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Optional, overload

from vmenergy.validation import set_field

from . import jsontext as jt
from .checked import is_checked
from .errors import FlexOfferError, check
from .limits import MAX_LABEL_LENGTH, MAX_PROFILES, MAX_RESOLUTION
from .parts import Baseline, Prices, Profile, known_point
from .schedule import Schedule
from .timeutil import DEFAULT_RESOLUTION, format_duration, format_utc, parse_duration
from .violation import Violation

__all__ = ["State", "TRANSITIONS", "FlexOffer"]

# Text that XML 1.0 can carry in an attribute and that survives attribute normalisation.
_LABEL_OK = re.compile(r"[^\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]*\Z")

OFFER_FIELDS = (
    "id", "issuer", "label", "state", "version", "resolution", "creation_time", "acceptance_before",
    "assignment_before", "start_after", "start_before", "start_before_duration", "profiles", "baseline", "prices",
)


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
        if is_checked():  # read back from VME's own store: only the state's text becomes a State
            set_field(self, "state", State(self.state))
            return
        set_field(self, "id", check.identifier(self.id, "id"))
        set_field(self, "issuer", check.identifier(self.issuer, "issuer", required=False))
        label = check.text(self.label, "label", required=False) or None  # "" and absent mean the same
        if label is not None and len(label) > MAX_LABEL_LENGTH:
            raise FlexOfferError("label", f"longer than {MAX_LABEL_LENGTH} characters")
        if label is not None and not _LABEL_OK.match(label):
            raise FlexOfferError("label", "must not contain control characters")
        set_field(self, "label", label)
        try:
            set_field(self, "state", State(self.state))
        except ValueError:
            raise FlexOfferError("state", f"unknown state {self.state!r} (one of {', '.join(s.value for s in State)})") from None
        set_field(self, "version", check.integer(self.version, "version", minimum=0))
        res = check.integer(self.resolution, "resolution", maximum=MAX_RESOLUTION)
        if res <= 0:
            raise FlexOfferError("resolution", f"must be > 0 (got {res} s)")
        set_field(self, "resolution", res)
        for name in ("creation_time", "acceptance_before", "assignment_before", "start_after", "start_before"):
            set_field(self, name, check.optional_integer(getattr(self, name), name))
        set_field(self, "start_before_duration",
                  check.optional_integer(self.start_before_duration, "start_before_duration", minimum=0))
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
        profiles = check.parts(self.profiles, "profiles", Profile, "profile", at_most=MAX_PROFILES)
        for i, p in enumerate(profiles):
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
        set_field(self, "profiles", profiles)

    def _check_baseline(self) -> None:
        b = self.baseline
        if not isinstance(b, Baseline):
            raise FlexOfferError("baseline", "must be a Baseline")
        if b.profile >= len(self.profiles):
            raise FlexOfferError("baseline.profile", f"no profile {b.profile} (offer has {len(self.profiles)})")
        violations = self.profiles[b.profile].check_energy(b.energy)
        if b.start is not None:
            violations = self._check_start(b.start, b.profile, None, strict=False) + violations
        if violations:
            v = violations[0]
            raise FlexOfferError(f"baseline.{v.field}", f"the default schedule must be feasible: {v.reason}")

    # -- time window ------------------------------------------------------------------------
    @overload
    def earliest_start(self, now: int, profile: int | None = None) -> int: ...
    @overload
    def earliest_start(self, now: None = None, profile: int | None = None) -> int | None: ...

    def earliest_start(self, now: int | None = None, profile: int | None = None) -> int | None:
        """Earliest start interval; None if it depends on a ``now`` that was not given."""
        sa = self.start_after if self.start_after is not None else now
        psa = None if profile is None else self.profiles[profile].start_after
        if psa is not None:
            sa = psa if sa is None else max(sa, psa)
        return sa

    @overload
    def latest_start(self, now: int, profile: int | None = None) -> int: ...
    @overload
    def latest_start(self, now: None = None, profile: int | None = None) -> int | None: ...

    def latest_start(self, now: int | None = None, profile: int | None = None) -> int | None:
        """Latest start interval (inclusive); None if it depends on a ``now`` that was not given."""
        if self.start_before is not None:
            sb: int | None = self.start_before
        else:
            base = self.start_after if self.start_after is not None else now
            sb = None if base is None else base + (self.start_before_duration or 0)
        psb = None if profile is None else self.profiles[profile].start_before
        if psb is not None:
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
        if type(self) is not FlexOffer:  # a subclass (an aggregate) keeps its own construction
            return replace(self, state=new)
        # only the state changes, and no rule of the offer depends on it: a copy with the new
        # state is as valid as this offer, without checking every field and profile again
        # (re-validation was most of an aggregator's cost per assignment, bench_aggregator_round)
        moved = object.__new__(FlexOffer)
        for name in FlexOffer.__slots__:
            object.__setattr__(moved, name, getattr(self, name))
        object.__setattr__(moved, "state", new)
        return moved

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
    def check(self, schedule: Schedule, now: int | None = None) -> list[Violation]:
        """Every constraint ``schedule`` violates, each with a readable reason; empty = feasible.

        ``now`` (an interval) is needed only for offers with implicit time flexibility.
        Comparisons use :data:`~.limits.TOLERANCE` (see :mod:`.violation`).
        """
        out: list[Violation] = []
        if schedule.offer_id != self.id:
            out.append(Violation("offer_id", f"schedule is for {schedule.offer_id!r}, not {self.id!r}"))
        if schedule.resolution != self.resolution:
            out.append(Violation("resolution", f"{schedule.resolution} s differs from the offer's {self.resolution} s"))
            return out  # start intervals are not comparable
        if schedule.profile >= len(self.profiles):
            out.append(Violation("profile", f"no profile {schedule.profile} (offer has {len(self.profiles)})"))
            return out
        out += self._check_start(schedule.start, schedule.profile, now)
        out += self.profiles[schedule.profile].check_energy(schedule.energy)
        return out

    def is_feasible(self, schedule: Schedule, now: int | None = None) -> bool:
        return not self.check(schedule, now)

    def _check_start(self, start: int, profile: int, now: int | None, *, strict: bool = True) -> list[Violation]:
        """Start-window check. With ``strict=False`` a window side that depends on an unknown
        ``now`` is not checked (used for an implicit offer's own baseline)."""
        lo = self.earliest_start(now, profile)
        hi = self.latest_start(now, profile)
        out = []
        if strict and (lo is None or hi is None):
            out.append(Violation("start", "the offer has implicit time flexibility; checking its start needs now"))
        if lo is not None and start < lo:
            out.append(Violation("start", f"{self._time(start)} is before the earliest start {self._time(lo)}"))
        if hi is not None and start > hi:
            out.append(Violation("start", f"{self._time(start)} is after the latest start {self._time(hi)}"))
        return out

    # -- measures (after the TotalFlex "measuring flexibility" work; see .measures) ------------
    def profile_time_flexibility(self, profile: int, now: int | None = None) -> int:
        """Intervals the start of ``profile`` can move (latest start - earliest start)."""
        lo = self.earliest_start(now, profile)
        hi = self.latest_start(now, profile)
        if lo is None or hi is None:
            if self.start_before is None and self.profiles[profile].start_before is None:
                # window is [now, now + duration]: its width does not depend on now
                return self.start_before_duration or 0
            raise FlexOfferError("start_after", "time flexibility of this implicit window depends on now; pass now")
        return max(0, hi - lo)

    def time_flexibility_at(self, now: int | None) -> int:
        """Intervals the start can move (max over profiles: the offer is as flexible as its most
        flexible exclusive-OR alternative)."""
        return max(self.profile_time_flexibility(i, now) for i in range(len(self.profiles)))

    def product_flexibility_at(self, now: int | None) -> float:
        """Time flexibility x energy flexibility (max over profiles), in interval·kWh: ranks offers
        flexible in both dimensions above offers flexible in one only."""
        return max(self.profile_time_flexibility(i, now) * p.energy_flexibility for i, p in enumerate(self.profiles))

    @property
    def time_flexibility(self) -> int:
        return self.time_flexibility_at(None)

    @property
    def energy_flexibility(self) -> float:
        """kWh between the slice minima and maxima (max over profiles)."""
        return max(p.energy_flexibility for p in self.profiles)

    @property
    def product_flexibility(self) -> float:
        return self.product_flexibility_at(None)

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

    # -- JSON form (the canonical form; see the module docstring) ----------------------------
    @classmethod
    def from_json(cls, text: str | bytes) -> "FlexOffer":
        """JSON text of one flex-offer (strict; only :class:`FlexOfferError` escapes)."""
        return jt.guard(lambda: cls.from_dict(jt.loads(text)))

    def to_json(self, *, indent: int | None = None) -> str:
        return jt.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> "FlexOffer":
        """A decoded JSON object to an offer (strict, like :meth:`from_json`; only
        :class:`FlexOfferError` escapes, whatever the object holds)."""
        return jt.guard(lambda: cls._from_dict(data))

    @classmethod
    def _from_dict(cls, data: Any) -> "FlexOffer":
        d = jt.obj(data, "", OFFER_FIELDS, required=("id",))
        res = jt.resolution_field(d)
        dur = None
        if d.get("start_before_duration") is not None:
            seconds = parse_duration(d["start_before_duration"], "start_before_duration")
            if seconds % res:
                raise FlexOfferError("start_before_duration", f"not a whole number of {res} s intervals")
            dur = seconds // res
        if "profiles" not in d:
            raise FlexOfferError("profiles", "required (at least one profile)")
        raw_profiles = jt.array(d["profiles"], "profiles")
        if len(raw_profiles) > MAX_PROFILES:
            raise FlexOfferError("profiles", f"more than {MAX_PROFILES} profiles ({len(raw_profiles)})")
        # the baseline, a schedule the issuer says its device follows, spares most polytope LPs;
        # its own error is raised after the profiles' (errors come in document order)
        baseline: Optional[Baseline] = None
        baseline_error: Optional[FlexOfferError] = None
        if d.get("baseline") is not None:
            try:
                baseline = Baseline.from_dict(d["baseline"], "baseline", res)
            except FlexOfferError as exc:
                baseline_error = exc
        with known_point(None if baseline is None else baseline.energy):
            profiles = tuple(Profile.from_dict(p, f"profiles[{i}]", res) for i, p in enumerate(raw_profiles))
        if baseline_error is not None:
            raise baseline_error
        prices = None if d.get("prices") is None else Prices.from_dict(d["prices"], "prices")
        return cls(
            id=d["id"],
            profiles=profiles,
            issuer=d.get("issuer"),
            label=d.get("label"),
            state=d.get("state", State.INITIAL),
            version=d.get("version", 0),
            resolution=res,
            creation_time=jt.instant_field(d, "creation_time"),
            acceptance_before=jt.instant_field(d, "acceptance_before"),
            assignment_before=jt.instant_field(d, "assignment_before"),
            start_after=jt.time_field(d, "start_after", "", res),
            start_before=jt.time_field(d, "start_before", "", res),
            start_before_duration=dur,
            baseline=baseline,
            prices=prices,
        )

    def to_dict(self) -> dict:
        """The offer as a JSON-ready dict (field order as in the protocol document); optional
        fields that are absent (or at their default state/version) are omitted."""
        res = self.resolution
        d: dict[str, Any] = {"id": self.id}
        if self.issuer is not None:
            d["issuer"] = self.issuer
        if self.label is not None:
            d["label"] = self.label
        if self.state is not State.INITIAL:
            d["state"] = self.state.value
        if self.version:
            d["version"] = self.version
        d["resolution"] = res
        for key in ("creation_time", "acceptance_before", "assignment_before"):
            value = getattr(self, key)
            if value is not None:
                d[key] = format_utc(value)
        for key in ("start_after", "start_before"):
            value = getattr(self, key)
            if value is not None:
                d[key] = format_utc(value * res)
        if self.start_before_duration is not None:
            d["start_before_duration"] = format_duration(self.start_before_duration * res)
        d["profiles"] = [p.to_dict(res) for p in self.profiles]
        if self.baseline is not None:
            d["baseline"] = self.baseline.to_dict(res)
        if self.prices is not None:
            d["prices"] = self.prices.to_dict()
        return d

    def _time(self, interval: int) -> str:
        return format_utc(interval * self.resolution)
