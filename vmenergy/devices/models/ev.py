"""An electric vehicle charged at home.

Each evening of a horizon the car may come home (``home_probability``), arriving at a local time
drawn around ``arrival`` and leaving the next morning around ``departure``, having driven a
distance drawn from a log-normal around ``daily_km``. The mobility figures follow the German
mobility survey MiD 2017 (about 13,600 km per car and year, ~37 km a day; arrivals at home
peaking at 17-19 h, departures at 7-8 h). When it plugs in, the FOA offers its charging: from
arrival (start movable by up to ``start_flex`` hours) until the announced departure, slices of
at most the charger's energy, a total between what the owner must have at departure
(``min_soc``) and what the battery can still take (``capacity``, charging ``efficiency``), and
as baseline charging at full power to ``target_soc``. Sometimes the owner leaves earlier than
announced (``early_probability``, 0.5-3 h earlier) and tells the app within two hours of plugging
in: the offer is then updated (or withdrawn) if it is not scheduled yet; a car that leaves during
its schedule simply stops charging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer

from .base import Device, DeviceError, Horizon, Run, ceil_div, offer_of, param, per_slice, seeded, slice_durations, \
    validate_params

__all__ = ["EV", "EVParams", "EVState"]


@dataclass(frozen=True)
class EVParams:
    capacity: float = param(60.0, unit="kWh", gt=0, doc="usable battery capacity (typical BEVs: 40-80)")
    charger: float = param(11.0, unit="kW", gt=0, doc="wallbox power (3.7, 7.4 or 11 kW in Europe)")
    efficiency: float = param(0.9, gt=0, le=1, doc="share of grid energy that reaches the battery (AC charging)")
    consumption: float = param(0.18, unit="kWh/km", gt=0, doc="energy per km driven (ADAC EcoTest: 0.15-0.22)")
    daily_km: float = param(37.0, unit="km", ge=0, doc="mean distance a day (MiD 2017)")
    km_sigma: float = param(0.7, ge=0, doc="log-normal spread of the daily distance")
    home_probability: float = param(0.9, ge=0, le=1, doc="chance the car comes home and plugs in on a day")
    arrival: float = param(18.0, unit="h", ge=0, le=24, doc="mean local arrival time")
    arrival_sd: float = param(1.5, unit="h", ge=0, doc="spread of the arrival time")
    departure: float = param(7.5, unit="h", ge=0, le=24, doc="mean local departure time (next morning)")
    departure_sd: float = param(1.0, unit="h", ge=0, doc="spread of the departure time")
    target_soc: float = param(0.9, ge=0, le=1, doc="charge the owner's normal programme charges to")
    min_soc: float = param(0.7, ge=0, le=1, doc="charge the owner must have at departure")
    start_flex: float = param(2.0, unit="h", ge=0, doc="how far the start of charging may move")
    early_probability: float = param(0.1, ge=0, le=1, doc="chance the car leaves earlier than announced")
    initial_soc: float = param(0.6, ge=0, le=1, doc="charge at the scenario's start")

    def __post_init__(self) -> None:
        validate_params(self)
        if self.min_soc > self.target_soc:
            raise DeviceError("min_soc", "must not exceed target_soc")


@dataclass
class EVState:
    soc: float  # kWh in the battery
    arrived: Optional[str] = None  # the run whose arrival was applied last


class EV(Device):
    kind = "ev"
    Params = EVParams
    continuous = False

    def initial_state(self, rng: np.random.Generator) -> EVState:
        return EVState(self.p.capacity * self.p.initial_soc)

    # -- the owner's day ----------------------------------------------------------------------
    def plan(self, h: Horizon) -> list[Run]:
        rng = seeded(self.ctx.seed, self.id, "mobility", h.index)
        p, ctx = self.p, self.ctx
        home = rng.random() < p.home_probability
        hour = float(np.clip(rng.normal(p.arrival, p.arrival_sd), p.arrival - 4, p.arrival + 4))
        leave = float(np.clip(rng.normal(p.departure, p.departure_sd), p.departure - 3, p.departure + 3))
        km = float(rng.lognormal(np.log(max(p.daily_km, 1e-3)) - p.km_sigma ** 2 / 2, p.km_sigma)) if p.daily_km else 0
        early = rng.random() < p.early_probability
        early_by = float(rng.uniform(0.5, 3.0))
        notice = float(rng.uniform(0.0, 1.0))
        if not home:
            return []
        arrival = ctx.next_local(h.start, hour)
        if arrival >= h.end or any(r.data["actual"] > arrival for r in self.runs):  # still plugged in from the stay before
            return []
        departure = ctx.next_local(arrival + 1, leave)  # the next morning
        if departure - arrival < 2:
            return []
        actual = departure
        change_at = None
        if early:
            actual = max(arrival + 2, departure - int(round(early_by / ctx.hours)))
            if actual < departure:  # the owner tells the app within two hours of plugging in
                change_at = arrival + 1 + int(notice * max(0, min(int(2 / ctx.hours), actual - arrival - 2)))
        data = {"arrival": arrival, "departure": departure, "actual": actual, "drive": km * p.consumption}
        return [Run(f"{self.id}-{h.index}", arrival, arrival, departure, data=data, change_at=change_at)]

    # -- physics ------------------------------------------------------------------------------
    def soc_on_arrival(self, run: Run) -> float:
        """The charge when the car plugs in: what it left with, less the day's driving."""
        if self.state.arrived == run.id:
            return self.state.soc
        return max(0.05 * self.p.capacity, self.state.soc - run.data["drive"])

    def plugged(self, t: int) -> Optional[Run]:
        for run in self.runs:
            if run.data["arrival"] <= t < run.data["actual"]:
                return run
        return None

    def step(self, t: int, command: Optional[float]) -> float:
        self.t = t + 1
        run = self.plugged(t)
        if run is None:
            return 0.0
        if self.state.arrived != run.id:
            self.state.soc, self.state.arrived = self.soc_on_arrival(run), run.id
        if command is None or command <= 0:
            return 0.0
        p = self.p
        room = (p.capacity - self.state.soc) / p.efficiency
        e = max(0.0, min(command, p.charger * self.ctx.hours, room))
        self.state.soc = min(p.capacity, self.state.soc + e * p.efficiency)
        return e

    def normal_programme(self, run: Run, t: int) -> Optional[np.ndarray]:
        """Charge at full power from ``t`` to the target (the charger's own behaviour)."""
        soc = self.soc_on_arrival(run) if self.state.arrived != run.id else self.state.soc
        need = max(0.0, self.p.target_soc * self.p.capacity - soc) / self.p.efficiency
        return self._full_power(need, max(0, run.end - t))

    def _full_power(self, energy: float, n: int) -> np.ndarray:
        pdt = self.p.charger * self.ctx.hours
        out = np.zeros(n)
        full = min(n, int(energy // pdt))
        out[:full] = pdt
        if full < n:
            out[full] = min(pdt, energy - full * pdt)
        return out

    # -- offers -------------------------------------------------------------------------------
    def offer(self, run: Run, t: int) -> Optional[FlexOffer]:
        return self._offer(run, max(t, run.data["arrival"]), run.data["departure"])

    def revise(self, run: Run, t: int) -> Optional[FlexOffer]:
        run.end = run.data["departure"] = run.data["actual"]
        return self._offer(run, t, run.end)

    def _offer(self, run: Run, start: int, end: int) -> Optional[FlexOffer]:
        p, ctx = self.p, self.ctx
        soc = self.soc_on_arrival(run) if self.state.arrived != run.id else self.state.soc
        pdt = p.charger * ctx.hours
        e_full = max(0.0, p.capacity - soc) / p.efficiency
        e_need = max(0.0, p.min_soc * p.capacity - soc) / p.efficiency
        e_target = max(0.0, p.target_soc * p.capacity - soc) / p.efficiency
        span = end - start
        if span < 2 or e_full <= 1e-6:
            return None
        # the start may move as long as what the owner needs still fits before departure
        flex = int(p.start_flex / ctx.hours)
        flex = max(0, min(flex, span - 1 - ceil_div(e_need, pdt)))
        length = span - flex
        e_max = min(e_full, length * pdt)
        e_min = min(e_need, e_max)
        base = self._full_power(min(max(e_target, e_min), e_max), length)
        durations = slice_durations(length, ctx.slice_intervals)
        run.latest_start = start + flex
        run.start = start
        return offer_of(run, ctx, start=start, start_before=start + flex, durations=durations,
                        mins=[0.0] * len(durations), maxs=[pdt * d for d in durations],
                        total=(e_min, e_max), baseline=per_slice(base, durations), label=self.kind)
