"""Executors drive a prosumer's devices to follow a schedule and return what the meter saw.

The prosumer engine only says *what* to run (an Execute effect); an executor decides *how*: the
simulated one here waits for the schedule to end in (possibly accelerated) scenario time and
reports the scheduled energy with a reproducible deviation; hardware executors (Modbus, serial)
implement the same interface.
"""

from __future__ import annotations

import hashlib
import random
from typing import Protocol

from vmenergy.flexoffer import FlexOffer, Schedule
from vmenergy.runtime.clock import Clock

__all__ = ["Executor", "SimulatedExecutor"]


class Executor(Protocol):
    async def execute(self, offer: FlexOffer, schedule: Schedule, clock: Clock) -> tuple[int, list[float]]:
        """Run the schedule; return (first interval, metered kWh per interval)."""


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
