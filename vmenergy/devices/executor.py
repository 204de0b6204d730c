"""Executors drive a prosumer's devices to follow a schedule and return what the meter saw.

The prosumer engine only says *what* to run (an Execute effect, or a RunDefault effect when an
offer will not be scheduled); an executor decides *how*: the simulated one here waits for the
schedule to end in scenario time and reports the scheduled energy (or the offer's baseline) with
a reproducible deviation; device models (:class:`vmenergy.devices.fleet.DeviceFleet`) simulate the
devices' physics; hardware executors (Modbus, serial) implement the same interface.
"""

from __future__ import annotations

import hashlib
import random
from typing import Protocol

from vmenergy.flexoffer import FlexOffer, Schedule
from vmenergy.runtime.clock import Clock

__all__ = ["Executor", "SimulatedExecutor", "default_schedule"]


class Executor(Protocol):
    async def execute(self, offer: FlexOffer, schedule: Schedule, clock: Clock) -> tuple[int, list[float]]:
        """Run the schedule; return (first interval, metered kWh per interval)."""

    async def run_default(self, offer: FlexOffer, clock: Clock) -> tuple[int, list[float]]:
        """The offer will not be scheduled: run the devices' normal programme; return (first
        interval, metered kWh per interval) once it is over."""


class SimulatedExecutor:
    """Follows the schedule exactly, plus a relative deviation drawn per interval from
    [-deviation, +deviation] with a generator seeded by the offer id (runs are reproducible)."""

    def __init__(self, deviation: float = 0.02, seed: str = "") -> None:
        if not 0 <= deviation < 1:
            raise ValueError("deviation must be in [0, 1)")
        self.deviation = deviation
        self.seed = seed

    def meter(self, offer: FlexOffer, schedule: Schedule) -> list[float]:
        rng = random.Random(hashlib.sha256(f"{self.seed}|{offer.id}|{schedule.update_id}".encode()).digest())
        planned = offer.profiles[schedule.profile].spread(schedule.energy).tolist()  # kWh per interval
        return [e * (1 + rng.uniform(-self.deviation, self.deviation)) for e in planned]

    async def execute(self, offer: FlexOffer, schedule: Schedule, clock: Clock) -> tuple[int, list[float]]:
        duration = offer.profiles[schedule.profile].duration
        await clock.sleep_until((schedule.start + duration) * schedule.resolution)
        return schedule.start, self.meter(offer, schedule)

    async def run_default(self, offer: FlexOffer, clock: Clock) -> tuple[int, list[float]]:
        """The offer's baseline (its default schedule), metered."""
        default = default_schedule(offer, int(clock.now()))
        duration = offer.profiles[default.profile].duration
        await clock.sleep_until((default.start + duration) * default.resolution)
        return default.start, self.meter(offer, default)


def default_schedule(offer: FlexOffer, now: int) -> Schedule:
    """What runs when ``offer`` will not be scheduled: its baseline from when it may start (not
    before ``now``, epoch seconds); an offer without a baseline runs its lowest energies at its
    earliest start."""
    res = offer.resolution
    t = now // res
    b = offer.baseline
    profile = 0 if b is None else b.profile
    start = b.start if b is not None and b.start is not None else offer.earliest_start(t, profile)
    start = max(start, t)
    energy = b.energy if b is not None else tuple(s.min for s in offer.profiles[profile].slices)
    return Schedule(offer.id, start, tuple(energy), "default", 0, profile, res)
