"""A household's base load: the non-flexible rest of its consumption.

Its expected curve is the BDEW standard load profile for households, H25 (2025 revision, with its
dynamisation over the year), from demandlib, scaled to the household's annual consumption. The
load that happens differs from the profile by a slowly varying relative error (an AR(1) process,
drawn per local day from the scenario seed and the device), so metering it is not a replay of
its forecast. Its offer is inflexible (each slice's min = max = the forecast): the aggregator
sees the household's baseline, nothing in it can move.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Optional

import numpy as np

from vmenergy.flexoffer import FlexOffer

from .base import Context, Device, Horizon, Run, offer_of, param, per_slice, seeded, slice_durations, validate_params

__all__ = ["BaseLoad", "BaseLoadParams", "h25_day", "base_forecast"]


@dataclass(frozen=True)
class BaseLoadParams:
    annual: float = param(3500.0, unit="kWh", gt=0, doc="annual consumption (German households: ~1,500 for one "
                                                       "person to ~5,000 for five; BDEW)")
    noise: float = param(0.15, ge=0, le=1, doc="relative spread of the real load around the profile")
    offer: bool = param(True, doc="send the base load as an inflexible offer")

    def __post_init__(self) -> None:
        validate_params(self)


@lru_cache(maxsize=64)
def h25_day(day: date) -> np.ndarray:
    """The H25 profile of one local day: kW for 1 GWh a year, per quarter hour (96 values)."""
    import pandas as pd
    from demandlib.bdew import H25

    index = pd.date_range(pd.Timestamp(day), periods=96, freq="15min")
    return np.asarray(H25(index), dtype=float)


def base_forecast(ctx: Context, annual: float, start: int, n: int) -> np.ndarray:
    """Expected kWh per interval of a household using ``annual`` kWh a year (the profile's
    quarter hours averaged over longer intervals)."""
    quarters = max(1, ctx.resolution // 900)
    out = np.zeros(n)
    for i in range(n):
        total = 0.0
        for j in range(quarters):
            local = datetime.fromtimestamp((start + i) * ctx.resolution + 900 * j, tz=timezone.utc).astimezone(ctx.tz)
            total += h25_day(local.date())[min(local.hour * 4 + local.minute // 15, 95)]
        out[i] = total / quarters
    return out * annual / 1e6 * ctx.hours


class BaseLoad(Device):
    kind = "base_load"
    Params = BaseLoadParams
    continuous = True

    def initial_state(self, rng: np.random.Generator) -> None:
        return None

    def _noise(self, day: date) -> np.ndarray:
        rng = seeded(self.ctx.seed, self.id, "load", day.isoformat())
        e = rng.normal(0, self.p.noise * np.sqrt(1 - 0.8 ** 2), 96)
        out = np.zeros(96)
        out[0] = rng.normal(0, self.p.noise)
        for k in range(1, 96):
            out[k] = 0.8 * out[k - 1] + e[k]
        return out

    def actual(self, t: int) -> float:
        local = self.ctx.local(t)
        q = min(local.hour * 4 + local.minute // 15, 95)
        cache: Optional[tuple[date, np.ndarray]] = getattr(self, "_day", None)
        if cache is None or cache[0] != local.date():
            cache = (local.date(), self._noise(local.date()))
            self._day = cache
        if self.ctx.resolution == 900:  # the common case, without a second time conversion
            forecast = h25_day(local.date())[q] * self.p.annual / 1e6 * self.ctx.hours
        else:
            forecast = float(base_forecast(self.ctx, self.p.annual, t, 1)[0])
        return max(0.0, forecast * (1 + float(cache[1][q])))

    def plan(self, h: Horizon) -> list[Run]:
        return [Run(f"{self.id}-{h.index}", h.release, h.start, h.end)] if self.p.offer else []

    def step(self, t: int, command: Optional[float]) -> float:
        self.t = t + 1
        return self.actual(t)  # nothing in it follows a command

    def offer(self, run: Run, t: int) -> Optional[FlexOffer]:
        n = run.end - run.start
        durations = slice_durations(n, 1)  # one slice per interval: the load keeps its own shape
        expected = per_slice(base_forecast(self.ctx, self.p.annual, run.start, n), durations)
        return offer_of(run, self.ctx, start=run.start, durations=durations, mins=expected.tolist(),
                        maxs=expected.tolist(), baseline=expected.tolist(), label=self.kind)
