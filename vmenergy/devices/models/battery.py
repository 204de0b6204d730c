"""A home battery on a time-of-use programme.

Its charge follows the energy at the meter with losses both ways: charging ``x`` kWh stores
``eta * x``, giving ``y`` kWh takes ``y / eta`` from it, with ``eta`` the square root of the
round-trip efficiency (90 % for current lithium home batteries). That is linear only while the
direction is known, so each slice of the offer has one: the FOA marks the slices whose price
forecast is at or below the horizon's median as charging slices ``[0, charge]`` and the others as
discharging slices ``[-discharge, 0]``. The offer's polytope then bounds the exact state of charge
after every slice between ``soc_min`` and ``soc_max`` (a dependency offer), and a schedule inside
it never needs the battery management to step in. The battery's own programme (the baseline) is
the same time-of-use rule: charge at full power in the cheap slices until full, and spread what it
holds evenly over the dear ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer, Polytope

from .base import Device, DeviceError, Horizon, Run, offer_of, param, per_slice, slice_durations, validate_params

__all__ = ["HomeBattery", "BatteryParams", "BatteryState"]


@dataclass(frozen=True)
class BatteryParams:
    capacity: float = param(10.0, unit="kWh", gt=0, doc="usable capacity (home batteries: 5-15)")
    power: float = param(5.0, unit="kW", gt=0, doc="largest charge and discharge power")
    round_trip: float = param(0.9, gt=0, le=1, doc="round-trip efficiency, AC to AC")
    soc_min: float = param(0.1, ge=0, le=1, doc="lowest charge, share of capacity (reserve)")
    soc_max: float = param(1.0, ge=0, le=1, doc="highest charge, share of capacity")
    initial_soc: float = param(0.5, ge=0, le=1, doc="charge at the scenario's start")

    def __post_init__(self) -> None:
        validate_params(self)
        if not self.soc_min <= self.initial_soc <= self.soc_max:
            raise DeviceError("initial_soc", "must lie in [soc_min, soc_max]")


@dataclass
class BatteryState:
    soc: float  # kWh stored


class HomeBattery(Device):
    kind = "battery"
    Params = BatteryParams
    continuous = True

    @property
    def eta(self) -> float:
        return math.sqrt(self.p.round_trip)

    def limits(self) -> tuple[float, float]:
        return self.p.soc_min * self.p.capacity, self.p.soc_max * self.p.capacity

    def initial_state(self, rng: np.random.Generator) -> BatteryState:
        return BatteryState(self.p.initial_soc * self.p.capacity)

    def plan(self, h: Horizon) -> list[Run]:
        n = h.end - h.start
        durations = slice_durations(n, self.ctx.slice_intervals)
        price = self.ctx.inputs.price(h.start, n)
        per = per_slice(price, durations) / np.asarray(durations, dtype=float)
        charge = per <= np.median(per) + 1e-12
        direction = np.repeat(np.where(charge, 1, -1), durations)
        return [Run(f"{self.id}-{h.index}", h.release, h.start, h.end,
                    data={"durations": durations, "direction": direction})]

    # -- physics ------------------------------------------------------------------------------
    def _run_at(self, t: int) -> Optional[Run]:
        for run in self.runs:
            if run.start <= t < run.end:
                return run
        return None

    def programme(self, t: int, soc: float, run: Optional[Run]) -> float:
        """The time-of-use rule for interval ``t`` at charge ``soc`` (kWh at the meter)."""
        if run is None:
            return 0.0
        lo, hi = self.limits()
        pdt = self.p.power * self.ctx.hours
        direction = run.data["direction"]
        i = t - run.start
        if direction[i] > 0:
            return min(pdt, max(0.0, hi - soc) / self.eta)
        left = int(np.count_nonzero(direction[i:] < 0))
        return -min(pdt, max(0.0, soc - lo) * self.eta / max(1, left))

    def step(self, t: int, command: Optional[float]) -> float:
        self.t = t + 1
        soc = self.state.soc
        if command is None:
            e = self.programme(t, soc, self._run_at(t))
        else:  # the battery management keeps the charge within its limits whatever it is told
            lo, hi = self.limits()
            pdt = self.p.power * self.ctx.hours
            e = min(max(command, -pdt), pdt)
            e = min(e, max(0.0, hi - soc) / self.eta) if e > 0 else max(e, -max(0.0, soc - lo) * self.eta)
        self.state.soc = soc + (e * self.eta if e > 0 else e / self.eta)
        return e

    # -- offer ----------------------------------------------------------------------------------
    def offer(self, run: Run, t: int) -> Optional[FlexOffer]:
        durations = run.data["durations"]
        if not durations:
            return None
        lo, hi = self.limits()
        soc = self.state.soc
        charging = run.data["direction"][np.cumsum([0, *durations[:-1]])] > 0
        gain = np.where(charging, self.eta, 1 / self.eta)  # stored kWh per kWh at the meter
        n = len(durations)
        rows = np.tril(np.ones((n, n))) * gain  # charge after slice i: soc + rows[i] . x
        A = np.vstack([rows, -rows])
        b = np.concatenate([np.full(n, hi - soc), np.full(n, soc - lo)])
        pdt = self.p.power * self.ctx.hours
        mins = [0.0 if c else -pdt * d for c, d in zip(charging, durations)]
        maxs = [pdt * d if c else 0.0 for c, d in zip(charging, durations)]
        twin = self.fork()
        base = np.array([twin.step(k, None) for k in range(run.start, run.end)])
        polytope = Polytope.of_arrays(np.round(A, 12), np.maximum(np.round(b, 9), 0))
        return offer_of(run, self.ctx, start=run.start, durations=durations, mins=mins, maxs=maxs,
                        baseline=per_slice(base, durations), polytope=polytope, label=self.kind)
