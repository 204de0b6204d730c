"""Columnar (numpy) views of many offers and many schedules, for bulk work.

An aggregator handles 10^5..10^6 offers; a Python object per slice costs ~100 bytes and every loop
over them costs microseconds per slice. ``FlexOfferSet`` keeps what bulk algorithms touch in flat
arrays, ragged in CSR style (offers -> profiles -> slices via offset arrays), and the rarely used
parts (labels, deadlines, baselines, prices, polytopes, discrete values) in a sparse sidecar, so a
set converts back to the same :class:`FlexOffer` objects without loss.

``ScheduleSet`` does the same for schedules and :func:`check` tests a million schedules against
their offers with array operations, using exactly the rules and tolerance of
:meth:`FlexOffer.check` (offers with polytopes or discrete values are checked by the scalar code,
offer by offer: they are rare and their constraints are not columnar).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from .errors import FlexOfferError
from .limits import MAX_ABS_ENERGY, TOLERANCE
from .model import FlexOffer, State
from .parts import Polytope, Profile, Slice, TotalEnergy
from .ragged import expand_rows, offsets_from_counts, positions, segment_sum
from .schedule import Schedule
from .timeutil import DEFAULT_RESOLUTION

__all__ = ["NA", "FlexOfferSet", "ScheduleSet", "CheckResult", "check", "Flag"]

#: "absent" in int64 time columns (an omitted start_after/start_before/duration).
NA = np.iinfo(np.int64).min

_STATES = list(State)
_STATE_CODE = {s: i for i, s in enumerate(_STATES)}
_SIDECAR_FIELDS = ("label", "creation_time", "acceptance_before", "assignment_before", "baseline", "prices")


def _na(values: Iterable[Optional[int]]) -> np.ndarray:
    return np.fromiter((NA if v is None else v for v in values), dtype=np.int64)


def _opt(value: int) -> Optional[int]:
    return None if value == NA else int(value)


@dataclass(eq=False)
class FlexOfferSet:
    """Many flex-offers as arrays. Index ``i`` is the i-th offer; profiles and slices are ragged.

    Per offer (n): ``ids``, ``issuers`` (object arrays), ``resolution``, ``start_after``,
    ``start_before``, ``start_before_duration`` (int64, :data:`NA` = absent), ``state`` (int8 code
    into :class:`State` order), ``version``, ``profile_offsets`` (n+1).
    Per profile (P): ``profile_start_after``, ``profile_start_before`` (NA = absent),
    ``total_min``/``total_max`` (-inf/+inf = absent), ``slice_offsets`` (P+1).
    Per slice (S): ``duration`` (int32), ``min``, ``max`` (float64, kWh over the slice).
    ``sidecar``: offer index -> dict of the sparse fields.
    """

    ids: np.ndarray
    issuers: np.ndarray
    resolution: np.ndarray
    start_after: np.ndarray
    start_before: np.ndarray
    start_before_duration: np.ndarray
    state: np.ndarray
    version: np.ndarray
    profile_offsets: np.ndarray
    profile_start_after: np.ndarray
    profile_start_before: np.ndarray
    total_min: np.ndarray
    total_max: np.ndarray
    slice_offsets: np.ndarray
    duration: np.ndarray
    min: np.ndarray
    max: np.ndarray
    sidecar: dict[int, dict[str, Any]] = field(default_factory=dict)

    # -- shape ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_profiles(self) -> int:
        return len(self.slice_offsets) - 1

    @property
    def n_slices(self) -> int:
        return len(self.duration)

    @property
    def profiles_per_offer(self) -> np.ndarray:
        return np.diff(self.profile_offsets)

    @property
    def slice_count(self) -> np.ndarray:
        """Slices per profile (length P)."""
        return np.diff(self.slice_offsets)

    @property
    def first_profile(self) -> np.ndarray:
        """Index (into the profile arrays) of each offer's first profile (length n)."""
        return self.profile_offsets[:-1]

    @property
    def offer_of_profile(self) -> np.ndarray:
        return np.repeat(np.arange(len(self), dtype=np.int64), self.profiles_per_offer)

    @property
    def profile_of_slice(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_profiles, dtype=np.int64), self.slice_count)

    @property
    def profile_duration(self) -> np.ndarray:
        """Length of every profile in intervals (sum of its slice durations)."""
        return segment_sum(self.duration.astype(np.int64), self.slice_offsets)

    @property
    def nbytes(self) -> int:
        arrays = [getattr(self, f) for f in self.__dataclass_fields__ if f != "sidecar"]
        return int(sum(a.nbytes for a in arrays))

    def padded(self, which: str = "max", fill: float = np.nan, profiles: Optional[np.ndarray] = None) -> np.ndarray:
        """``min`` or ``max`` (or ``duration``) as a (profiles x longest profile) matrix.

        ``profiles`` selects rows (default: each offer's first profile). Missing slots get ``fill``.
        """
        data = {"min": self.min, "max": self.max, "duration": self.duration}[which]
        rows = self.first_profile if profiles is None else np.asarray(profiles, dtype=np.int64)
        counts = self.slice_count[rows]
        width = int(counts.max()) if len(rows) else 0
        out = np.full((len(rows), width), fill, dtype=np.float64 if which != "duration" else np.float64)
        r, c = positions(counts)
        src = np.repeat(self.slice_offsets[rows], counts) + c
        out[r, c] = data[src]
        return out

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def from_offers(cls, offers: Iterable[FlexOffer]) -> "FlexOfferSet":
        """Columnar copy of ``offers`` (any iterable of valid FlexOffer objects)."""
        offers = list(offers)
        ids, issuers, res, sa, sb, sbd, st, ver = [], [], [], [], [], [], [], []
        p_off, psa, psb, tmin, tmax, s_off = [0], [], [], [], [], [0]
        dur: list[int] = []
        lo: list[float] = []
        hi: list[float] = []
        sidecar: dict[int, dict[str, Any]] = {}
        for i, fo in enumerate(offers):
            if not isinstance(fo, FlexOffer):
                raise FlexOfferError(f"[{i}]", f"not a FlexOffer: {type(fo).__name__}")
            ids.append(fo.id)
            issuers.append(fo.issuer)
            res.append(fo.resolution)
            sa.append(fo.start_after)
            sb.append(fo.start_before)
            sbd.append(fo.start_before_duration)
            st.append(_STATE_CODE[fo.state])
            ver.append(fo.version)
            extra = {k: getattr(fo, k) for k in _SIDECAR_FIELDS if getattr(fo, k) is not None}
            for j, p in enumerate(fo.profiles):
                psa.append(p.start_after)
                psb.append(p.start_before)
                t = p.total
                tmin.append(-np.inf if t is None or t.min is None else t.min)
                tmax.append(np.inf if t is None or t.max is None else t.max)
                if p.polytope is not None:
                    extra.setdefault("polytopes", {})[j] = p.polytope
                for k, s in enumerate(p.slices):
                    dur.append(s.duration)
                    lo.append(s.min)
                    hi.append(s.max)
                    if s.values is not None:
                        extra.setdefault("values", {})[(j, k)] = s.values
                s_off.append(len(dur))
            p_off.append(len(psa))
            if extra:
                sidecar[i] = extra
        return cls(
            ids=np.array(ids, dtype=object),
            issuers=np.array(issuers, dtype=object),
            resolution=np.array(res, dtype=np.int64),
            start_after=_na(sa),
            start_before=_na(sb),
            start_before_duration=_na(sbd),
            state=np.array(st, dtype=np.int8),
            version=np.array(ver, dtype=np.int64),
            profile_offsets=np.array(p_off, dtype=np.int64),
            profile_start_after=_na(psa),
            profile_start_before=_na(psb),
            total_min=np.array(tmin, dtype=np.float64),
            total_max=np.array(tmax, dtype=np.float64),
            slice_offsets=np.array(s_off, dtype=np.int64),
            duration=np.array(dur, dtype=np.int32),
            min=np.array(lo, dtype=np.float64),
            max=np.array(hi, dtype=np.float64),
            sidecar=sidecar,
        )

    @classmethod
    def from_arrays(
        cls,
        *,
        ids: Sequence[str],
        start_after: np.ndarray,
        start_before: np.ndarray,
        slice_count: np.ndarray,
        min: np.ndarray,
        max: np.ndarray,
        duration: Optional[np.ndarray] = None,
        total_min: Optional[np.ndarray] = None,
        total_max: Optional[np.ndarray] = None,
        resolution: int = DEFAULT_RESOLUTION,
        issuers: Optional[Sequence[Optional[str]]] = None,
    ) -> "FlexOfferSet":
        """Single-profile offers straight from arrays (simulations, benchmarks, device fleets).

        Validated with array operations under the same rules as :class:`FlexOffer`; the first
        bad offer is named in the error (``[i].profiles[0].slices[k]``).
        """
        n = len(ids)
        counts = np.asarray(slice_count, dtype=np.int64)
        sa = np.asarray(start_after, dtype=np.int64)
        sb = np.asarray(start_before, dtype=np.int64)
        lo = np.ascontiguousarray(min, dtype=np.float64)
        hi = np.ascontiguousarray(max, dtype=np.float64)
        dur = np.ones(len(lo), dtype=np.int32) if duration is None else np.asarray(duration, dtype=np.int32)
        if not (len(counts) == len(sa) == len(sb) == n):
            raise FlexOfferError("ids", "ids, start_after, start_before and slice_count differ in length")
        if not (len(lo) == len(hi) == len(dur) == int(counts.sum())):
            raise FlexOfferError("min", "min, max and duration must have sum(slice_count) entries")
        if resolution <= 0:
            raise FlexOfferError("resolution", f"must be > 0 (got {resolution} s)")
        s_off = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=s_off[1:])
        tmin = np.full(n, -np.inf) if total_min is None else np.asarray(total_min, dtype=np.float64)
        tmax = np.full(n, np.inf) if total_max is None else np.asarray(total_max, dtype=np.float64)
        out = cls(
            ids=np.asarray(ids, dtype=object),
            issuers=np.full(n, None, dtype=object) if issuers is None else np.asarray(issuers, dtype=object),
            resolution=np.full(n, resolution, dtype=np.int64),
            start_after=sa,
            start_before=sb,
            start_before_duration=np.full(n, NA, dtype=np.int64),
            state=np.zeros(n, dtype=np.int8),
            version=np.zeros(n, dtype=np.int64),
            profile_offsets=np.arange(n + 1, dtype=np.int64),
            profile_start_after=np.full(n, NA, dtype=np.int64),
            profile_start_before=np.full(n, NA, dtype=np.int64),
            total_min=tmin,
            total_max=tmax,
            slice_offsets=s_off,
            duration=dur,
            min=lo,
            max=hi,
        )
        out.validate()
        return out

    def validate(self) -> None:
        """Vectorised structural validation of the columns (the rules of :class:`FlexOffer`
        that are columnar); raises naming the first offending offer."""
        def fail(mask: np.ndarray, level: str, path: str, reason: str) -> None:
            bad = np.flatnonzero(mask)
            if len(bad) == 0:
                return
            k = int(bad[0])
            if level == "slice":
                p = int(np.searchsorted(self.slice_offsets, k, side="right") - 1)
                o = int(np.searchsorted(self.profile_offsets, p, side="right") - 1)
                where = f"[{o}].profiles[{p - self.profile_offsets[o]}].slices[{k - self.slice_offsets[p]}]"
            elif level == "profile":
                o = int(np.searchsorted(self.profile_offsets, k, side="right") - 1)
                where = f"[{o}].profiles[{k - self.profile_offsets[o]}]"
            else:
                where = f"[{k}]"
            raise FlexOfferError(where + (f".{path}" if path else ""), f"{reason} ({len(bad)} such)")

        fail(np.asarray([not isinstance(i, str) or not i for i in self.ids]), "offer", "id", "required")
        fail(self.resolution <= 0, "offer", "resolution", "must be > 0")
        fail(self.profiles_per_offer < 1, "offer", "profiles", "at least one profile")
        fail((self.start_after != NA) & (self.start_before != NA) & (self.start_before < self.start_after),
             "offer", "start_before", "start_before before start_after")
        fail(self.slice_count < 1, "profile", "slices", "at least one slice")
        fail(~np.isfinite(self.min) | (np.abs(self.min) > MAX_ABS_ENERGY), "slice", "min", "not a finite number")
        fail(~np.isfinite(self.max) | (np.abs(self.max) > MAX_ABS_ENERGY), "slice", "max", "not a finite number")
        fail(self.duration < 1, "slice", "duration", "duration must be >= 1 interval")
        fail(self.min > self.max, "slice", "", "min > max")
        fail(np.isnan(self.total_min) | np.isnan(self.total_max), "profile", "total", "not a number")
        fail(self.total_min > self.total_max, "profile", "total", "min > max")
        smin = segment_sum(self.min, self.slice_offsets)
        smax = segment_sum(self.max, self.slice_offsets)
        fail((self.total_min > smax + TOLERANCE) | (self.total_max < smin - TOLERANCE),
             "profile", "total", "outside the sum of slice bounds")

    # -- back to objects --------------------------------------------------------------------
    def offer(self, i: int) -> FlexOffer:
        """The i-th offer as a :class:`FlexOffer` (equal to the one the set was built from)."""
        i = int(i)
        extra = self.sidecar.get(i, {})
        polytopes = extra.get("polytopes", {})
        values = extra.get("values", {})
        profiles = []
        for j, p in enumerate(range(self.profile_offsets[i], self.profile_offsets[i + 1])):
            a, b = self.slice_offsets[p], self.slice_offsets[p + 1]
            slices = tuple(
                Slice(int(d), float(lo), float(hi), values.get((j, k)))
                for k, (d, lo, hi) in enumerate(zip(self.duration[a:b], self.min[a:b], self.max[a:b]))
            )
            tmin, tmax = float(self.total_min[p]), float(self.total_max[p])
            total = None
            if np.isfinite(tmin) or np.isfinite(tmax):
                total = TotalEnergy(tmin if np.isfinite(tmin) else None, tmax if np.isfinite(tmax) else None)
            profiles.append(
                Profile(
                    slices,
                    total=total,
                    polytope=polytopes.get(j),
                    start_after=_opt(self.profile_start_after[p]),
                    start_before=_opt(self.profile_start_before[p]),
                )
            )
        return FlexOffer(
            id=self.ids[i],
            profiles=tuple(profiles),
            issuer=self.issuers[i],
            state=_STATES[int(self.state[i])],
            version=int(self.version[i]),
            resolution=int(self.resolution[i]),
            start_after=_opt(self.start_after[i]),
            start_before=_opt(self.start_before[i]),
            start_before_duration=_opt(self.start_before_duration[i]),
            **{k: v for k, v in extra.items() if k in _SIDECAR_FIELDS},
        )

    def to_offers(self) -> list[FlexOffer]:
        return [self.offer(i) for i in range(len(self))]

    def __iter__(self):
        return (self.offer(i) for i in range(len(self)))

    def index(self) -> dict[str, int]:
        """Offer id -> row."""
        return {oid: i for i, oid in enumerate(self.ids)}

    def take(self, rows: Sequence[int] | np.ndarray) -> "FlexOfferSet":
        """A new set of the offers at ``rows`` (in that order); a boolean mask works too."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64)
        prof = expand_rows(self.profile_offsets, rows)
        slc = expand_rows(self.slice_offsets, prof)
        p_off = offsets_from_counts(self.profiles_per_offer[rows])
        s_off = offsets_from_counts(self.slice_count[prof])
        sidecar = {new: self.sidecar[int(old)] for new, old in enumerate(rows) if int(old) in self.sidecar}
        return FlexOfferSet(
            ids=self.ids[rows], issuers=self.issuers[rows], resolution=self.resolution[rows],
            start_after=self.start_after[rows], start_before=self.start_before[rows],
            start_before_duration=self.start_before_duration[rows], state=self.state[rows],
            version=self.version[rows], profile_offsets=p_off,
            profile_start_after=self.profile_start_after[prof], profile_start_before=self.profile_start_before[prof],
            total_min=self.total_min[prof], total_max=self.total_max[prof], slice_offsets=s_off,
            duration=self.duration[slc], min=self.min[slc], max=self.max[slc], sidecar=sidecar,
        )

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            n = len(self)
            if not -n <= key < n:
                raise IndexError(key)
            return self.offer(int(key) % n)
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        return self.take(key)

    @classmethod
    def concat(cls, sets: Sequence["FlexOfferSet"]) -> "FlexOfferSet":
        if not sets:
            return cls.from_offers([])
        base_o = np.cumsum([0] + [len(s) for s in sets])
        base_p = np.cumsum([0] + [s.n_profiles for s in sets])
        base_s = np.cumsum([0] + [s.n_slices for s in sets])
        sidecar = {int(base_o[k]) + i: v for k, s in enumerate(sets) for i, v in s.sidecar.items()}
        cat = np.concatenate
        return cls(
            **{f: cat([getattr(s, f) for s in sets]) for f in (
                "ids", "issuers", "resolution", "start_after", "start_before", "start_before_duration", "state",
                "version", "profile_start_after", "profile_start_before", "total_min", "total_max", "duration",
                "min", "max")},
            profile_offsets=cat([[0]] + [s.profile_offsets[1:] + base_p[k] for k, s in enumerate(sets)]).astype(np.int64),
            slice_offsets=cat([[0]] + [s.slice_offsets[1:] + base_s[k] for k, s in enumerate(sets)]).astype(np.int64),
            sidecar=sidecar,
        )

    def all_windows_explicit(self) -> bool:
        """True if every offer has start_after and start_before and no profile narrows them
        (the common case, which lets bulk code skip the implicit-window arithmetic)."""
        return bool(
            not (self.start_after == NA).any()
            and not (self.start_before == NA).any()
            and (self.profile_start_after == NA).all()
            and (self.profile_start_before == NA).all()
        )

    def has_scalar_constraints(self) -> np.ndarray:
        """Per offer: True if it has a polytope or discrete values (not checked columnar)."""
        mask = np.zeros(len(self), dtype=bool)
        for i, extra in self.sidecar.items():
            if "polytopes" in extra or "values" in extra:
                mask[i] = True
        return mask


@dataclass(eq=False)
class ScheduleSet:
    """Many schedules as arrays: ``offer_index`` (row in a :class:`FlexOfferSet`), ``start``,
    ``profile``, ``resolution``, ragged ``energy`` with ``energy_offsets`` (m+1)."""

    offer_index: np.ndarray
    start: np.ndarray
    profile: np.ndarray
    resolution: np.ndarray
    energy_offsets: np.ndarray
    energy: np.ndarray
    schedule_ids: Optional[np.ndarray] = None
    update_ids: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.offer_index)

    @classmethod
    def from_schedules(cls, schedules: Iterable[Schedule], offers: FlexOfferSet) -> "ScheduleSet":
        """Columnar copy; each schedule's ``offer_id`` is looked up in ``offers`` (-1 if unknown)."""
        schedules = list(schedules)
        idx = offers.index()
        lengths = [len(s.energy) for s in schedules]
        return cls(
            offer_index=np.array([idx.get(s.offer_id, -1) for s in schedules], dtype=np.int64),
            start=np.array([s.start for s in schedules], dtype=np.int64),
            profile=np.array([s.profile for s in schedules], dtype=np.int64),
            resolution=np.array([s.resolution for s in schedules], dtype=np.int64),
            energy_offsets=offsets_from_counts(np.array(lengths, dtype=np.int64)),
            energy=np.fromiter((e for s in schedules for e in s.energy), dtype=np.float64, count=sum(lengths)),
            schedule_ids=np.array([s.schedule_id for s in schedules], dtype=object),
            update_ids=np.array([s.update_id for s in schedules], dtype=np.int64),
        )

    @classmethod
    def from_arrays(cls, *, offer_index: np.ndarray, start: np.ndarray, energy_offsets: np.ndarray,
                    energy: np.ndarray, profile: Optional[np.ndarray] = None,
                    resolution: int = DEFAULT_RESOLUTION, schedule_ids: Optional[Sequence[Optional[str]]] = None,
                    update_ids: Optional[np.ndarray] = None) -> "ScheduleSet":
        m = len(offer_index)
        return cls(
            offer_index=np.asarray(offer_index, dtype=np.int64),
            start=np.asarray(start, dtype=np.int64),
            profile=np.zeros(m, dtype=np.int64) if profile is None else np.asarray(profile, dtype=np.int64),
            resolution=np.full(m, resolution, dtype=np.int64),
            energy_offsets=np.asarray(energy_offsets, dtype=np.int64),
            energy=np.ascontiguousarray(energy, dtype=np.float64),
            schedule_ids=None if schedule_ids is None else np.asarray(schedule_ids, dtype=object),
            update_ids=None if update_ids is None else np.asarray(update_ids, dtype=np.int64),
        )

    def schedule(self, k: int, offers: FlexOfferSet) -> Schedule:
        a, b = self.energy_offsets[k], self.energy_offsets[k + 1]
        oi = int(self.offer_index[k])
        return Schedule(
            offer_id=offers.ids[oi] if 0 <= oi < len(offers) else f"unknown-{oi}",
            start=int(self.start[k]),
            energy=tuple(self.energy[a:b].tolist()),
            schedule_id=None if self.schedule_ids is None else self.schedule_ids[k],
            update_id=0 if self.update_ids is None else int(self.update_ids[k]),
            profile=int(self.profile[k]),
            resolution=int(self.resolution[k]),
        )


class Flag:
    """Bits of :attr:`CheckResult.flags`, one per kind of violation (names as in Violation.field)."""

    OFFER = 1 << 0  # offer_index does not point into the set
    RESOLUTION = 1 << 1
    PROFILE = 1 << 2
    START = 1 << 3
    LENGTH = 1 << 4  # "energy": wrong number of values
    SLICE = 1 << 5  # "energy[i]": a slice bound
    TOTAL = 1 << 6
    POLYTOPE = 1 << 7
    VALUES = 1 << 8

    NAMES = {OFFER: "offer_id", RESOLUTION: "resolution", PROFILE: "profile", START: "start", LENGTH: "energy",
             SLICE: "energy[i]", TOTAL: "total", POLYTOPE: "polytope", VALUES: "energy[i] values"}


@dataclass(eq=False)
class CheckResult:
    """Per-schedule violation bits from :func:`check`; 0 means feasible."""

    flags: np.ndarray

    @property
    def feasible(self) -> np.ndarray:
        return self.flags == 0

    @property
    def n_feasible(self) -> int:
        return int(np.count_nonzero(self.flags == 0))

    def violated(self, k: int) -> list[str]:
        """Names of the constraints schedule ``k`` violates."""
        f = int(self.flags[k])
        return [name for bit, name in Flag.NAMES.items() if f & bit]

    def counts(self) -> dict[str, int]:
        return {name: int(np.count_nonzero(self.flags & bit)) for bit, name in Flag.NAMES.items()}


def check(offers: FlexOfferSet, schedules: ScheduleSet, now: Optional[int] = None) -> CheckResult:
    """Feasibility of every schedule against its offer, vectorised (see module docstring)."""
    m = len(schedules)
    n = len(offers)
    flags = np.zeros(m, dtype=np.uint16)
    oi = schedules.offer_index
    ok_offer = (oi >= 0) & (oi < n)
    flags[~ok_offer] |= Flag.OFFER
    o = np.where(ok_offer, oi, 0)
    if n == 0:
        return CheckResult(flags)
    flags[ok_offer & (schedules.resolution != offers.resolution[o])] |= Flag.RESOLUTION
    n_prof = offers.profile_offsets[o + 1] - offers.profile_offsets[o]
    ok_prof = ok_offer & (schedules.profile >= 0) & (schedules.profile < n_prof)
    flags[ok_offer & ~ok_prof] |= Flag.PROFILE
    p = offers.profile_offsets[o] + np.where(ok_prof, schedules.profile, 0)

    # start window: [earliest, latest], profile windows narrow the offer's
    start = schedules.start
    sa = offers.start_after[o]
    sb = offers.start_before[o]
    if offers.all_windows_explicit():
        bad_start = (start < sa) | (start > sb)
    else:
        now_v = NA if now is None else int(now)
        base = np.where(sa == NA, now_v, sa)
        dur = offers.start_before_duration[o]
        latest = np.where(sb != NA, sb, np.where(base != NA, base + np.where(dur == NA, 0, dur), NA))
        psa = offers.profile_start_after[p]
        psb = offers.profile_start_before[p]
        earliest = np.where(psa == NA, base, np.where(base == NA, psa, np.maximum(base, psa)))
        latest = np.where(psb == NA, latest, np.where(latest == NA, psb, np.minimum(latest, psb)))
        bad_start = (earliest == NA) | (latest == NA) | (start < earliest) | ((latest != NA) & (start > latest))
    flags[ok_prof & bad_start] |= Flag.START

    # energy length
    elen = np.diff(schedules.energy_offsets)
    n_sl = offers.slice_offsets[p + 1] - offers.slice_offsets[p]
    ok_len = ok_prof & (elen == n_sl)
    flags[ok_prof & ~ok_len] |= Flag.LENGTH

    # slice bounds and totals, in cache-sized chunks of schedules
    e = schedules.energy
    if len(e):
        src = np.where(ok_len, offers.slice_offsets[p], schedules.energy_offsets[:-1])
        slice_bad, totals = _bounds_and_totals(offers, e, schedules.energy_offsets, src)
        flags[slice_bad & ok_len] |= Flag.SLICE
        tot_bad = (totals < offers.total_min[p] - TOLERANCE) | (totals > offers.total_max[p] + TOLERANCE)
        flags[ok_len & tot_bad] |= Flag.TOTAL

    # polytopes and discrete values: scalar rules, only for the offers that have them
    if offers.sidecar:
        special = offers.has_scalar_constraints()
        for k in np.flatnonzero(ok_len & special[o]).tolist():
            extra = offers.sidecar[int(o[k])]
            j = int(schedules.profile[k])
            a, b = schedules.energy_offsets[k], schedules.energy_offsets[k + 1]
            energy = e[a:b].tolist()
            for (pj, sk), vals in extra.get("values", {}).items():
                if pj == j and not any(abs(energy[sk] - v) <= TOLERANCE for v in vals):
                    flags[k] |= Flag.VALUES
            poly: Optional[Polytope] = extra.get("polytopes", {}).get(j)
            if poly is not None:
                for r, (row, bj) in enumerate(zip(poly.A, poly.b)):
                    if sum(x * y for x, y in zip(row, energy)) > bj + poly.row_tolerance(r):
                        flags[k] |= Flag.POLYTOPE
                        break
    return CheckResult(flags)


#: Energy values per chunk in :func:`_bounds_and_totals`: a few MB per temporary array, so the
#: dozen passes over each chunk run in cache instead of streaming 18M-element arrays from RAM.
_CHUNK = 1 << 16


def _bounds_and_totals(
    offers: FlexOfferSet, e: np.ndarray, e_off: np.ndarray, src: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per schedule: whether any value lies outside its slice's bounds (with tolerance), and the
    sum of its values. ``src[k]`` is the offer-slice index of schedule k's first value; schedules
    whose length does not match point anywhere (callers mask them out)."""
    m = len(e_off) - 1
    first = e_off[:-1]
    ends = e_off[1:]
    elen = ends - first
    slice_bad = np.zeros(m, dtype=bool)
    totals = np.zeros(m)
    aligned = bool(np.array_equal(src, first)) and len(e) <= offers.n_slices
    buf = np.empty(min(len(e), _CHUNK * 2))
    k0 = 0
    while k0 < m:
        k1 = int(np.searchsorted(ends, first[k0] + _CHUNK, side="right"))
        k1 = max(k1, k0 + 1)
        a, b = int(first[k0]), int(ends[k1 - 1])
        if b == a:
            k0 = k1
            continue
        ek = e[a:b]
        lo = buf[: b - a] if b - a <= len(buf) else np.empty(b - a)
        if aligned:  # schedules laid out like their offers' slices: no gather needed
            np.subtract(offers.min[a:b], TOLERANCE, out=lo)
            bad = ek < lo
            np.add(offers.max[a:b], TOLERANCE, out=lo)
        else:
            idx = np.repeat(src[k0:k1] - first[k0:k1], elen[k0:k1])
            idx += np.arange(a, b, dtype=np.int64)
            # mode="clip": wrong-length schedules may point past the end (masked by the
            # caller); it is also numpy's fast path (mode="raise" with out= is much slower)
            np.take(offers.min, idx, out=lo, mode="clip")
            lo -= TOLERANCE
            bad = ek < lo
            np.take(offers.max, idx, out=lo, mode="clip")
            lo += TOLERANCE
        bad |= ek > lo
        nonempty = elen[k0:k1] > 0
        seg = first[k0:k1][nonempty] - a
        slice_bad[k0:k1][nonempty] = np.logical_or.reduceat(bad, seg)
        totals[k0:k1][nonempty] = np.add.reduceat(ek, seg)
        k0 = k1
    return slice_bad, totals
