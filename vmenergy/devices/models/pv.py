"""Rooftop PV with curtailment, its output from pvlib.

The output of each interval follows the PVWatts chain in pvlib: the sun's position
(``solarposition.get_solarposition``, NREL SPA), the irradiance on the tilted plane
(``irradiance.get_total_irradiance``, isotropic sky) from the interval's GHI/DNI/DHI (a weather
series, or pvlib's Ineichen clear sky), the cell temperature (``temperature.faiman``), DC power
(``pvsystem.pvwatts_dc``), system losses (14 %, PVWatts' default) and the inverter
(``inverter.pvwatts``, DC/AC ratio 1.1). The flexibility is curtailment: each slice produces
between nothing and what the sun gives (negative energy), the baseline produces all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer

from .base import Context, Device, Horizon, Run, offer_of, param, per_slice, slice_durations, validate_params

__all__ = ["PV", "PVParams", "pv_kwh", "plane_of_array"]

_BLOCK = 96
#: PVWatts' default system losses (soiling, wiring, mismatch, availability...).
LOSSES = 0.14
DC_AC_RATIO = 1.1


@dataclass(frozen=True)
class PVParams:
    peak: float = param(5.0, unit="kWp", gt=0, doc="DC peak power of the array")
    tilt: float = param(30.0, unit="deg", ge=0, le=90, doc="panel tilt from horizontal")
    azimuth: float = param(180.0, unit="deg", ge=0, le=360, doc="panel azimuth (180: south)")
    gamma: float = param(-0.004, unit="1/K", le=0, doc="power temperature coefficient (crystalline Si)")

    def __post_init__(self) -> None:
        validate_params(self)


def _times(resolution: int, start: int, n: int) -> Any:
    import pandas as pd

    mid = (start + np.arange(n) + 0.5) * resolution
    return pd.DatetimeIndex(pd.to_datetime(mid, unit="s", utc=True))


@lru_cache(maxsize=256)
def _sun(resolution: int, lat: float, lon: float, alt: float, start: int, n: int) -> tuple:
    from pvlib import solarposition

    sp = solarposition.get_solarposition(_times(resolution, start, n), lat, lon, altitude=alt)
    return sp["apparent_zenith"].to_numpy(), sp["azimuth"].to_numpy()


@lru_cache(maxsize=4096)
def plane_of_array(inputs: Any, version: int, resolution: int, lat: float, lon: float, alt: float, tilt: float,
                   azimuth: float, start: int, n: int) -> np.ndarray:
    """Irradiance on the panel plane, W/m^2, per interval (cached: neighbours share orientations;
    ``version`` changes when the inputs' files were read again)."""
    from pvlib import irradiance

    zenith, sun_az = _sun(resolution, lat, lon, alt, start, n)
    ghi, dni, dhi = inputs.irradiance(start, n)
    poa = irradiance.get_total_irradiance(tilt, azimuth, zenith, sun_az, dni, ghi, dhi)
    return np.nan_to_num(np.asarray(poa["poa_global"], dtype=float), nan=0.0).clip(min=0.0)


def pv_kwh(p: PVParams, ctx: Context, start: int, n: int) -> np.ndarray:
    """AC energy the array gives in each interval (kWh, >= 0)."""
    from pvlib import inverter, pvsystem, temperature

    poa = plane_of_array(ctx.inputs, getattr(ctx.inputs, "version", 0), ctx.resolution, ctx.latitude, ctx.longitude, ctx.altitude,
                         round(p.tilt, 1), round(p.azimuth, 1), start, n)
    cell = temperature.faiman(poa, ctx.inputs.temp_air(start, n))
    dc = pvsystem.pvwatts_dc(poa, cell, p.peak, p.gamma) * (1 - LOSSES)
    ac = inverter.pvwatts(dc, p.peak / DC_AC_RATIO)
    return np.clip(np.nan_to_num(np.asarray(ac, dtype=float)), 0.0, None) * ctx.hours


class PV(Device):
    kind = "pv"
    Params = PVParams
    continuous = True

    def initial_state(self, rng: np.random.Generator) -> None:
        return None

    def available(self, t: int) -> float:
        block = t - t % _BLOCK
        cache: Optional[tuple[int, np.ndarray]] = getattr(self, "_cache", None)
        if cache is None or cache[0] != block:
            cache = (block, pv_kwh(self.p, self.ctx, block, _BLOCK))
            self._cache = cache
        return float(cache[1][t - block])

    def plan(self, h: Horizon) -> list[Run]:
        return [Run(f"{self.id}-{h.index}", h.release, h.start, h.end)]

    def step(self, t: int, command: Optional[float]) -> float:
        self.t = t + 1
        avail = self.available(t)
        if command is None:
            return -avail
        return min(0.0, max(command, -avail))  # it can curtail, not make more than the sun gives

    def offer(self, run: Run, t: int) -> Optional[FlexOffer]:
        n = run.end - run.start
        # one slice per interval: the sun does not spread a slice's energy evenly over it
        durations = slice_durations(n, 1)
        avail = pv_kwh(self.p, self.ctx, run.start, n)
        produce = per_slice(avail, durations)
        if not produce.any():
            return None
        return offer_of(run, self.ctx, start=run.start, durations=durations, mins=(-produce).tolist(),
                        maxs=[0.0] * len(durations), baseline=(-produce).tolist(), label=self.kind)
