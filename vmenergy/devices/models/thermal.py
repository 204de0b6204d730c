"""Thermal storage devices: a heat pump heating a house, an electric water boiler, a freezer.

All three are one first-order (1R1C) model: a thermal capacitance ``C`` (kWh/K) losing heat
through a conductance ``UA`` (kW/K) to an ambient temperature, with the device adding
``eta * u`` kWh of heat per kWh ``u`` of electricity (``eta``: the heat pump's COP, 1 for a
resistive element, minus the COP for a freezer, which removes heat) and exogenous heat (gains,
hot-water draws). With inputs constant over an interval of ``dt`` hours the update is exact:

    T[k+1] = a * T[k] + (1 - a) * (T_amb[k] + Q_exo[k] / UA) + (1 - a) * eta[k] / (UA * dt) * u[k],
    a = exp(-dt * UA / C)

so the temperature after any interval is affine in the slice energies of an offer. The offer is
therefore a dependency (polytopic) offer: one row per slice end keeping the temperature in the
comfort band (and rows around sudden changes inside a slice, such as a hot-water draw), computed
from the predicted state at the offer's start; the baseline is the device's own thermostat. A schedule inside the offer keeps the simulated temperature in the band
(up to :data:`MARGIN` inside it, for the temperature between slice ends); the thermostat that
takes over when a schedule ends starts from wherever the schedule left the temperature, which is
the rebound after a shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer, Polytope

from .base import Device, DeviceError, Horizon, Run, offer_of, param, per_slice, seeded, slice_durations, \
    validate_params

__all__ = ["ThermalState", "ThermalDevice", "HeatPump", "HeatPumpParams", "WaterBoiler", "BoilerParams", "Freezer",
           "FreezerParams", "staffell_cop", "MARGIN"]

#: The offer keeps the temperature this far (K) inside the owner's band at slice ends, so that the
#: temperature between slice ends (inputs vary within a slice) stays inside the band too.
MARGIN = 0.1
#: Where the thermostat's own trajectory leaves the band (a cold snap the device cannot heat
#: against), the offer's bound follows it with this slack (K), so the baseline stays feasible.
SLACK = 1e-3
#: A change of the heat balance between two intervals larger than this (K per interval) gets rows
#: of its own in the offer (draws), besides the slice ends.
JUMP = 0.05
_BLOCK = 96  # coefficients are computed for blocks of this many intervals


def staffell_cop(delta_t: np.ndarray) -> np.ndarray:
    """Air-source heat pump COP from the temperature lift (sink - source, K): the quadratic fit
    of Staffell et al. (2012), "A review of domestic heat pumps", Energy Environ. Sci. 5,
    9291-9306: COP = 6.81 - 0.121 dT + 0.000630 dT^2, kept within [1, 7]."""
    d = np.maximum(np.asarray(delta_t, dtype=float), 1.0)
    return np.clip(6.81 - 0.121 * d + 0.000630 * d * d, 1.0, 7.0)


@dataclass
class ThermalState:
    temp: float  # degrees C


class ThermalDevice(Device):
    """The shared 1R1C model, offer and thermostat; subclasses give the parameters and inputs."""

    continuous = True

    # -- what each device gives (its Params name these fields alike) ----------------------
    def capacity(self) -> float:  # kWh/K
        return self.p.capacity

    def conductance(self) -> float:  # kW/K
        return self.p.conductance

    def p_max(self) -> float:  # kW electric
        return self.p.power

    def band(self) -> tuple[float, float]:
        return self.p.low, self.p.high

    def setpoint(self) -> float:
        return self.p.setpoint

    def ambient(self, start: int, n: int) -> np.ndarray:
        return np.full(n, self.p.room)

    def heat_per_kwh(self, start: int, n: int) -> np.ndarray:
        raise NotImplementedError

    def exogenous_kw(self, start: int, n: int) -> np.ndarray:
        return np.zeros(n)

    # -- the model ----------------------------------------------------------------------------
    def coefficients(self, start: int, n: int) -> tuple[float, np.ndarray, np.ndarray]:
        """(a, b, c) with T[k+1] = a T[k] + b[k] + c[k] u[k] for intervals start .. start + n."""
        dt = self.ctx.hours
        ua, cap = self.conductance(), self.capacity()
        a = math.exp(-dt * ua / cap)
        b = (1 - a) * (self.ambient(start, n) + self.exogenous_kw(start, n) / ua)
        c = (1 - a) * self.heat_per_kwh(start, n) / (ua * dt)
        return a, b, c

    def _coef(self, t: int) -> tuple[float, float, float]:
        block = t - t % _BLOCK
        cache = getattr(self, "_coef_cache", None)
        if cache is None or cache[0] != block:
            a, b, c = self.coefficients(block, _BLOCK)
            cache = (block, a, b, c)
            self._coef_cache = cache
        i = t - block
        return cache[1], float(cache[2][i]), float(cache[3][i])

    def thermostat(self, temp: float, a: float, b: float, c: float) -> float:
        """The device's own control: the kWh that brings the temperature to the setpoint at the
        end of the interval, within what the device can draw."""
        if c == 0:
            return 0.0
        u = (self.setpoint() - a * temp - b) / c
        return min(max(u, 0.0), self.p_max() * self.ctx.hours)

    def step(self, t: int, command: Optional[float]) -> float:
        a, b, c = self._coef(t)
        temp = self.state.temp
        if command is None:
            u = self.thermostat(temp, a, b, c)
        else:
            u = min(max(command, 0.0), self.p_max() * self.ctx.hours)
            u = self.safety(temp, a, b, c, u)
        self.state.temp = a * temp + b + c * u
        self.t = t + 1
        return u

    def safety(self, temp: float, a: float, b: float, c: float, u: float) -> float:
        """A device's own protection against a command (none by default)."""
        return u

    def simulate(self, start: int, n: int, temp: float) -> tuple[np.ndarray, np.ndarray]:
        """The thermostat's kWh per interval and the temperature after each, from ``temp``."""
        a, b, c = self.coefficients(start, n)
        u = np.zeros(n)
        temps = np.zeros(n + 1)
        temps[0] = temp
        for k in range(n):
            u[k] = self.thermostat(temps[k], a, b[k], c[k])
            temps[k + 1] = a * temps[k] + b[k] + c[k] * u[k]
        return u, temps

    # -- runs and offers ----------------------------------------------------------------------
    def plan(self, h: Horizon) -> list[Run]:
        return [Run(f"{self.id}-{h.index}", h.release, h.start, h.end)]

    def offer(self, run: Run, t: int) -> Optional[FlexOffer]:
        start, n = run.start, run.end - run.start
        if n <= 0:
            return None
        durations = slice_durations(n, self.ctx.slice_intervals)
        ends = np.cumsum(durations)
        a, b, c = self.coefficients(start, n)
        u_def, _ = self.simulate(start, n, self.state.temp)
        # temperature with no electricity (alpha) and its response to each slice's kWh (beta)
        alpha = np.zeros(n + 1)
        beta = np.zeros((n + 1, len(durations)))
        alpha[0] = self.state.temp
        k = 0
        for i, d in enumerate(durations):
            for _ in range(d):
                alpha[k + 1] = a * alpha[k] + b[k]
                beta[k + 1] = a * beta[k]
                beta[k + 1, i] += c[k] / d
                k += 1
        lo, hi = self.band()
        # the temperature is bounded at every slice end, and also around each sudden change of the
        # heat balance inside a slice (a hot-water draw), where it peaks or dips between ends
        jumps = np.flatnonzero(np.abs(np.diff(b)) > JUMP) + 1
        points = np.unique(np.concatenate([ends, jumps, np.minimum(jumps + 1, n)]))
        rows = np.round(beta[points], 9)
        base = per_slice(u_def, durations)
        # the baseline as a schedule spreads each slice's kWh evenly: its temperatures decide
        # where the band must give way (a cold night the heat pump cannot heat against)
        at_points = alpha[points] + rows @ base
        upper = np.maximum(hi - MARGIN, at_points + SLACK)
        lower = np.minimum(lo + MARGIN, at_points - SLACK)
        A = np.vstack([rows, -rows])
        bvec = np.concatenate([upper - alpha[points], alpha[points] - lower])
        polytope = Polytope.of_arrays(A, np.round(bvec, 9))
        cap = self.p_max() * self.ctx.hours
        return offer_of(run, self.ctx, start=start, durations=durations, mins=[0.0] * len(durations),
                        maxs=[cap * d for d in durations], baseline=base, polytope=polytope,
                        label=self.kind)

    def initial_state(self, rng: np.random.Generator) -> ThermalState:
        lo, hi = self.band()
        return ThermalState(float(np.clip(self.setpoint() + rng.uniform(-0.5, 0.5), lo, hi)))


# -- heat pump --------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeatPumpParams:
    """An air-source heat pump heating a single-family house (1R1C)."""

    capacity: float = param(7.0, unit="kWh/K", gt=0, doc="thermal capacitance of the house: 165 kJ/(m2 K), EN ISO "
                                                       "13790 'medium' mass class, times 150 m2")
    conductance: float = param(0.2, unit="kW/K", gt=0, doc="heat loss coefficient (transmission and "
                                                          "ventilation): 5 kW design load at a 25 K difference")
    power: float = param(2.5, unit="kW", gt=0, doc="largest electric power of the heat pump")
    sink: float = param(35.0, unit="C", doc="supply temperature (35: floor heating, 45-55: radiators)")
    setpoint: float = param(21.0, unit="C", doc="thermostat setpoint")
    low: float = param(20.0, unit="C", doc="comfort band, lowest room temperature")
    high: float = param(23.0, unit="C", doc="comfort band, highest room temperature")
    gains: float = param(0.4, unit="kW", ge=0, doc="internal gains (people, appliances): EN ISO 13790, ~3 W/m2")
    aperture: float = param(4.0, unit="m2", ge=0, doc="solar aperture: window area times g-value times shading")

    def __post_init__(self) -> None:
        validate_params(self)
        if not self.low <= self.setpoint <= self.high:
            raise DeviceError("setpoint", f"must lie in the comfort band [{self.low:g}, {self.high:g}]")


class HeatPump(ThermalDevice):
    kind = "heat_pump"
    Params = HeatPumpParams

    def ambient(self, start: int, n: int) -> np.ndarray:
        return self.ctx.inputs.temp_air(start, n)

    def heat_per_kwh(self, start: int, n: int) -> np.ndarray:
        return staffell_cop(self.p.sink - self.ctx.inputs.temp_air(start, n))

    def exogenous_kw(self, start: int, n: int) -> np.ndarray:
        ghi = self.ctx.inputs.irradiance(start, n)[0]
        return self.p.gains + self.p.aperture * ghi / 1000.0


# -- water boiler -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BoilerParams:
    """An electric storage water heater (one mixed node)."""

    volume: float = param(200.0, unit="l", gt=0, doc="tank volume (water: 4.186 kJ/(kg K))")
    conductance: float = param(0.0017, unit="kW/K", gt=0, doc="standing loss: ~1.6 kWh/day at 60 C in a 20 C "
                                                             "room (EU label class B/C, Regulation 812/2013)")
    power: float = param(3.0, unit="kW", gt=0, doc="heating element")
    setpoint: float = param(60.0, unit="C", doc="thermostat setpoint")
    low: float = param(50.0, unit="C", doc="band: lowest water temperature")
    high: float = param(75.0, unit="C", doc="band: highest water temperature (pre-heating headroom)")
    safety: float = param(85.0, unit="C", doc="the safety thermostat cuts the element above this")
    room: float = param(20.0, unit="C", doc="temperature around the tank")
    daily_draw: float = param(5.8, unit="kWh", ge=0, doc="hot water drawn per day, as heat: ~100 l at 60 C from "
                                                        "10 C mains for a household of 2-3")

    def __post_init__(self) -> None:
        validate_params(self)
        if not self.low <= self.setpoint <= self.high <= self.safety:
            raise DeviceError("setpoint", "need low <= setpoint <= high <= safety")


#: Hot-water draws of a day: (local hour, spread in hours, share of the daily draw).
DRAWS = ((7.0, 1.0, 0.45), (13.0, 2.0, 0.15), (20.0, 1.5, 0.40))


class WaterBoiler(ThermalDevice):
    kind = "boiler"
    Params = BoilerParams

    def __init__(self, *a, **kw) -> None:
        self.draws: dict[int, float] = {}  # interval -> kWh of heat drawn (the owner's habits)
        super().__init__(*a, **kw)

    def capacity(self) -> float:
        return self.p.volume * 4.186 / 3600.0

    def heat_per_kwh(self, start: int, n: int) -> np.ndarray:
        return np.ones(n)

    def exogenous_kw(self, start: int, n: int) -> np.ndarray:
        out = np.zeros(n)
        for i in range(n):
            out[i] = -self.draws.get(start + i, 0.0) / self.ctx.hours
        return out

    def safety(self, temp: float, a: float, b: float, c: float, u: float) -> float:
        top = (self.p.safety - a * temp - b) / c
        return max(0.0, min(u, top))

    def plan(self, h: Horizon) -> list[Run]:
        rng = seeded(self.ctx.seed, self.id, "draws", h.index)
        day_factor = float(np.clip(rng.normal(1.0, 0.2), 0.3, 2.0))
        t = h.start
        while t < h.end:  # every local day the horizon touches
            for hour, spread, share in DRAWS:
                at = self.ctx.next_local(t, float(np.clip(rng.normal(hour, spread), hour - 3 * spread,
                                                          hour + 3 * spread)))
                if h.start <= at < h.end and at not in self.draws:
                    self.draws[at] = self.p.daily_draw * share * day_factor
            t = self.ctx.next_local(t, 24.0)
        self._coef_cache = None  # new draws change the coefficients
        return super().plan(h)

    def fork(self) -> Device:
        twin = super().fork()
        twin.draws = dict(self.draws)  # type: ignore[attr-defined]
        return twin

    def forget(self, before: int) -> None:
        super().forget(before)
        self.draws = {k: v for k, v in self.draws.items() if k >= before}


# -- freezer ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class FreezerParams:
    """A chest or upright freezer."""

    capacity: float = param(0.03, unit="kWh/K", gt=0, doc="~50 kg of frozen food at 2 kJ/(kg K) plus the cabinet")
    conductance: float = param(0.0012, unit="kW/K", gt=0, doc="cabinet heat loss: ~0.7 kWh/day of electricity at "
                                                             "COP 1.6, an EU label class D-E upright")
    power: float = param(0.12, unit="kW", gt=0, doc="compressor electric power")
    cop: float = param(1.6, gt=0, doc="heat removed per kWh of electricity")
    setpoint: float = param(-19.0, unit="C", doc="thermostat setpoint")
    low: float = param(-24.0, unit="C", doc="band: coldest")
    high: float = param(-16.0, unit="C", doc="band: warmest food temperature allowed")
    room: float = param(20.0, unit="C", doc="temperature around the freezer")
    gains: float = param(0.005, unit="kW", ge=0, doc="door openings and new food, as a mean heat gain")

    def __post_init__(self) -> None:
        validate_params(self)
        if not self.low <= self.setpoint <= self.high:
            raise DeviceError("setpoint", f"must lie in the band [{self.low:g}, {self.high:g}]")


class Freezer(ThermalDevice):
    kind = "freezer"
    Params = FreezerParams

    def heat_per_kwh(self, start: int, n: int) -> np.ndarray:
        return np.full(n, -self.p.cop)

    def exogenous_kw(self, start: int, n: int) -> np.ndarray:
        return np.full(n, self.p.gains)

