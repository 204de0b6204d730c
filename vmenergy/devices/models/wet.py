"""Wet appliances: washing machine, dishwasher, tumble dryer.

The owner loads the machine at a local time drawn around ``load_hour`` (on a share
``cycles_per_day`` of days) and wants it done within ``max_delay`` hours. The FOA offers the
cycle then: its programmes as exclusive-OR profiles (the owner's usual programme first: the
baseline, started at once), each with its own latest start so that it ends in time. A programme
is a fixed energy curve: the slices are exact (min = max), its flexibility is when it starts and
which programme runs. The curves are shaped after measured cycles (heating at the start of a
wash, a second heating for a dishwasher's rinse, a dryer's steady heating) and scaled to the
per-cycle energy of the EU energy label's standard programmes (Regulations (EU) 2019/2014,
2019/2017 and 392/2012).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer, Profile, Slice
from vmenergy.flexoffer.parts import shared_slice

from .base import Device, DeviceError, Horizon, Run, offer_of, param, seeded, validate_params

__all__ = ["WetAppliance", "Washer", "Dishwasher", "Dryer", "WetParams", "WasherParams", "DishwasherParams",
           "DryerParams", "PROGRAMMES", "programme_kwh"]

#: Programmes: name -> power in kW for each 15 minutes.
PROGRAMMES: dict[str, dict[str, tuple[float, ...]]] = {
    "washer": {
        "eco-40-60": (1.2, 0.6, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.15, 0.15, 0.2, 0.25),  # 3 h, 0.79 kWh
        "cotton-40": (2.0, 1.6, 0.15, 0.15, 0.2, 0.4, 0.3),  # 1 h 45, 1.2 kWh
    },
    "dishwasher": {
        "eco": (0.05, 1.4, 0.3, 0.05, 0.05, 0.05, 0.05, 0.05, 1.0, 0.2, 0.05, 0.05, 0.05, 0.05),  # 3 h 30, 0.85 kWh
        "normal": (0.1, 2.0, 1.0, 0.1, 0.1, 1.8, 0.5, 0.1),  # 2 h, 1.43 kWh
    },
    "dryer": {
        "heat-pump": (0.6,) * 9 + (0.3,),  # 2 h 30, 1.43 kWh
        "condenser": (2.2,) * 6 + (0.8,),  # 1 h 45, 3.5 kWh
    },
}


def programme_kwh(power_15min: tuple[float, ...], resolution: int) -> np.ndarray:
    """A programme's kW per 15 minutes as kWh per interval of ``resolution`` seconds."""
    kwh = np.asarray(power_15min, dtype=float) * 0.25
    if resolution == 900:
        return kwh
    if resolution % 900 == 0:
        k = resolution // 900
        pad = (-len(kwh)) % k
        return np.concatenate([kwh, np.zeros(pad)]).reshape(-1, k).sum(axis=1)
    if 900 % resolution == 0:
        k = 900 // resolution
        return np.repeat(kwh / k, k)
    raise DeviceError("resolution", f"programmes are given per 15 minutes; {resolution} s does not divide or "
                                    "multiply 900 s")


@dataclass(frozen=True)
class WetParams:
    cycles_per_day: float = param(0.6, ge=0, le=1, doc="chance of a cycle on a day")
    load_hour: float = param(19.0, unit="h", ge=0, le=24, doc="mean local time the machine is loaded")
    load_sd: float = param(2.0, unit="h", ge=0, doc="spread of the loading time")
    max_delay: float = param(8.0, unit="h", gt=0, doc="the cycle must be done this long after loading")
    programme: int = param(0, ge=0, le=1, doc="the owner's usual programme (0 or 1, in PROGRAMMES order)")

    def __post_init__(self) -> None:
        validate_params(self)


class WetAppliance(Device):
    continuous = False
    Params = WetParams
    machine: ClassVar[str]

    def initial_state(self, rng: np.random.Generator) -> None:
        return None

    def programmes(self) -> list[np.ndarray]:
        """The programmes as kWh per interval, the owner's usual one first."""
        all_ = [programme_kwh(p, self.ctx.resolution) for p in PROGRAMMES[self.machine].values()]
        usual = min(self.p.programme, len(all_) - 1)
        return [all_[usual]] + [p for i, p in enumerate(all_) if i != usual]

    def plan(self, h: Horizon) -> list[Run]:
        rng = seeded(self.ctx.seed, self.id, "loads", h.index)
        p = self.p
        if rng.random() >= p.cycles_per_day:
            return []
        hour = float(np.clip(rng.normal(p.load_hour, p.load_sd), p.load_hour - 3 * p.load_sd,
                             p.load_hour + 3 * p.load_sd)) % 24
        # loaded after the previous cycle is done, whenever the owner would have loaded it
        load = max(self.ctx.next_local(h.start, hour), max((r.end for r in self.runs), default=h.start))
        if load >= h.end:
            return []
        ready = load + int(round(p.max_delay / self.ctx.hours))
        longest = max(len(x) for x in self.programmes())
        return [Run(f"{self.id}-{h.index}", load, load, max(ready, load + longest))]

    def step(self, t: int, command: Optional[float]) -> float:
        self.t = t + 1
        return 0.0 if command is None else max(0.0, command)

    def normal_programme(self, run: Run, t: int) -> Optional[np.ndarray]:
        return self.programmes()[0]

    def offer(self, run: Run, t: int) -> Optional[FlexOffer]:
        start = max(t, run.start)
        profiles = []
        for prog in self.programmes():
            latest = run.end - len(prog)
            if latest < start:
                continue
            slices = tuple(shared_slice(Slice(1, float(round(e, 9)), float(round(e, 9)))) for e in prog)
            profiles.append(Profile(slices, start_after=start, start_before=latest))
        if not profiles:
            return None
        run.latest_start = max(p.start_before for p in profiles if p.start_before is not None)
        first = profiles[0]
        # the usual programme at once is the baseline, when it still fits; else the first that does
        baseline = [s.min for s in first.slices]
        return offer_of(run, self.ctx, start=start, start_before=run.latest_start, durations=[], mins=[], maxs=[],
                        baseline=baseline, profiles=profiles, label=self.kind)


@dataclass(frozen=True)
class WasherParams(WetParams):
    cycles_per_day: float = param(0.5, ge=0, le=1, doc="chance of a cycle on a day (~180 cycles a year)")
    load_hour: float = param(10.0, unit="h", ge=0, le=24, doc="mean local time the machine is loaded")
    load_sd: float = param(3.0, unit="h", ge=0, doc="spread of the loading time")
    max_delay: float = param(8.0, unit="h", gt=0, doc="the cycle must be done this long after loading")


@dataclass(frozen=True)
class DishwasherParams(WetParams):
    cycles_per_day: float = param(0.8, ge=0, le=1, doc="chance of a cycle on a day (~280 cycles a year)")
    load_hour: float = param(20.5, unit="h", ge=0, le=24, doc="mean local time the machine is loaded")
    load_sd: float = param(1.5, unit="h", ge=0, doc="spread of the loading time")
    max_delay: float = param(10.0, unit="h", gt=0, doc="the cycle must be done this long after loading")


@dataclass(frozen=True)
class DryerParams(WetParams):
    cycles_per_day: float = param(0.3, ge=0, le=1, doc="chance of a cycle on a day")
    load_hour: float = param(14.0, unit="h", ge=0, le=24, doc="mean local time the machine is loaded")
    load_sd: float = param(3.0, unit="h", ge=0, doc="spread of the loading time")
    max_delay: float = param(6.0, unit="h", gt=0, doc="the cycle must be done this long after loading")


class Washer(WetAppliance):
    kind = "washer"
    machine = "washer"
    Params = WasherParams


class Dishwasher(WetAppliance):
    kind = "dishwasher"
    machine = "dishwasher"
    Params = DishwasherParams


class Dryer(WetAppliance):
    kind = "dryer"
    machine = "dryer"
    Params = DryerParams
