"""Helpers of the device tests: a context on clear-sky inputs, runs planned and predicted as the
fleet does, schedules drawn from inside an offer (LP vertices), and a device playing one."""

from __future__ import annotations

from typing import Optional
from zoneinfo import ZoneInfo

import numpy as np
from scipy.optimize import linprog

from vmenergy.devices.inputs import Inputs
from vmenergy.devices.models import Context, Device, Horizon, OwnerSettings, Run
from vmenergy.flexoffer import FlexOffer, Schedule
from vmenergy.flexoffer.timeutil import parse_utc

T0 = parse_utc("2026-11-22T11:00:00Z", "-") // 900  # 12:00 in Rome: the daily offers
ROME = ZoneInfo("Europe/Rome")


def context(temp_air: float = 3.0, seed: str = "7", **kw) -> Context:
    inputs = Inputs(900, timezone="Europe/Rome", temp_air=temp_air)
    return Context(900, inputs, issuer="house@localhost", seed=seed, tz=ROME, **kw)


def horizon(k: int = 0) -> Horizon:
    """Day k's horizon: offers at 12:00 local for 13:00 to 13:00 the next day."""
    release = T0 + 96 * k
    return Horizon(k, release, release + 4, release + 100)


def device(cls: type[Device], ctx: Optional[Context] = None, **params) -> Device:
    ctx = ctx or context()
    return cls(f"house-{cls.kind}", cls.Params(**params), ctx, T0)


def runs(dev: Device, days: int = 1) -> list[Run]:
    out = []
    for k in range(days):
        planned = dev.plan(horizon(k))
        dev.runs += planned
        out += planned
    return out


def predicted(dev: Device, run: Run) -> Device:
    """The device as the fleet predicts it at the run's start (normal behaviour until then)."""
    twin = dev.fork()
    for t in range(twin.t, run.start):
        twin.step(t, twin.command(t))
    twin.t = max(twin.t, run.start)
    return twin


def offer(dev: Device, run: Run) -> Optional[FlexOffer]:
    twin = predicted(dev, run)
    fo = twin.offer(run, max(run.release, twin.t))
    run.offer, run.offered = fo, fo is not None
    return fo


def vertices(fo: FlexOffer, n: int, seed: int = 0, profile: int = 0) -> list[Schedule]:
    """``n`` schedules at corners of the offer's profile (random objectives), at random starts."""
    rng = np.random.default_rng(seed)
    p = fo.profiles[profile]
    k = p.n_slices
    a_ub, b_ub = [], []
    if p.polytope is not None:
        a_ub += [list(r) for r in p.polytope.A]
        b_ub += list(p.polytope.b)
    if p.total is not None:
        if p.total.max is not None:
            a_ub.append([1.0] * k)
            b_ub.append(p.total.max)
        if p.total.min is not None:
            a_ub.append([-1.0] * k)
            b_ub.append(-p.total.min)
    out = []
    lo = fo.earliest_start(profile=profile)
    hi = fo.latest_start(profile=profile)
    for i in range(n):
        res = linprog(rng.normal(size=k), A_ub=np.array(a_ub) if a_ub else None, b_ub=b_ub or None,
                      bounds=[(s.min, s.max) for s in p.slices], method="highs")
        assert res.status == 0, res.message
        start = int(rng.integers(lo, hi + 1))
        out.append(Schedule(fo.id, start, tuple(float(x) for x in res.x), f"s{i}", 0, profile, fo.resolution))
    return out


def baseline_schedule(fo: FlexOffer) -> Schedule:
    b = fo.baseline
    return Schedule(fo.id, b.start, b.energy, "base", 0, b.profile, fo.resolution)


def play(dev: Device, run: Run, schedule: Schedule, watch=lambda d: None) -> tuple[np.ndarray, list]:
    """Execute ``schedule`` on a prediction of the device: kWh metered per interval of the
    schedule's span, and ``watch(device)`` after each interval."""
    twin = predicted(dev, run)
    fo = run.offer
    energy = fo.profiles[schedule.profile].spread(schedule.energy)
    twin.decide(twin.run_of(run.id), "schedule", twin.t, schedule.start, energy)
    for t in range(twin.t, schedule.start):
        twin.step(t, twin.command(t))
    metered, seen = [], []
    for t in range(schedule.start, schedule.start + len(energy)):
        metered.append(twin.step(t, twin.command(t)))
        seen.append(watch(twin))
    return np.array(metered), seen


def owner(**kw) -> OwnerSettings:
    return OwnerSettings(**kw)
