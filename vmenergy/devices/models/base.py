"""What every device model shares: parameters, the owner's settings, runs, and the step contract.

A device model is pure: no I/O, no clock. Time is integer intervals of ``Context.resolution``
seconds; energy is kWh per interval at the device's meter (+ consumption, - production). A model
holds its physical state at interval :attr:`Device.t` and gives

1. its **runs** in a horizon (:meth:`Device.plan`): each flexible activity the owner's day holds
   (an EV's stay at home, a wash cycle, a storage device's day), sampled from the owner's
   statistics with a generator seeded by (scenario seed, device id, horizon), with the interval
   at which its offer is made;
2. the **flex-offer** of a run built from the state at that moment (:meth:`Device.offer`), with
   its baseline (what the device does when nothing is scheduled) and prices from the owner's
   settings;
3. the **physics** of one interval (:meth:`Device.step`) under a command: kWh to draw (a
   schedule, or the normal programme a run fell back to) or ``None``: the device's own normal
   behaviour (a thermostat, full PV output, an idle charger).

Which command applies when is decided here once (:meth:`Device.command`), from the runs'
decisions: a schedule, the normal programme from some interval on, or nothing yet (an event
device such as an EV or a washer then waits, until its latest start at the latest; a continuous
device such as a heat pump keeps its normal behaviour). The shell (:mod:`vmenergy.devices.fleet`)
moves time, makes the offers and records decisions; the models never see a clock.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, time as dtime, timedelta, timezone, tzinfo
from typing import Any, ClassVar, Optional, Protocol, Sequence

import numpy as np

from vmenergy.errors import VmeError
from vmenergy.flexoffer import Baseline, FlexOffer, Polytope, Prices, Profile, Slice, SlicePrice, TotalEnergy
from vmenergy.flexoffer.parts import known_point, shared_slice
from vmenergy.flexoffer.shared import Pool
from vmenergy.validation import Checks

__all__ = [
    "DeviceError", "check", "param", "validate_params", "OwnerSettings", "Inputs", "Context", "Horizon", "Run",
    "Device", "seeded", "slice_durations", "per_slice", "offer_of", "meter_noise",
]


class DeviceError(VmeError):
    """A device model's parameters or inputs are unusable: ``path`` names the field."""


check = Checks(DeviceError)


def param(default: Any, *, unit: str = "", ge: Optional[float] = None, gt: Optional[float] = None,
          le: Optional[float] = None, lt: Optional[float] = None, doc: str = "") -> Any:
    """A model parameter: its default, unit, bounds and what it is (read by the docs and the
    scenario check, which accepts a number or a ``[low, high]`` range for it)."""
    meta = {k: v for k, v in dict(unit=unit, ge=ge, gt=gt, le=le, lt=lt, doc=doc).items() if v not in (None, "")}
    return field(default=default, metadata=meta)


def validate_params(obj: Any) -> None:
    """Check every field of a parameter dataclass against its bounds (``path``: the field)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(f.default, bool) or isinstance(value, (str, tuple)) or value is None:
            continue
        number = check.number(value, f.name)
        meta = f.metadata
        if "ge" in meta and number < meta["ge"]:
            raise DeviceError(f.name, f"must be >= {meta['ge']:g} (got {number:g})")
        if "gt" in meta and number <= meta["gt"]:
            raise DeviceError(f.name, f"must be > {meta['gt']:g} (got {number:g})")
        if "le" in meta and number > meta["le"]:
            raise DeviceError(f.name, f"must be <= {meta['le']:g} (got {number:g})")
        if "lt" in meta and number >= meta["lt"]:
            raise DeviceError(f.name, f"must be < {meta['lt']:g} (got {number:g})")
        if isinstance(f.default, int) and not isinstance(f.default, bool):
            object.__setattr__(obj, f.name, int(round(number)))
        elif isinstance(f.default, float):
            object.__setattr__(obj, f.name, float(number))


@dataclass(frozen=True)
class OwnerSettings:
    """What the owner tells the FOA, as in the GOFLEX FOA: how much a kWh of deviation from the
    device's normal behaviour costs them (``comfort_cost``) and how much they care (``priority``,
    1 = do with my devices what pays, 5 = touch them only when it pays well). The price of a
    flex-offer is ``comfort_cost * priority_factor ** (priority - 1)`` EUR/kWh, up and down."""

    comfort_cost: float = param(0.04, unit="EUR/kWh", ge=0, le=10, doc="price of one kWh of deviation")
    priority: int = param(3, ge=1, le=5, doc="1 (flexible) to 5 (protect my comfort)")
    priority_factor: float = param(1.5, ge=1, le=10, doc="price multiplier per priority step")

    def __post_init__(self) -> None:
        validate_params(self)

    def prices(self) -> Prices:
        p = round(self.comfort_cost * self.priority_factor ** (self.priority - 1), 6)
        return Prices((SlicePrice(p, p),))


class Inputs(Protocol):
    """The series a model reads, per interval (index ``t`` at the context's resolution)."""

    def temp_air(self, start: int, n: int) -> np.ndarray:
        """Outdoor air temperature, degrees C, at the middle of each interval."""

    def irradiance(self, start: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(GHI, DNI, DHI) in W/m^2, each interval's mean."""

    def price(self, start: int, n: int) -> np.ndarray:
        """Energy price forecast, EUR/kWh."""


@dataclass(frozen=True)
class Context:
    """What a model needs besides its own parameters: the time grid, where it is (the owner's
    clock for their habits, latitude/longitude for the sun), who issues its offers, the owner's
    settings, its inputs and the seed of its randomness."""

    resolution: int
    inputs: Any  # an Inputs
    owner: OwnerSettings = OwnerSettings()
    issuer: Optional[str] = None
    seed: str = "0"
    slice_intervals: int = 4
    tz: tzinfo = timezone.utc
    latitude: float = 45.0
    longitude: float = 8.0
    altitude: float = 0.0

    @property
    def hours(self) -> float:
        """Hours per interval."""
        return self.resolution / 3600.0

    def local(self, t: int) -> datetime:
        """The owner's wall-clock time at the start of interval ``t``."""
        return datetime.fromtimestamp(t * self.resolution, tz=timezone.utc).astimezone(self.tz)

    def interval_of(self, moment: datetime) -> int:
        """The interval in which ``moment`` (timezone-aware) falls."""
        return int(moment.timestamp()) // self.resolution

    def next_local(self, t: int, hour: float) -> int:
        """The first interval at or after ``t`` that starts at the owner's clock time ``hour``
        (hours past local midnight, rounded down to the grid; beyond 24 means the next day)."""
        day = self.local(t).date()
        for k in range(3):
            # the wall clock, not elapsed time: a daylight-saving day is 23 or 25 hours long
            naive = datetime.combine(day + timedelta(days=k), dtime()) + timedelta(hours=hour)
            i = self.interval_of(naive.replace(tzinfo=self.tz))
            if i >= t:
                return i
        raise DeviceError("hour", f"no local time {hour} h after interval {t}")


def seeded(*parts: object) -> np.random.Generator:
    """A generator seeded by ``parts`` (scenario seed, device id, horizon...): the same parts give
    the same draws in any process, on any machine, whatever else ran before."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class Horizon:
    """One rolling-horizon period: offers made at interval ``release`` for ``[start, end)``;
    ``index`` numbers horizons from the scenario's start (it seeds the period's draws)."""

    index: int
    release: int
    start: int
    end: int


@dataclass
class Run:
    """One flexible activity of a device and its offer (``id`` is the offer's id).

    ``release``: the interval at which the offer is made; ``start``/``end``: the span the run may
    use; ``latest_start``: an event device starts its normal programme here at the latest when no
    decision came. ``data`` holds what the model sampled (arrival, programme, draws...).
    A decision sets ``plan`` (kWh per interval from ``plan_start``): the schedule, or the normal
    programme; ``decided`` says which ("schedule", "default", "cancelled")."""

    id: str
    release: int
    start: int
    end: int
    latest_start: Optional[int] = None
    data: dict = field(default_factory=dict)
    change_at: Optional[int] = None  # the owner announces a change (an EV leaving early)
    offer: Optional[FlexOffer] = None
    offered: bool = False
    changed: bool = False
    decided: Optional[str] = None
    decided_at: Optional[int] = None
    plan_start: Optional[int] = None
    plan: Optional[np.ndarray] = None

    @property
    def plan_end(self) -> Optional[int]:
        return None if self.plan_start is None or self.plan is None else self.plan_start + len(self.plan)


class Device(ABC):
    """A device model (see the module docstring). Subclasses set ``kind``, ``Params`` and
    ``continuous`` (True: it always runs its own control when nothing is decided; False: an event
    device that waits for a decision until its latest start)."""

    kind: ClassVar[str]
    Params: ClassVar[type]
    continuous: ClassVar[bool] = True

    def __init__(self, device_id: str, params: Any, ctx: Context, start: int) -> None:
        self.id = check.identifier(device_id, "id")
        if not isinstance(params, self.Params):
            raise DeviceError("params", f"a {self.kind} takes {self.Params.__name__}, not {type(params).__name__}")
        self.p = params
        self.ctx = ctx
        self.t = start  # the next interval to simulate
        self.runs: list[Run] = []
        self.state: Any = self.initial_state(seeded(ctx.seed, device_id, "initial"))

    # -- to be provided by each model --------------------------------------------------------
    @abstractmethod
    def initial_state(self, rng: np.random.Generator) -> Any:
        """The physical state at the scenario's start (a small mutable object)."""

    @abstractmethod
    def plan(self, h: Horizon) -> list[Run]:
        """The runs of horizon ``h`` (draws seeded by the scenario seed, device id and ``h.index``)."""

    @abstractmethod
    def step(self, t: int, command: Optional[float]) -> float:
        """Simulate interval ``t`` under ``command`` (kWh to draw, or None: normal behaviour);
        return the kWh the meter sees. Called for t = self.t, self.t + 1, ..."""

    @abstractmethod
    def offer(self, run: Run, t: int) -> Optional[FlexOffer]:
        """The offer of ``run`` made at interval ``t`` from the state at ``t`` (self.t == t)."""

    def normal_programme(self, run: Run, t: int) -> Optional[np.ndarray]:
        """What an event device runs when ``run`` falls back to normal at ``t``: kWh per interval
        from ``t`` on (physics still applies). None: its own control (continuous devices)."""
        return None

    def revise(self, run: Run, t: int) -> Optional[FlexOffer]:
        """The updated offer of ``run`` after the owner's announced change at ``t``; None: the
        offer is withdrawn. Only models that announce changes (``Run.change_at``) implement it."""
        return run.offer

    # -- shared --------------------------------------------------------------------------------
    def command(self, t: int) -> Optional[float]:
        """The command of interval ``t`` from the runs' decisions (see the module docstring)."""
        for run in self.runs:
            if run.plan is not None and run.plan_start is not None and run.plan_start <= t < run.plan_start + len(run.plan):
                return float(run.plan[t - run.plan_start])
        if self.continuous:
            return None
        for run in self.runs:
            if run.decided is None and run.offered and run.start <= t < run.end:
                if run.latest_start is not None and t >= run.latest_start:
                    self.fall_back(run, t)  # no decision in time: the owner's programme runs
                    return self.command(t)
                return 0.0  # waiting for its schedule
        return None

    def decide(self, run: Run, how: str, t: int, start: Optional[int] = None,
               energy: Optional[np.ndarray] = None) -> None:
        """Record a decision for ``run`` at interval ``t``: ``schedule`` (kWh per interval from
        ``start``), ``default`` (its normal programme from ``t``) or ``cancelled``."""
        if how == "schedule":
            if start is None or energy is None:
                raise DeviceError("schedule", "a schedule needs its start and energies")
            run.plan_start, run.plan = int(start), np.asarray(energy, dtype=float)
        elif how == "default":
            if run.decided == "default":
                return  # told again (a repeated rejection): it already runs
            programme = self.normal_programme(run, max(t, run.start))
            run.plan_start, run.plan = (None, None) if programme is None else (max(t, run.start), programme)
        elif how == "cancelled":
            run.plan_start, run.plan = None, None
        else:
            raise DeviceError("decision", f"schedule, default or cancelled (got {how!r})")
        run.decided, run.decided_at = how, t

    def fall_back(self, run: Run, t: int) -> None:
        self.decide(run, "default", t)

    def fork(self) -> "Device":
        """A copy whose future can be simulated without touching this one (predictions)."""
        twin = copy.copy(self)
        twin.state = copy.deepcopy(self.state)
        twin.runs = [copy.copy(r) for r in self.runs]
        return twin

    def forget(self, before: int) -> None:
        """Drop runs that ended before interval ``before`` (a long-running box)."""
        self.runs = [r for r in self.runs if max(r.end, r.plan_end or 0) >= before]

    def run_of(self, offer_id: str) -> Optional[Run]:
        return next((r for r in self.runs if r.id == offer_id), None)


# -- building offers --------------------------------------------------------------------------
def slice_durations(n_intervals: int, per_slice: int) -> list[int]:
    """``n_intervals`` cut into slices of ``per_slice`` intervals (the last may be shorter)."""
    if n_intervals <= 0:
        return []
    full, rest = divmod(n_intervals, per_slice)
    return [per_slice] * full + ([rest] if rest else [])


def per_slice(values: Sequence[float] | np.ndarray, durations: Sequence[int]) -> np.ndarray:
    """Per-interval kWh summed per slice."""
    edges = np.cumsum([0, *durations])
    return np.add.reduceat(np.asarray(values, dtype=float), edges[:-1]) if len(durations) else np.zeros(0)


def offer_of(run: Run, ctx: Context, *, start: int, durations: Sequence[int], mins: Sequence[float],
             maxs: Sequence[float], baseline: Optional[Sequence[float]] = None, start_before: Optional[int] = None,
             total: Optional[tuple[Optional[float], Optional[float]]] = None, polytope: Optional[Polytope] = None,
             label: str = "", profiles: Optional[Sequence[Profile]] = None, baseline_profile: int = 0) -> FlexOffer:
    """The flex-offer of ``run``: its window ``[start, start_before]`` (fixed if None), one profile
    of slices (or ``profiles``, exclusive-OR alternatives), the baseline (per-slice kWh, starting at
    ``start``), the owner's prices, and deadlines: acceptance at once, assignment before the latest
    start (after that the device runs its normal programme)."""
    latest = start if start_before is None else start_before
    if profiles is None:
        slices = tuple(shared_slice(Slice(d, _r(lo), _r(max(hi, lo)))) for d, lo, hi in zip(durations, mins, maxs))
        tot = None if total is None else TotalEnergy(None if total[0] is None else _r(total[0]),
                                                     None if total[1] is None else _r(total[1]))
        with known_point([_r(e) for e in baseline] if polytope is not None and baseline is not None else None):
            # the baseline is feasible by construction: it proves the polytope non-empty
            profiles = (Profile(slices, total=tot, polytope=polytope),)
    base = None
    if baseline is not None:
        base = Baseline(tuple(_r(e) for e in baseline), baseline_profile, start)
    release_s = run.release * ctx.resolution
    return FlexOffer(
        id=run.id, profiles=tuple(profiles), issuer=ctx.issuer, label=label or None, resolution=ctx.resolution,
        creation_time=release_s, assignment_before=max(release_s, latest * ctx.resolution),
        start_after=start, start_before=latest, baseline=base, prices=ctx.owner.prices())


def _r(x: float) -> float:
    """kWh written to 9 decimals: offers stay short on the wire, and 1e-9 kWh is far below the
    comparison tolerance. One float object per value (:data:`KWH`): an FOA's day of offers
    rounds 350,000 slice bounds and baseline values, most of them repeats."""
    v = round(float(x), 9)
    return 0.0 if v == 0 else KWH.share(v)  # 0.0 for -0.0 too: a negative zero is never pooled


#: Rounded kWh values already held in this process (:func:`_r`).
KWH = Pool(1 << 16)


def meter_noise(energy: Sequence[float] | np.ndarray, deviation: float, *key: object) -> list[float]:
    """What a meter reports for ``energy`` (kWh per interval): each value with a relative error
    drawn from [-deviation, +deviation] by a generator seeded by ``key``."""
    values = np.asarray(energy, dtype=float)
    if deviation <= 0 or not len(values):
        return values.tolist()
    rng = seeded("meter", *key)
    return (values * (1 + rng.uniform(-deviation, deviation, len(values)))).tolist()


def finite(values: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        raise DeviceError(what, "has missing or non-finite values for this period")
    return values


def hours_between(a: int, b: int, ctx: Context) -> float:
    return (b - a) * ctx.hours


def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


def ceil_div(a: float, b: float) -> int:
    return int(math.ceil(a / b - 1e-12))
